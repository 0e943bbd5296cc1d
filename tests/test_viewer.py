"""`curbench view`: the page of a recorded run, loaded in headless Chromium (what a user sees)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from curbench_env.viewer import data_files, export, find_runs, serve

HOSTILE = "<img src=x onerror=alert(1)>[/x]"
PICK = ("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
        "open('{f}','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' "
        "and r['id']!='leak01'][:{n}]))\"")


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    return exe


def browse(url: str, tmp_path: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot), from headless Chromium."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=8000",
            "--window-size=1280,2400"]
    if screenshot is not None:
        out = subprocess.run(args + [f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120)
        if not screenshot.exists():
            pytest.skip(f"Chromium could not start here: {out.stderr[-300:]}")
    out = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    if not out.stdout.strip():
        pytest.skip(f"Chromium could not start here: {out.stderr[-300:]}")
    return out.stdout


@pytest.fixture
def recorded_run(make_env):
    env = make_env(iteration_budget=3)
    env.reset(seed=0, options={"agent": "test-agent"})
    env.step("mkdir -p pol && printf 'N = 5\\n' > pol/select.py && " + PICK.format(n=5, f="a.txt")
             + " && submit a.txt --note 'cite: el2n | instantiate: rank by quality_hint | adapt: keep good ones'")
    env.step(f"echo '{HOSTILE}'")
    env.step("printf 'N = 9\\nTHRESHOLD = 0.7\\n' > pol/select.py && " + PICK.format(n=9, f="b.txt")
             + f" && submit b.txt --note '{HOSTILE}'")
    run_dir = env.run_dir
    env.close()
    return run_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_run_page_shows_scores_policy_diff_and_hostile_text_literally(recorded_run, tmp_path):
    port = free_port()
    started = threading.Event()
    holder = {}
    threading.Thread(target=serve, args=([recorded_run], port),
                     kwargs={"ready": lambda s: (holder.setdefault("server", s), started.set())}, daemon=True).start()
    assert started.wait(10)
    try:
        shot = tmp_path / "run-view.png"
        dom = browse(f"http://127.0.0.1:{port}/#run=0", tmp_path, screenshot=shot)
    finally:
        holder["server"].shutdown()
    artifacts = Path(__file__).parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(shot, artifacts / "viewer-run.png")  # kept as the test's artifact
    assert "Iteration 1: average" in dom and "Iteration 2: average" in dom
    assert "THRESHOLD = 0.7" in dom and "pol/select.py" in dom  # the policy diff between submissions
    assert "&lt;img src=x onerror=alert(1)&gt;[/x]" in dom and "<img src=x" not in dom  # shown, not run
    assert "instantiate" in dom and "rank by quality_hint" in dom  # the scaffold declaration
    assert "new family" in dom and "test-agent" in dom


def test_the_exported_comparison_page_lists_every_run(recorded_run, make_env, tmp_path):
    env = make_env()
    env.reset(seed=1)
    env.step(PICK.format(n=4, f="c.txt") + " && submit c.txt --note random")
    env.close()
    runs = find_runs([recorded_run.parent])
    assert len(runs) == 2
    export(runs, tmp_path / "site")
    dom = browse((tmp_path / "site" / "index.html").as_uri(), tmp_path, screenshot=tmp_path / "compare.png")
    shutil.copy(tmp_path / "compare.png", Path(__file__).parent / "artifacts" / "viewer-compare.png")
    assert recorded_run.name in dom and env.run_dir.name in dom and "test-agent" in dom
    assert "<polyline" in dom  # the score curves


def test_a_damaged_run_still_renders_with_a_note(recorded_run):
    with open(recorded_run / "steps.jsonl", "a") as fh:
        fh.write("garbage that is not json\n")
    (recorded_run / "iterations" / "01" / "audit.json").write_text("{broken")
    (recorded_run / "iterations" / "02" / "manifest.json").write_text("[1, 2")
    files = data_files([recorded_run])
    text = files["data/run-0.js"].decode()
    assert "unreadable line" in text and "iterations/02/manifest.json is unreadable" in text
    assert '"iteration": 1' in text  # what can be read is still drawn
    assert "</script" not in text.lower()  # agent text cannot close the data script


def test_view_with_nothing_to_show_is_one_clear_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "curbench_env.cli", "view", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no run directories" in out.stderr


def test_a_busy_port_is_one_clear_line(recorded_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "curbench_env.cli", "view", str(recorded_run), "--port", str(port)], capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 2 and "choose another --port" in out.stderr
