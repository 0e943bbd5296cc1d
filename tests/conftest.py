"""Test environment: offline, caches in a temp dir, tiny task fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).parent))

from docker_daemon import docker_daemon  # noqa: E402,F401  (a session fixture: a private dockerd)

import curbench_env  # noqa: E402,F401  (its import hook makes torchvision importable on a CPU torch)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Result caches and run dirs go to temp dirs, never the user's ~/.cache or ./runs."""
    home = os.environ.get("CURBENCH_TEST_HOME") or str(tmp_path_factory.getbasetemp() / "curbench-home")
    monkeypatch.setenv("CURBENCH_HOME", home)
    monkeypatch.setenv("CURBENCH_RUNS", str(tmp_path_factory.getbasetemp() / "runs"))


@pytest.fixture
def tiny_task(tmp_path: Path):
    from tinytask import TinyTask

    return TinyTask(str(tmp_path / "tiny"))


@pytest.fixture
def make_env(tmp_path: Path, tiny_task):
    from curbench_env import CurationEnv

    envs = []

    def factory(**kwargs):
        kwargs.setdefault("backend", "local")
        kwargs.setdefault("workspace_kwargs", {"warn": False} if kwargs["backend"] == "local" else {})
        kwargs.setdefault("run_root", tmp_path / "runs")
        kwargs.setdefault("iteration_budget", 3)
        env = CurationEnv(kwargs.pop("task", tiny_task), **kwargs)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The tiny preset's world, built once (world, stage-1 model, signals)."""
    import os

    home = Path(os.environ.get("CURBENCH_TEST_HOME") or tmp_path_factory.getbasetemp() / "curbench-home")
    old = os.environ.get("CURBENCH_HOME")
    os.environ["CURBENCH_HOME"] = str(home)
    try:
        from curbench_env.envs.minivqa.setup import PRESETS, ensure_world

        return ensure_world(PRESETS["tiny"], log=lambda m: None)
    finally:
        if old is None:
            os.environ.pop("CURBENCH_HOME", None)
        else:
            os.environ["CURBENCH_HOME"] = old
