"""How long `curbench view` takes for a long run: a 50-iteration, 500-step episode of the tiny test task.

Prints the time to build the run's data (what the server does per request) and the time headless
Chromium takes to load and draw the page. Run by hand: python benchmarks/viewer_load.py
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    from tinytask import TinyTask

    from curbench_env import CurationEnv
    from curbench_env.viewer import run_detail, serve

    tmp = Path(tempfile.mkdtemp(prefix="viewer-load-"))
    env = CurationEnv(TinyTask(str(tmp / "task"), size=400, budget=50), backend="local",
                      workspace_kwargs={"warn": False}, run_dir=tmp / "run", iteration_budget=50, max_steps=600)
    env.reset(seed=0)
    pick = ("python3 -c \"import json,os,sys; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
            "open('p.txt','w').write(chr(10).join(r['id'] for r in rs[{k}:{k}+40] if r['id'] not in ('leak01','boom')))\"")
    t0 = time.monotonic()
    for step in range(500):
        k = step // 10
        env.step(pick.format(k=k * 7) + f" && submit p.txt --note 'iteration {k}'" if step % 10 == 9
                 else f"echo step {step}; printf 'x = {step}\\n' > policy.py; seq 1 40")
    env.close()
    print(f"recorded {env.state.iteration} iterations, 500 steps in {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    detail = run_detail(tmp / "run", 0)
    print(f"run data: {time.monotonic() - t0:.2f}s ({len(detail['timeline'])} steps, "
          f"{len(detail['iterations_detail'])} iterations)")
    exe = shutil.which("chromium")
    if exe is None:
        print("no chromium: page load not measured")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = threading.Event()
    threading.Thread(target=serve, args=([tmp / "run"], port), kwargs={"ready": lambda _: ready.set()},
                     daemon=True).start()
    ready.wait(10)
    t0 = time.monotonic()
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp / 'profile'}",
                          "--dump-dom", f"http://127.0.0.1:{port}/#run=0"], capture_output=True, text=True, timeout=300)
    print(f"page loaded and drawn by headless Chromium in {time.monotonic() - t0:.2f}s "
          f"({out.stdout.count('data-step=')} steps, {out.stdout.count('data-iteration=')} iterations on the page)")


if __name__ == "__main__":
    main()
