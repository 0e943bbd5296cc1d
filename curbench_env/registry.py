"""Task families and env ids as data: ``register(id, entry_point, kwargs)`` like Gymnasium's own."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import gymnasium as gym

from curbench_env.task import CurationTask

#: Task family name → "module:Class". Tasks build lazily, so importing this is cheap.
TASKS: dict[str, str] = {
    "minivqa": "curbench_env.envs.minivqa.task:MiniVQATask",
    "llava10k": "curbench_env.envs.llava665k.task:Llava10kTask",
    "miniclip": "curbench_env.envs.miniclip.task:MiniCLIPTask",
    "datacomp_small": "curbench_env.envs.datacomp.task:DataCompSmallTask",
}

#: Env id → (task family, task kwargs, one-line description).
ENV_IDS: dict[str, tuple[str, dict[str, Any], str]] = {
    "Curation-MiniVQA-v0": (
        "minivqa", {},
        "CPU default world: select 1,000 of a 20,000-example synthetic LLaVA-style pool; tiny LLaVA + LoRA; 8 benchmarks",
    ),
    "Curation-MiniCLIP-v0": (
        "miniclip", {},
        "CPU proxy of DataComp: filter a noisy 10,000-pair image-caption pool; tiny open_clip from scratch",
    ),
    "Curation-DataCompSmall-v0": (
        "datacomp_small", {},
        "GPU: DataComp small filtering track; open_clip ViT-B/32 at 12.8M samples seen; DataComp's 38 tasks",
    ),
    "Curation-LLaVA10k-v0": (
        "llava10k", {},
        "GPU: select 10k of LLaVA-665K; LLaVA-1.5-7B LoRA via DeepSpeed; 8 benchmarks via lmms-eval",
    ),
}

_TASK_CACHE: dict[str, CurationTask] = {}


def load_task(task: str | CurationTask, **kwargs: Any) -> CurationTask:
    """A task instance from a family name, a "module:Class" path or an instance (returned as is)."""
    if isinstance(task, CurationTask):
        return task
    target = TASKS.get(task, task)
    if ":" not in target:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))} (or pass 'module:Class')")
    key = f"{target}|{sorted(kwargs.items())!r}"
    if key not in _TASK_CACHE:
        module, _, cls = target.partition(":")
        factory = getattr(importlib.import_module(module), cls)
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as exc:
            raise ValueError(f"task {task!r} does not take these arguments {sorted(kwargs)}: {exc}") from None
        _TASK_CACHE[key] = factory(**kwargs)
    return _TASK_CACHE[key]


def env_entry(env_id: str) -> tuple[str, dict[str, Any], str]:
    """(task family, task kwargs, description) of a registered id; a clear error for unknown ids."""
    from curbench_env.errors import CurbenchError

    if env_id not in ENV_IDS:
        raise CurbenchError(f"unknown env {env_id!r}; available: {', '.join(ENV_IDS)}")
    return ENV_IDS[env_id]


def task_kwargs_for(env_id: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """An id's registered task arguments with ``overrides`` on top (what ``--task-arg`` means)."""
    return {**env_entry(env_id)[1], **(overrides or {})}


def register_envs() -> None:
    """Register every id in :data:`ENV_IDS` with Gymnasium (idempotent)."""
    for env_id, (family, task_kwargs, _) in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="curbench_env.env:CurationEnv",
            kwargs={"task": family, "task_kwargs": dict(task_kwargs), "env_id": env_id},
            disable_env_checker=False,
        )
