"""curbench-env: Curation-Bench as a Gymnasium environment.

``import curbench_env`` registers the env ids (``Curation-MiniVQA-v0``, ...) with Gymnasium.
"""

from __future__ import annotations

# First: torchvision's CUDA-only wheel on a CPU torch is made importable before anything imports it.
from curbench_env.compat import install_import_hook  # noqa: F401  (installs it on import)
from curbench_env.config import EpisodeConfig, SandboxLimits
from curbench_env.env import CurationEnv
from curbench_env.errors import (
    CurbenchError,
    LeakageError,
    PipelineError,
    SubmissionError,
    TaskUnavailable,
    WorkspaceError,
)
from curbench_env.pipeline import EvalResult, Pipeline
from curbench_env.registry import ENV_IDS, register_envs
from curbench_env.runner import resume_env, run_episode
from curbench_env.submission import Selection, SubmissionRules
from curbench_env.task import CurationTask

__version__ = "0.1.0"

__all__ = [
    "CurationEnv", "CurationTask", "CurbenchError", "ENV_IDS", "EpisodeConfig", "EvalResult", "LeakageError",
    "Pipeline", "PipelineError", "SandboxLimits", "Selection", "SubmissionError", "SubmissionRules",
    "TaskUnavailable", "WorkspaceError", "__version__", "resume_env", "run_episode",
]

register_envs()


def __getattr__(name: str):  # lazy subpackages: `curbench_env.wrappers.AdaptPapersWrapper` works after import
    import importlib

    if name in ("envs", "wrappers", "agents", "scaffolds"):
        return importlib.import_module(f"curbench_env.{name}")
    raise AttributeError(name)
