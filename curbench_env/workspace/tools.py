"""Opening an episode's workspace: `submit` and the task's tools on its PATH, the chosen backend started."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from curbench_env.config import EpisodeConfig
from curbench_env.workspace import make_workspace
from curbench_env.workspace.base import Mount, Workspace, WorkspaceSpec


def install_tools(bin_dir: Path, task_tools: Path | None, programs: tuple[str, ...] = ("submit",)) -> Path:
    """Fill ``bin_dir`` afresh with the harness ``programs`` (`submit`, and `rewrite` where the task
    has a rewriting tool) and the executables in ``task_tools``; returns it."""
    if bin_dir.exists():
        shutil.rmtree(bin_dir)
    bin_dir.mkdir(parents=True)
    sources = [(name, resources.files("curbench_env.sandbox_bin") / name) for name in programs]
    if task_tools is not None:
        sources += [(t.name, t) for t in sorted(Path(task_tools).iterdir())
                    if t.is_file() and not t.name.startswith(("_", "."))]
    for name, src in sources:
        (bin_dir / name).write_bytes(src.read_bytes())
        (bin_dir / name).chmod(0o755)
    return bin_dir


def open_workspace(config: EpisodeConfig, host_dir: Path, bin_dir: Path, pool_dir: Path, task_tools: Path | None,
                   mounts: list[Mount], programs: tuple[str, ...] = ("submit",), **backend_kwargs: Any) -> Workspace:
    """Install the tools in ``bin_dir`` and start a workspace of ``config.backend`` on ``host_dir``."""
    spec = WorkspaceSpec(host_dir=host_dir, pool_dir=pool_dir, bin_dir=install_tools(bin_dir, task_tools, programs),
                         limits=config.limits, docker_image=config.docker_image, extra_mounts=mounts)
    if config.backend == "local":
        backend_kwargs.setdefault("warn", True)
    workspace = make_workspace(config.backend, spec, **backend_kwargs)
    workspace.start()
    return workspace
