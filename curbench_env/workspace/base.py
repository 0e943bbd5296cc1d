"""The workspace interface: a sandbox with a lifecycle (create, exec with limits, destroy)."""

from __future__ import annotations

import abc
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from curbench_env.config import SandboxLimits
from curbench_env.errors import WorkspaceError

#: Where things appear inside a sandboxed workspace (bwrap and docker backends).
SANDBOX_WORKSPACE = "/workspace"
SANDBOX_POOL = "/pool"
SANDBOX_BIN = "/opt/curbench/bin"
#: Unprivileged uid/gid commands run as when the harness itself is root.
SANDBOX_UID = 65534


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the workspace."""

    host: Path
    target: str
    read_only: bool = True


@dataclass
class CommandResult:
    """What one shell command produced."""

    output: str
    exit_code: int
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    shell_restarted: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class WorkspaceSpec:
    """Everything a backend needs to build a workspace for one episode."""

    host_dir: Path
    pool_dir: Path | None
    bin_dir: Path
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    env: dict[str, str] = field(default_factory=dict)
    extra_mounts: list[Mount] = field(default_factory=list)
    docker_image: str = "python:3.11-slim"


class Workspace(abc.ABC):
    """A sandboxed shell over a workspace directory.

    Lifecycle: ``start()`` → ``run(cmd)`` any number of times → ``close()``. The shell is
    persistent (cwd and exported variables survive between commands); every command has
    a time limit, an output cap and a kill of everything it started.
    """

    name: str = "abstract"

    def __init__(self, spec: WorkspaceSpec) -> None:
        self.spec = spec
        self.spec.host_dir.mkdir(parents=True, exist_ok=True)

    # -- paths -------------------------------------------------------------------------
    @property
    def root(self) -> str:
        """The workspace directory as commands inside see it."""
        return SANDBOX_WORKSPACE

    @property
    def pool_path(self) -> str:
        """The read-only pool as commands inside see it."""
        return SANDBOX_POOL

    def to_host(self, path: str, cwd: str | None = None) -> Path:
        """Map a path as the agent wrote it to the host, refusing anything outside the workspace."""
        inside = Path(path) if os.path.isabs(path) else Path(cwd or self.root) / path
        inside = Path(os.path.normpath(inside))
        root = Path(self.root)
        try:
            rel = inside.relative_to(root)
        except ValueError:
            raise WorkspaceError(
                f"{path!r} is outside the workspace {self.root}; submit a file inside it"
            ) from None
        host_root = self.spec.host_dir.resolve()
        host = (host_root / rel).resolve()
        if host != host_root and host_root not in host.parents:
            raise WorkspaceError(f"{path!r} resolves outside the workspace (a symlink?); copy the file in")
        return host

    def environment(self) -> dict[str, str]:
        """Variables every command sees."""
        env = {
            "HOME": self.root,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # Agents' scripts iterate over sets; a fixed hash seed keeps their selections repeatable.
            "PYTHONHASHSEED": "0",
            "POOL": self.pool_path,
            "WORKSPACE": self.root,
            "CURBENCH_OUTBOX": f"{self.root}/.curbench/outbox",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        }
        env.update(self.spec.env)
        return env

    # -- lifecycle ---------------------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Create the sandbox and its shell."""

    @abc.abstractmethod
    def run(self, command: str, timeout_s: float | None = None) -> CommandResult:
        """Run one command in the persistent shell."""

    @abc.abstractmethod
    def close(self) -> None:
        """Destroy the sandbox and every process in it. Idempotent."""

    def __enter__(self) -> Workspace:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hand_over(path: Path, uid: int = SANDBOX_UID) -> None:
    """Make a workspace writable by the unprivileged uid commands run as (links are not followed)."""
    for dirpath, _dirs, filenames in os.walk(path):
        os.chown(dirpath, uid, uid)
        for f in filenames:
            try:
                os.chown(os.path.join(dirpath, f), uid, uid, follow_symlinks=False)
            except OSError:
                pass


def bwrap_available() -> bool:
    """True where bubblewrap is installed and can create a sandbox."""
    return shutil.which("bwrap") is not None
