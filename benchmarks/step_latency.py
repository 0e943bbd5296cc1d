"""Median per-step latency of `true` and `echo` through each workspace backend, against a bare
`subprocess.run` in the same run. Run by hand: `python benchmarks/step_latency.py [N]`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from curbench_env.workspace import WorkspaceSpec, make_workspace
from curbench_env.workspace.base import bwrap_available


def timed(fn, n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main(n: int = 300) -> None:
    rows = []
    bare = {cmd: timed(lambda c=cmd: subprocess.run(["bash", "--noprofile", "--norc", "-c", c], capture_output=True), n)
            for cmd in ("true", "echo hello")}
    rows.append(("subprocess.run (new bash each time)", bare["true"], bare["echo hello"]))
    backends = ["local"] + (["bwrap"] if bwrap_available() else [])
    for be in backends:
        with tempfile.TemporaryDirectory() as tmp:
            spec = WorkspaceSpec(host_dir=Path(tmp) / "ws", pool_dir=None, bin_dir=Path(tmp))
            ws = make_workspace(be, spec, **({"warn": False} if be == "local" else {}))
            with ws:
                for _ in range(20):
                    ws.run("true")
                rows.append((f"{be} persistent shell", timed(lambda w=ws: w.run("true"), n),
                             timed(lambda w=ws: w.run("echo hello"), n)))
    print(f"median per-step latency over {n} steps (ms); ratio = backend / bare subprocess.run")
    print(f"{'path':<38} {'true':>8} {'echo':>8} {'ratio true':>11} {'ratio echo':>11}")
    for name, t, e in rows:
        print(f"{name:<38} {t:8.3f} {e:8.3f} {t / bare['true']:11.2f} {e / bare['echo hello']:11.2f}")
    print("goal: a persistent-shell step at most 5 ms median on local and bwrap")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
