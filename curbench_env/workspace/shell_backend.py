"""Shared logic of the backends that run a :class:`PersistentShell` on this host."""

from __future__ import annotations

import abc
import resource
import shlex
from collections.abc import Callable

from curbench_env.config import SandboxLimits
from curbench_env.workspace.base import CommandResult, Workspace
from curbench_env.workspace.shell import PersistentShell
from curbench_env.workspace.totals import SandboxCgroup, note_quota, quota_watch, sandbox_cgroup


def rlimit_setter(limits: SandboxLimits, *, with_nproc: bool,
                  cgroup: SandboxCgroup | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that lowers the resource limits of the shell and all it starts, and moves
    it into the sandbox's cgroup (totals for everything it starts) where there is one."""
    wanted = [
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if with_nproc:
        wanted.append((resource.RLIMIT_NPROC, limits.max_processes))

    def apply() -> None:
        if cgroup is not None:
            cgroup.join()
        for which, value in wanted:
            soft, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, cap))

    return apply


class ShellWorkspace(Workspace):
    """A workspace whose commands go through one persistent shell; restarts it if it dies."""

    shell: PersistentShell | None = None
    cgroup: SandboxCgroup | None = None
    #: Whether the sandbox's totals come from a cgroup this harness makes (Docker makes its own).
    host_cgroup = True

    @abc.abstractmethod
    def _make_shell(self) -> PersistentShell:
        """Build (not start) the shell process for this backend."""

    def start(self) -> None:
        if self.shell is not None and self.shell.alive():
            return
        if self.cgroup is None and self.host_cgroup:
            self.cgroup = sandbox_cgroup(self.spec.limits.memory_bytes, self.spec.limits.max_processes)
        self.shell = self._make_shell()
        self.shell.start()

    def run(self, command: str, timeout_s: float | None = None) -> CommandResult:
        if self.shell is None:
            self.start()
        assert self.shell is not None
        if not self.shell.alive():
            self._restart()
        timeout = timeout_s if timeout_s is not None else self.spec.limits.command_timeout_s
        watch = quota_watch(self.spec.host_dir, self.spec.limits.workspace_bytes)
        result = self.shell.run(command, timeout_s=timeout, cap_bytes=self.spec.limits.output_cap_bytes,
                                watch=watch)
        if not result.shell_restarted and self.shell.alive():
            stray = self.leftover_processes()
            if stray:
                # Background processes do not outlive their command: a fork bomb, a setsid'd
                # daemon or a forgotten `&` job would otherwise starve the next step.
                self.shell.kill_command(self.shell)
                late = self.shell.drain(4096)
                if late.strip():
                    result.output += "\n" + late.rstrip()
                result.notes.append(f"stopped {stray} background process(es)")
                result.output += (f"\n[stopped {stray} background process(es) still running when the command "
                                  "ended; run long jobs in the foreground]")
        if result.shell_restarted or not self.shell.alive():
            self._restart()
            result.shell_restarted = True
            result.output += (
                "\n[the shell exited or hung; a new shell was started in "
                f"{self.shell.last_cwd or self.root} (exported variables were reset)]"
            )
        return note_quota(result, watch)

    def leftover_processes(self) -> int:
        """How many processes the last command left running besides the shell."""
        return 0

    def _restart(self) -> None:
        cwd = self.shell.last_cwd if self.shell else None
        if self.shell is not None:
            self.shell.close()
        self.shell = self._make_shell()
        self.shell.start()
        if cwd:
            self.shell.run(f"cd {shlex.quote(cwd)} 2>/dev/null", timeout_s=10, cap_bytes=4096)
            self.shell.last_cwd = cwd

    def close(self) -> None:
        if self.shell is not None:
            self.shell.close()
            self.shell = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
