"""Attacks a hostile agent can make through what it writes: the harness refuses, never raises,
never touches a host path the agent points it at, and the run directory survives."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from curbench_env import CurationEnv, CurbenchError
from curbench_env.trajectory import RunDirectory

GOOD = ("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
        "open('p.txt','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' "
        "and r['id']!='leak01'][:5]))\"")


def write_request(env, name: str, body: str | bytes) -> None:
    box = env.run_dir / "workspace" / ".curbench" / "outbox"
    box.mkdir(parents=True, exist_ok=True)
    (box / name).write_bytes(body if isinstance(body, bytes) else body.encode())


def test_a_symlinked_outbox_makes_the_harness_delete_nothing(make_env, tmp_path):
    env = make_env()
    env.reset(seed=0)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.json").write_text('{"path": "x"}')
    obs, *_ = env.step(f"mkdir -p .curbench && rm -rf .curbench/outbox && ln -s {victim} .curbench/outbox && echo linked")
    assert "linked" in obs["output"]
    assert (victim / "precious.json").exists()
    obs, *_, info = env.step(f"rm -rf .curbench && ln -s {victim} .curbench && echo again")
    assert (victim / "precious.json").exists() and "submission" not in info


def test_a_symlinked_request_is_refused_and_its_target_kept(make_env, tmp_path):
    env = make_env()
    env.reset(seed=0)
    target = tmp_path / "target.json"
    target.write_text(json.dumps({"path": "p.txt"}))
    obs, *_, info = env.step(f"mkdir -p .curbench/outbox && ln -s {target} .curbench/outbox/1.json")
    assert "refused" in obs["output"] and target.exists()


@pytest.mark.parametrize("body", [
    '{"path": 42}', '{"path": ["a"]}', '{"path": "p.txt", "note": {"x": 1}}', '{"path": "p.txt", "cwd": 3}',
    '{"path": "p\\u0000.txt"}', '[' * 100_000 + ']' * 100_000, '"just a string"', b"\xff\xfe garbage",
    '{"path": "' + "a" * 20_000 + '"}',
])
def test_a_hand_written_request_is_refused_not_raised(make_env, body):
    env = make_env()
    env.reset(seed=0)
    write_request(env, "0.json", body)
    obs, reward, term, trunc, info = env.step("true")
    assert "refused" in obs["output"] and reward == 0 and info["iteration"] == 0 and not (term or trunc)
    assert env.observation_space.contains(obs)


def test_a_flooded_outbox_is_read_a_bounded_slice_and_refused(make_env):
    env = make_env()
    env.reset(seed=0)
    box = env.run_dir / "workspace" / ".curbench" / "outbox"
    box.mkdir(parents=True)
    for k in range(3000):
        (box / f"{k:05d}.json").write_text('{"path": "nope.txt"}')
    obs, reward, *_ , info = env.step("true")
    assert "more than 20 files in the outbox" in obs["output"] and info["iteration"] == 0
    assert not list(box.iterdir())


@pytest.mark.parametrize("suffix,text", [
    ("jsonl", '{"id": ' + "[" * 50_000 + "]" * 50_000 + "}\n"),
    ("json", "[" * 100_000 + "]" * 100_000),
    ("jsonl", json.dumps({"id": "ex0000", "conversations": [{"from": "human", "value": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        ]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}) + "\n"),
])
def test_a_deeply_nested_submission_is_refused_with_a_message(make_env, suffix, text):
    env = make_env()
    env.reset(seed=0)
    (env.run_dir / "workspace" / f"deep.{suffix}").write_text(text)
    obs, *_, info = env.step(f"submit deep.{suffix}")
    assert info["submission"]["status"] == "refused" and "nested deeper" in obs["output"]


def test_a_second_harness_on_the_same_run_gets_a_clear_error(make_env, tiny_task):
    env = make_env()
    env.reset(seed=0)
    env.step("echo one")
    second = CurationEnv(tiny_task, backend="local", workspace_kwargs={"warn": False}, resume_from=env.run_dir)
    with pytest.raises(CurbenchError, match="in use by another harness"):
        second.reset()
    env.step("echo still mine")
    steps = RunDirectory(env.run_dir).steps()
    assert [s["step"] for s in steps] == [0, 1, 2]


def run_with_journal_tail(make_env, tiny_task, tail: str) -> tuple[Path, CurationEnv]:
    """A one-command run whose harness went away leaving ``tail`` after its journal; and its resuming env."""
    env = make_env()
    env.reset(seed=0)
    env.step("echo one")
    env.close()
    with open(env.run_dir / "steps.jsonl", "a") as fh:
        fh.write(tail)
    return env.run_dir, CurationEnv(tiny_task, backend="local", workspace_kwargs={"warn": False},
                                    resume_from=env.run_dir)


def test_a_torn_journal_tail_is_cut_on_resume_and_said(make_env, tiny_task):
    run_dir, env2 = run_with_journal_tail(make_env, tiny_task, '{"step": 2, "kind": "comm')  # killed mid-write
    obs, info = env2.reset()
    assert "torn line" in obs["output"]
    env2.step("echo two")
    env2.close()
    lines = (run_dir / "steps.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 1, 2]


def test_garbage_in_the_journal_is_skipped_with_a_warning(make_env, tiny_task):
    _, env2 = run_with_journal_tail(make_env, tiny_task, "not json at all\n[1, 2]\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obs, info = env2.reset()
    assert any("skipped 2 unreadable line(s)" in str(w.message) for w in caught)
    assert info["steps"] == 1
    env2.close()


class MarkupAgent:
    """Writes rich markup into every text the harness prints: file names, notes, commands."""

    def reset(self, obs, info):
        self.plan = iter([GOOD.replace("p.txt", "[b]x[i].txt") + " && submit '[b]x[i].txt' --note '[/x] [red]'",
                          "printf '[/oops]\\n' > 'bad[x].txt' && submit 'bad[x].txt'", "done"])

    def act(self, obs, info):
        return next(self.plan)


def test_markup_in_agent_text_is_printed_literally(make_env, capsys):
    from curbench_env.console import make_console
    from curbench_env.runner import run_episode

    env = make_env()
    summary = run_episode(env, MarkupAgent(), seed=0, console=make_console())
    out = capsys.readouterr().out
    assert summary["iterations"] == 1 and "[/x] [red]" in out and "[/oops]" in out


def test_inspect_prints_markup_in_a_run_literally(make_env):
    from typer.testing import CliRunner

    from curbench_env.cli import app
    from curbench_env.runner import run_episode

    env = make_env()
    run_episode(env, MarkupAgent(), seed=0, progress=False, agent="[/evil]")
    result = CliRunner().invoke(app, ["inspect", str(env.run_dir)])
    assert result.exit_code == 0, result.output
    assert "[/evil]" in result.output and "[b]x[i].txt" in result.output


def test_the_lock_is_released_when_the_harness_dies(tmp_path):
    from tinytask import TinyTask, run_then_kill

    run_then_kill(tmp_path / "task", tmp_path / "run", ["echo one"])
    env = CurationEnv(TinyTask(str(tmp_path / "task")), backend="local", workspace_kwargs={"warn": False},
                      resume_from=tmp_path / "run")
    obs, info = env.reset()
    assert info["steps"] == 1 and os.getpid() == int((tmp_path / "run" / ".lock").read_text())
    env.close()

def test_each_iteration_snapshots_a_bounded_amount_and_reports_the_rest(make_env):
    from curbench_env.trajectory import SNAPSHOT_MAX_BYTES

    env = make_env()
    env.reset(seed=0)
    env.step("mkdir -p junk && for i in $(seq 1 60); do yes a | head -c 200000 > junk/f$i.txt; done"
             " && head -c 5000 /dev/urandom > blob.py && echo 'x = 1' > sel.py")
    _, _, _, _, info = env.step(GOOD + " && submit p.txt")
    manifest = info["submission"]
    assert manifest["status"] == "scored" and "sel.py" in manifest["policy_files"]
    assert manifest["snapshot_skipped"]["over_budget"] > 0 and manifest["snapshot_skipped"]["binary"] == 1
    policy = env.run_dir / "iterations" / "01" / "policy"
    assert sum(p.stat().st_size for p in policy.rglob("*") if p.is_file()) <= SNAPSHOT_MAX_BYTES


def _bwrap_env(make_env, **limits):
    from curbench_env.workspace.base import bwrap_available

    if not bwrap_available():
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    env = make_env(backend="bwrap", limits=limits)
    env.reset(seed=0)
    return env


def _cgroup_env(make_env, **limits):
    env = _bwrap_env(make_env, **limits)
    if env.unwrapped.workspace.cgroup is None:
        pytest.skip("no writable cgroup hierarchy on this machine (the limits stay per process)")
    return env


FORK = ("python3 -c \"import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n    n += 1\n"
        "print('forked', n)\"")


def test_processes_are_counted_for_the_whole_sandbox(make_env):
    env = _cgroup_env(make_env, max_processes=40)
    obs, *_ = env.step(FORK)
    forked = int(obs["output"].split("forked")[1].split()[0])
    assert forked < 40


def test_memory_is_counted_for_the_whole_sandbox(make_env):
    env = _cgroup_env(make_env, memory_bytes=600 << 20)
    hold = "python3 -c 'import time; b = bytearray(400 << 20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(1); print(\"held\")'"
    obs, *_ = env.step(f"for i in 1 2; do {hold} & done; wait; echo finished")
    held = [line for line in obs["output"].splitlines() if line.strip() == "held"]
    assert len(held) <= 1 and "finished" in obs["output"]  # each alone fits, both together do not


def test_filling_the_disk_is_stopped_at_the_workspace_quota(make_env):
    env = _bwrap_env(make_env, workspace_bytes=30 << 20)
    obs, *_ = env.step("for i in $(seq 100); do head -c 5000000 /dev/zero > f$i; sleep 0.05; done")
    assert "disk quota" in obs["output"]
    from curbench_env.workspace.totals import workspace_bytes

    assert workspace_bytes(env.run_dir / "workspace", 1 << 40) < 300 << 20  # stopped well before 500 MB
    obs, *_ = env.step("rm -f f* && echo cleaned")
    assert "cleaned" in obs["output"] and "quota" not in obs["output"]


def test_no_user_namespace_can_be_made_inside_the_sandbox(make_env):
    env = _bwrap_env(make_env)
    obs, *_ = env.step("unshare -Ur id -u; echo rc=$?")
    assert "rc=0" not in obs["output"] and "Operation not permitted" in obs["output"]
    obs, *_ = env.step("python3 -c 'import subprocess; print(subprocess.run([\"true\"]).returncode)'")
    assert obs["output"].strip() == "0"  # ordinary process creation still works


def _small_world(tmp_path: Path, name: str, secret: str | None):
    from curbench_env.envs.minivqa.world import WorldConfig, build_world
    from curbench_env.envs.world_secret import secret_id

    cfg = WorldConfig(pool_size=200, budget=20, eval_items_per_benchmark=5, stage1_captions=10,
                      secret_id=secret_id(secret) if secret else "")
    build_world(cfg, tmp_path / name, secret)
    hidden = tmp_path / name / "hidden"
    return cfg, (hidden / "benchmarks.jsonl").read_text(), (hidden / "ground_truth.jsonl").read_text()


def test_a_world_secret_decides_the_benchmarks_and_labels_that_code_and_seed_cannot_rebuild(tmp_path):
    public, bench, truth = _small_world(tmp_path, "public", None)
    _, bench_again, truth_again = _small_world(tmp_path, "public2", None)
    assert (bench, truth) == (bench_again, truth_again)  # the public world: the README's reference
    cfg_a, bench_a, truth_a = _small_world(tmp_path, "a", "s3cret-a")
    _, bench_a2, truth_a2 = _small_world(tmp_path, "a2", "s3cret-a")
    _, bench_b, truth_b = _small_world(tmp_path, "b", "s3cret-b")
    assert (bench_a, truth_a) == (bench_a2, truth_a2)  # one secret, one world, on any machine
    assert bench_a != bench and truth_a != truth and bench_a != bench_b  # without it, another world
    assert cfg_a.fingerprint() != public.fingerprint() and "s3cret" not in json.dumps(cfg_a.__dict__, default=str)
    from curbench_env.envs.minivqa.world import WorldConfig, build_world

    with pytest.raises(ValueError, match="secret"):  # the wrong secret cannot build a secret world
        build_world(cfg_a, tmp_path / "wrong", "guess")
    assert WorldConfig().fingerprint() == "428be23ed547"  # the public default world (v6) the README measured


def test_a_world_secret_also_decides_miniclips_evaluation_sets_and_noise_labels(tmp_path):
    from curbench_env.envs.miniclip.world import ClipWorldConfig, build_world
    from curbench_env.envs.world_secret import secret_id

    def world(name: str, secret: str | None) -> tuple[str, str]:
        cfg = ClipWorldConfig(pool_size=100, reference_pairs=20, eval_classification=24, eval_retrieval=10,
                              secret_id=secret_id(secret) if secret else "")
        build_world(cfg, tmp_path / name, secret)
        hidden = tmp_path / name / "hidden"
        return (hidden / "eval_texts.json").read_text(), (hidden / "ground_truth.jsonl").read_text()

    assert world("a", "k1") == world("a2", "k1")
    assert world("a", "k1") != world("p", None) and world("a", "k1") != world("b", "k2")


def test_a_submission_is_read_without_following_a_link_swapped_in_after_resolving(tmp_path):
    """In native mode the agent's own processes run while the harness checks a submission: a file or a
    folder of its path replaced by a link between resolving and reading must not make the harness read
    the link's target (whose lines would come back in the refusal message)."""
    from curbench_env.submission import read_without_links

    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "s.txt").write_text("hidden-answer-key\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "d").symlink_to(secret)  # the folder was real when the path was resolved
    (ws / "f.txt").symlink_to(secret / "s.txt")
    os.mkfifo(ws / "pipe.txt")  # a FIFO must not block the harness
    (ws / "ok.txt").write_text("id1\n")
    for path in (ws / "d" / "s.txt", ws / "f.txt", ws / "pipe.txt", ws / "missing.txt"):
        with pytest.raises(CurbenchError) as err:
            read_without_links(path, 1 << 20, path.name)
        assert "hidden-answer-key" not in str(err.value)
    assert read_without_links(ws / "ok.txt", 1 << 20, "ok.txt") == b"id1\n"
    with pytest.raises(CurbenchError, match="limited to"):
        read_without_links(ws / "ok.txt", 2, "ok.txt")
