"""Limits for a whole sandbox, not per process: a cgroup with a memory total and a process total,
and a disk quota on the workspace checked while commands run.

Per-process rlimits let three processes hold three times the memory limit and let a fork bomb
spread under a new uid; a cgroup counts everything the sandbox starts together. Both cgroup
versions are handled: v2 (``memory.max``, ``pids.max`` in one unified hierarchy) and v1 (the
``memory`` and ``pids`` controllers mounted apart, as on this project's CI machines). Where no
writable hierarchy exists (no root, no delegation), :func:`sandbox_cgroup` returns None and the
caller keeps its per-process limits.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

from curbench_env.workspace.base import CommandResult

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "curbench"


class SandboxCgroup:
    """One sandbox's cgroup(s): create, join (from the sandbox's first process), kill all, remove."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs  # controller ("memory", "pids", or "unified") -> cgroup directory

    @classmethod
    def create(cls, memory_bytes: int, max_processes: int, root: Path = CGROUP_ROOT) -> SandboxCgroup:
        """Create the cgroup(s) with the two totals; OSError when the hierarchy is not writable."""
        name = f"sandbox-{uuid.uuid4().hex[:12]}"
        if (root / "cgroup.controllers").exists():  # v2: one hierarchy
            controllers = (root / "cgroup.controllers").read_text().split()
            if not {"memory", "pids"} <= set(controllers):
                raise OSError("the cgroup v2 hierarchy lacks the memory or pids controller")
            parent = root / PARENT
            parent.mkdir(exist_ok=True)
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
            d = parent / name
            d.mkdir()
            (d / "memory.max").write_text(str(memory_bytes))
            if (d / "memory.swap.max").exists():
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(max_processes))
            return cls({"unified": d})
        dirs: dict[str, Path] = {}
        try:
            for controller, files in (("memory", {"memory.limit_in_bytes": memory_bytes}),
                                      ("pids", {"pids.max": max_processes})):
                d = root / controller / PARENT / name
                d.mkdir(parents=True)
                dirs[controller] = d
                for fname, value in files.items():
                    (d / fname).write_text(str(value))
        except OSError:
            cls(dirs).remove()
            raise
        return cls(dirs)

    def join(self) -> None:
        """Move the calling process (and so everything it starts) into the cgroup(s)."""
        for d in self.dirs.values():
            with open(d / "cgroup.procs", "w") as fh:
                fh.write(str(os.getpid()))

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        d = next(iter(self.dirs.values()))
        try:
            return [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def memory_peak(self) -> int | None:
        """The most memory the sandbox held at once, in bytes (where the kernel reports it)."""
        for d, fname in ((self.dirs.get("memory"), "memory.max_usage_in_bytes"),
                         (self.dirs.get("unified"), "memory.peak")):
            if d is not None and (d / fname).exists():
                return int((d / fname).read_text().strip())
        return None

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup (a fork bomb included), until it is empty."""
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self) -> None:
        """Kill what is left and remove the cgroup directories."""
        self.kill_all()
        for d in self.dirs.values():
            try:
                d.rmdir()
            except OSError:
                pass


_WARNED = False


def sandbox_cgroup(memory_bytes: int, max_processes: int) -> SandboxCgroup | None:
    """A new sandbox cgroup, or None (with one warning per process) where cgroups cannot be used."""
    global _WARNED
    try:
        return SandboxCgroup.create(memory_bytes, max_processes)
    except OSError as exc:
        if not _WARNED:
            import warnings

            warnings.warn(f"no writable cgroup hierarchy ({exc}); the sandbox's memory and process limits "
                          "apply per process, not to the sandbox as a whole", RuntimeWarning, stacklevel=2)
            _WARNED = True
        return None


def workspace_bytes(root: Path, stop_above: int) -> int:
    """Disk space used under ``root`` (allocated blocks, links not followed); stops counting once
    past ``stop_above`` so a huge tree costs no more than the check needs."""
    total, stack = 0, [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            if total > stop_above:
                return total
    return total


def quota_watch(workspace_dir: Path, quota: int) -> Callable[[], str | None]:
    """A watch for :meth:`PersistentShell.run`: the reason to stop a command once the workspace
    uses more disk than ``quota`` bytes (None while it does not)."""

    def over() -> str | None:
        if workspace_bytes(workspace_dir, quota) > quota:
            return f"the workspace passed its disk quota of {quota / 1e9:.2f} GB; delete files to go on"
        return None

    return over


def note_quota(result: CommandResult, watch: Callable[[], str | None]) -> CommandResult:
    """``result`` with a note when the workspace is over its quota after the command (a write too
    quick for the watch): the agent is told to delete files."""
    reason = watch()
    if reason and reason not in result.notes:
        result.notes.append(reason)
        result.output += f"\n[{reason}]"
    return result
