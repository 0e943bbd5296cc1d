"""The `curbench` CLI: user errors are one clear line; inspect reads a run directory."""

from __future__ import annotations

import os
import subprocess
import sys


def curbench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curbench_env.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_list_shows_the_ids():
    out = curbench("list")
    assert out.returncode == 0 and "Curation-MiniVQA-v0" in out.stdout


def test_unknown_env_is_one_line_not_a_traceback():
    out = curbench("run", "--env", "Curation-Nope-v0")
    assert out.returncode == 2 and "unknown env" in out.stderr and "Traceback" not in out.stderr


def test_unknown_agent_is_one_line():
    out = curbench("run", "--agent", "scripted:nope")
    assert out.returncode == 2 and "unknown scripted agent" in out.stderr and "Traceback" not in out.stderr


def test_an_unknown_option_is_a_usage_error_not_an_internal_error(tmp_path):
    out = curbench("run", "--out", "x", env={**os.environ, "CURBENCH_HOME": str(tmp_path)})
    assert out.returncode == 2 and "No such option: --out" in out.stderr
    assert "internal error" not in out.stderr and not (tmp_path / "logs" / "last-error.log").exists()


def test_inspect_a_directory_that_is_not_a_run(tmp_path):
    out = curbench("inspect", str(tmp_path))
    assert out.returncode == 2 and "not a curbench run directory" in out.stderr


def test_inspect_shows_the_iterations_of_a_run(make_env, tmp_path):
    env = make_env()
    env.reset(seed=0)
    env.step("printf 'ex0001\\nex0003\\n' > p.txt && submit p.txt --note two")
    env.close()
    out = curbench("inspect", str(env.run_dir))
    assert out.returncode == 0, out.stderr
    assert "p.txt" in out.stdout and "alpha" in out.stdout


def test_task_args_are_parsed_as_json_or_strings():
    from curbench_env.cli import task_kwargs

    assert task_kwargs("tiny", ["device=cuda", "budget=50", "allow_rewrite=true"]) == {
        "preset": "tiny", "device": "cuda", "budget": 50, "allow_rewrite": True}
    import pytest

    with pytest.raises(ValueError, match="KEY=VALUE"):
        task_kwargs(None, ["device"])


def test_an_argument_the_task_does_not_take_is_one_line(tmp_path):
    out = curbench("setup", "Curation-MiniVQA-v0", "--task-arg", "colour=red",
                   env={**os.environ, "CURBENCH_HOME": str(tmp_path)})
    assert out.returncode == 2 and "does not take these arguments ['colour']" in out.stderr
    assert "Traceback" not in out.stderr


def test_install_without_rebuild_is_one_line_and_builds_nothing(tmp_path):
    out = curbench("setup", "Curation-MiniVQA-v0", "--preset", "tiny", "--install",
                   env={**os.environ, "CURBENCH_HOME": str(tmp_path)})
    assert out.returncode == 2 and "--install goes with --rebuild" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "minivqa").exists()


def test_a_device_the_machine_lacks_is_refused_before_any_build(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("this machine has a CUDA GPU; the refusal is for machines without one")
    out = curbench("setup", "Curation-MiniVQA-v0", "--preset", "tiny", "--task-arg", "device=cuda",
                   env={**os.environ, "CURBENCH_HOME": str(tmp_path)})
    assert out.returncode == 2 and "asked for device 'cuda'" in out.stderr
    assert not (tmp_path / "minivqa").exists()


def test_task_args_go_on_top_of_an_ids_registered_arguments(monkeypatch, tmp_path):
    import gymnasium.envs.registration as gym_registration

    import curbench_env.registry as reg
    from curbench_env.cli import _make_env

    monkeypatch.setitem(reg.ENV_IDS, "Curation-MiniVQATinyTest-v0",
                        reg.EnvSpec(id="Curation-MiniVQATinyTest-v0", task="minivqa", description="test id",
                                    task_kwargs={"preset": "tiny"}))
    # the test id stays out of gymnasium's real registry
    monkeypatch.setattr(gym_registration, "registry", dict(gym_registration.registry))
    reg.register_envs()
    assert reg.task_kwargs_for("Curation-MiniVQATinyTest-v0", {"budget": 7}) == {"preset": "tiny", "budget": 7}
    env = _make_env("Curation-MiniVQATinyTest-v0", "local", tmp_path / "run", 1, task_options={"budget": 7})
    try:
        task = env.unwrapped.task
        assert task.preset_name == "tiny" and task.preset.world.budget == 7
    finally:
        env.close()


def test_tables_written_to_a_log_are_not_cut_to_80_columns(monkeypatch):
    import io

    from rich.table import Table

    from curbench_env.console import LOG_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    buf = io.StringIO()
    console = make_console(file=buf)
    assert console.width == LOG_WIDTH
    table = Table(*[f"benchmark_{i}" for i in range(12)])
    table.add_row(*["picks_benchmark_formats.txt"] + ["50"] * 11)
    console.print(table)
    assert "picks_benchmark_formats.txt" in buf.getvalue() and "benchmark_11" in buf.getvalue()
    monkeypatch.setenv("COLUMNS", "90")
    assert make_console(file=io.StringIO()).width == 90  # the user's own width wins
