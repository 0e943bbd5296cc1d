"""`curbench sweep`: specs become named sessions; the sweep directory is the state (finished sessions
are skipped, interrupted ones resumed); `curbench report SWEEP_DIR` aggregates per cell."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from curbench_env.errors import CurbenchError
from curbench_env.sweep import Session, parse_spec, run_dir_of, session_state, write_manifest


@pytest.fixture(autouse=True)
def _private_scoring_queue(tmp_path, monkeypatch):
    """This module's submissions queue for scoring among themselves, not behind other processes' training."""
    import shutil
    import tempfile

    queue = tempfile.mkdtemp(prefix="cbq", dir="/tmp")  # short: Ray's unix sockets live under TMPDIR too
    monkeypatch.setenv("TMPDIR", queue)
    monkeypatch.setattr(tempfile, "tempdir", queue)
    yield
    shutil.rmtree(queue, ignore_errors=True)


def curbench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curbench_env.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "220"})


def test_the_cross_product_becomes_sessions_with_stable_names():
    spec = parse_spec({"agents": ["curator", "scripted:random"], "scaffolds": ["none", "strategy-guide"],
                       "seeds": [0, 1], "iterations": [10, 30], "task_args": {"preset": "tiny"}})
    names = [s.name for s in spec.sessions]
    assert len(names) == 16 == len(set(names))
    assert "MiniVQA-v0__scripted_random__strategy-guide__it30__s1__preset=tiny" in names
    cells = {s.cell for s in spec.sessions}
    assert len(cells) == 8  # seeds share a cell
    again = parse_spec({"agents": ["curator", "scripted:random"], "scaffolds": ["none", "strategy-guide"],
                        "seeds": [0, 1], "iterations": [10, 30], "task_args": {"preset": "tiny"}})
    assert [s.name for s in again.sessions] == names


def test_a_cli_agent_can_run_natively_in_a_sweep(tmp_path):
    from curbench_env.sweep import is_api_agent

    spec = parse_spec({"agents": ["codex:gpt-5 --native", "claude-code"], "seeds": [0]})
    native, mcp = spec.sessions
    argv = native.run_argv(tmp_path / "run")
    assert argv[argv.index("--agent") + 1] == "codex:gpt-5" and argv[-1] == "--native"
    assert "--native" not in mcp.run_argv(tmp_path / "run2") and is_api_agent(native.agent)
    assert native.name != mcp.name and "native" in native.name


def test_an_explicit_session_list_takes_the_axes_as_defaults():
    spec = parse_spec({"agents": ["curator"], "iterations": 5, "sessions": [
        {"seed": 3}, {"agent": "scripted:random", "scaffold": "strategy-guide+skill-cards", "seed": 4}]})
    first, second = spec.sessions
    assert (first.agent, first.iterations, first.seed, first.scaffolds) == ("curator", 5, 3, ())
    assert second.scaffolds == ("strategy-guide", "skill-cards") and second.scaffold_label == "strategy-guide+skill-cards"


@pytest.mark.parametrize("data, message", [
    ({"agent": ["curator"]}, None),
    ({"agents": ["curator"], "seed_list": [1]}, "unknown sweep spec key"),
    ({"agents": ["scripted:nope"]}, "unknown scripted agent"),
    ({"scaffolds": ["no-such-scaffold"]}, "unknown scaffold"),
    ({"envs": ["Curation-Nope-v0"]}, "unknown env"),
    ({"seeds": [0, 0]}, "twice"),
])
def test_a_bad_spec_is_one_clear_error(data, message):
    if message is None:
        assert parse_spec(data).sessions[0].agent == "curator"
        return
    with pytest.raises(CurbenchError, match=message):
        parse_spec(data)


def test_yaml_and_toml_specs_give_the_same_sessions(tmp_path):
    from curbench_env.sweep import load_spec

    (tmp_path / "a.yaml").write_text("agents: [curator]\nseeds: [0, 1]\niterations: [2]\ntask_args: {preset: tiny}\n")
    (tmp_path / "a.toml").write_text('agents = ["curator"]\nseeds = [0, 1]\niterations = [2]\n'
                                     '[task_args]\npreset = "tiny"\n')
    assert load_spec(tmp_path / "a.yaml").sessions == load_spec(tmp_path / "a.toml").sessions


def test_the_cli_reports_a_bad_spec_in_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("agents: [curator]\nseed_list: [1]\n")
    out = curbench("sweep", str(tmp_path / "bad.yaml"))
    assert out.returncode == 2 and "unknown sweep spec key(s) seed_list" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_run_directory_says_whether_a_session_is_new_interrupted_or_finished(tmp_path):
    s = Session(env="Curation-MiniVQA-v0", agent="curator", scaffolds=(), seed=0, iterations=2)
    root = run_dir_of(tmp_path, s)
    assert session_state(tmp_path, s) == "new"
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    assert session_state(tmp_path, s) == "new"  # killed before its first step: started again
    (root / "steps.jsonl").write_text(json.dumps({"step": 0, "kind": "reset"}) + "\n")
    assert session_state(tmp_path, s) == "interrupted"
    (root / "summary.json").write_text("{}")
    assert session_state(tmp_path, s) == "finished"


def test_best_of_n_random_is_the_expected_maximum_of_n_draws():
    from curbench_env.sweep_report import expected_best_of

    assert expected_best_of([1.0, 2.0, 3.0], 1) == pytest.approx(2.0)
    assert expected_best_of([1.0, 2.0, 3.0], 2) == pytest.approx((1 * 1 + 2 * 3 + 3 * 5) / 9)
    assert expected_best_of([1.0, 2.0, 3.0], 200) == pytest.approx(3.0)


def test_the_report_of_a_sweep_has_per_cell_statistics_and_both_figures(make_env, tmp_path):
    sweep = tmp_path / "sweep"
    spec = parse_spec({"agents": ["curator"], "seeds": [0, 1], "iterations": [2]})
    write_manifest(spec, sweep)
    picks = {0: ["ex0001", "ex0003"], 1: ["ex0001", "ex0003", "ex0005", "ex0007"]}
    for s in spec.sessions:
        env = make_env(run_dir=run_dir_of(sweep, s), iteration_budget=2)
        env.reset(seed=s.seed)
        env.step(f"printf '%s\\n' {' '.join(picks[s.seed])} > p.txt && submit p.txt --note 'random subset'")
        env.step("printf 'ex0002\\n' > q.txt && submit q.txt --note 'format filter'")
        env.close()
    bests = [json.loads((run_dir_of(sweep, s) / "summary.json").read_text())["best_score"] for s in spec.sessions]
    out = curbench("report", str(sweep), "--out", str(tmp_path / "rep"))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(open(tmp_path / "rep" / "cells.csv")))
    assert len(rows) == 1 and rows[0]["finished"] == "2/2"
    mean, std = (float(x) for x in rows[0]["best: mean ± std"].split(" ± "))
    import statistics

    assert mean == pytest.approx(statistics.fmean(bests), abs=0.01)
    assert std == pytest.approx(statistics.stdev(bests), abs=0.01)
    assert rows[0]["best"] == f"{max(bests):.2f}" and "2 draws" in rows[0]["best-of-N random"]
    for png in ("scaffolds.png", "budget.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 10_000
    assert "best: mean ± std" in out.stdout and f"{statistics.fmean(bests):.2f} ± " in out.stdout


@pytest.mark.slow
def test_a_killed_session_is_resumed_by_the_next_sweep_without_duplicated_iterations(tiny_world, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("envs: Curation-MiniVQA-v0\ntask_args: {preset: tiny}\nagents: [curator]\nbackend: local\n"
                    "max_retries: 0\nsessions:\n  - {seed: 7, iterations: 2}\n  - {seed: 7, iterations: 1}\n")
    # seed 7: no other test scores these subsets, so the victim still trains when it is killed (with
    # seed 0 the suite's earlier tests had cached them and the session could end before the kill)
    sweep = tmp_path / "sweep"
    argv = [sys.executable, "-m", "curbench_env.cli", "sweep", str(spec), "--out", str(sweep), "--no-report"]
    victim = sweep / "sessions" / "MiniVQA-v0__curator__none__it2__s7__preset=tiny"
    other = sweep / "sessions" / "MiniVQA-v0__curator__none__it1__s7__preset=tiny"
    wide = {**os.environ, "COLUMNS": "250"}  # whole lines to match
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=wide)
    deadline = time.monotonic() + 900
    while not (victim / "iterations" / "01" / "manifest.json").exists():
        if first.poll() is not None:
            pytest.fail(f"the sweep ended before a first iteration:\n{first.stdout.read()}")
        assert time.monotonic() < deadline, "no first iteration in 15 minutes"
        time.sleep(0.2)
    os.kill(int((victim / ".lock").read_text()), signal.SIGKILL)  # the session's harness, mid-episode
    output, _ = first.communicate(timeout=900)
    assert first.returncode == 1, output
    assert "was killed by signal 9" in " ".join(output.split()) and not (victim / "summary.json").exists()

    again = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=wide)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{victim.name} (resume)" in again.stdout and f"{other.name} (" not in again.stdout

    for root, budget in ((victim, 2), (other, 1)):
        summary = json.loads((root / "summary.json").read_text())
        assert summary["iterations"] == budget
        scored = [json.loads(line)["submission"] for line in (root / "steps.jsonl").read_text().splitlines()
                  if (json.loads(line).get("submission") or {}).get("status") == "scored"]
        assert [s["iteration"] for s in scored] == list(range(1, budget + 1))
        assert len({s["content_hash"] for s in scored}) == budget  # the resumed agent did not resubmit
        assert sorted(p.name for p in (root / "iterations").iterdir()) == [f"{k:02d}" for k in range(1, budget + 1)]
    attempts = [json.loads(line) for line in (sweep / "attempts.jsonl").read_text().splitlines()]
    assert [(a["action"], a["returncode"]) for a in attempts if a["name"] == victim.name] == [("run", -9), ("resume", 0)]
    assert [a["returncode"] for a in attempts if a["name"] == other.name] == [0]


def test_a_resumed_scripted_agent_goes_on_after_its_recorded_submissions():
    from curbench_env.agents import CuratorAgent

    info = {"submission_budget": 200, "pool_kind": "conversations", "iteration": 0}
    fresh = CuratorAgent(seed=0)
    fresh.reset({}, info)
    plan = list(iter(lambda: fresh.act({}, info), "done"))
    submits = [cmd for cmd in plan if "&& submit " in cmd]
    resumed = CuratorAgent(seed=0)
    resumed.reset({}, {**info, "iteration": 2})
    assert resumed.act({}, info) == submits[2]  # neither setup again nor the two recorded submissions
    spent = CuratorAgent(seed=0)
    spent.reset({}, {**info, "iteration": len(submits)})
    assert spent.act({}, info) == "done"
