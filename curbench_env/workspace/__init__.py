"""Workspace backends behind one interface: ``bwrap`` (default), ``docker``, ``local``."""

from __future__ import annotations

from typing import Any

from curbench_env.errors import WorkspaceError
from curbench_env.workspace.base import (
    SANDBOX_BIN,
    SANDBOX_POOL,
    SANDBOX_WORKSPACE,
    CommandResult,
    Mount,
    Workspace,
    WorkspaceSpec,
    bwrap_available,
)

__all__ = ["CommandResult", "Mount", "Workspace", "WorkspaceSpec", "make_workspace", "resolve_backend",
           "SANDBOX_BIN", "SANDBOX_POOL", "SANDBOX_WORKSPACE"]


def resolve_backend(name: str) -> str:
    """Turn ``auto`` into the best backend available here."""
    if name != "auto":
        return name
    return "bwrap" if bwrap_available() else "local"


def make_workspace(backend: str, spec: WorkspaceSpec, **kwargs: Any) -> Workspace:
    """Create (not start) a workspace of the named backend."""
    backend = resolve_backend(backend)
    if backend == "bwrap":
        from curbench_env.workspace.bwrap import BwrapWorkspace

        return BwrapWorkspace(spec, **kwargs)
    if backend == "docker":
        from curbench_env.workspace.docker import DockerWorkspace

        return DockerWorkspace(spec, **kwargs)
    if backend == "local":
        from curbench_env.workspace.local import LocalWorkspace

        return LocalWorkspace(spec, **kwargs)
    raise WorkspaceError(f"unknown workspace backend {backend!r}; choose bwrap, docker, local or auto")
