"""Task families and env ids as data: ``register(id, entry_point, kwargs)`` like Gymnasium's own."""

from __future__ import annotations

import importlib
import inspect
import threading
from dataclasses import dataclass, field
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

@dataclass(frozen=True)
class EnvSpec:
    """A registered env id: the task family it runs, that task's arguments, and one line about it."""

    id: str
    task: str
    description: str
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    #: CurationEnv arguments of the id (e.g. its iteration budget); callers' own arguments win.
    episode_kwargs: dict[str, Any] = field(default_factory=dict)


def _specs(*specs: EnvSpec) -> dict[str, EnvSpec]:
    return {s.id: s for s in specs}


#: Env id → :class:`EnvSpec`.
ENV_IDS: dict[str, EnvSpec] = _specs(
    EnvSpec(id="Curation-MiniVQA-v0", task="minivqa",
            description="CPU default world: select 1,000 of a 20,000-example synthetic LLaVA-style pool; "
                        "tiny LLaVA + LoRA; 8 benchmarks"),
    EnvSpec(id="Curation-MiniCLIP-v0", task="miniclip",
            description="CPU proxy of DataComp: filter a noisy 10,000-pair image-caption pool; "
                        "tiny open_clip from scratch"),
    EnvSpec(id="Curation-DataCompSmall-v0", task="datacomp_small",
            description="GPU: DataComp small filtering track; open_clip ViT-B/32 at 12.8M samples seen; "
                        "DataComp's 38 tasks"),
    EnvSpec(id="Curation-LLaVA10k-v0", task="llava10k",
            description="GPU: select 10k of LLaVA-665K; LLaVA-1.5-7B LoRA via DeepSpeed; 8 benchmarks via lmms-eval"),
    # The rewriting setting: select, and rewrite with an external (M)LLM under a budget (curbench_env.rewrite).
    EnvSpec(id="Curation-MiniVQA-Rewrite-v0", task="minivqa",
            description="CPU: MiniVQA with a `rewrite` tool (a simulated MLLM that reads the pictures), "
                        "2,000 rewrites per episode; 20 iterations",
            task_kwargs={"rewriter": "sim", "allow_rewrite": True}, episode_kwargs={"iteration_budget": 20}),
    EnvSpec(id="Curation-LLaVA10k-Rewrite-v0", task="llava10k",
            description="GPU: LLaVA-10k with a `rewrite` tool backed by an MLLM you name "
                        "(task argument rewriter=litellm:MODEL or hf:PATH); 20 iterations",
            task_kwargs={"allow_rewrite": True, "rewrite_budget": 10_000}, episode_kwargs={"iteration_budget": 20}),
)

_TASK_CACHE: dict[str, CurationTask] = {}
_TASK_CACHE_LOCK = threading.RLock()  # concurrent episodes of one process share one task (and its pipeline)


def load_task(task: str | CurationTask, **kwargs: Any) -> CurationTask:
    """A task instance from a family name, a "module:Class" path or an instance (returned as is)."""
    if isinstance(task, CurationTask):
        return task
    target = TASKS.get(task, task)
    if ":" not in target:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))} (or pass 'module:Class')")
    key = f"{target}|{sorted(kwargs.items())!r}"
    with _TASK_CACHE_LOCK:
        if key not in _TASK_CACHE:
            module, _, cls = target.partition(":")
            factory = getattr(importlib.import_module(module), cls)
            try:
                inspect.signature(factory).bind(**kwargs)
            except TypeError as exc:
                raise ValueError(f"task {task!r} does not take these arguments {sorted(kwargs)}: {exc}") from None
            _TASK_CACHE[key] = factory(**kwargs)
        return _TASK_CACHE[key]


def env_entry(env_id: str) -> EnvSpec:
    """The spec of a registered id; a clear error for unknown ids."""
    from curbench_env.errors import CurbenchError

    if env_id not in ENV_IDS:
        raise CurbenchError(f"unknown env {env_id!r}; available: {', '.join(ENV_IDS)}")
    return ENV_IDS[env_id]


def task_kwargs_for(env_id: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """An id's registered task arguments with ``overrides`` on top (what ``--task-arg`` means)."""
    return {**env_entry(env_id).task_kwargs, **(overrides or {})}


def register_envs() -> None:
    """Register every id in :data:`ENV_IDS` with Gymnasium (idempotent)."""
    for spec in ENV_IDS.values():
        if spec.id not in gym.registry:
            gym.register(id=spec.id, entry_point="curbench_env.env:CurationEnv",
                         kwargs={"task": spec.task, "task_kwargs": dict(spec.task_kwargs), "env_id": spec.id,
                                 **spec.episode_kwargs})
