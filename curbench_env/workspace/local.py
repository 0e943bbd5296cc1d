"""The ``local`` backend: a plain subprocess shell. Trusted use only: no filesystem isolation."""

from __future__ import annotations

import os
import sys
import warnings

from curbench_env.workspace.processes import stop_then_kill, subtree
from curbench_env.workspace.shell import PersistentShell
from curbench_env.workspace.shell_backend import ShellWorkspace, rlimit_setter


class LocalWorkspace(ShellWorkspace):
    """Runs commands in a host bash inside the workspace directory.

    Limits (time, output, memory, file size, processes) apply, but the agent sees the
    whole host filesystem as the harness user: use it only for trusted agents and debugging.
    """

    name = "local"

    def __init__(self, *args, warn: bool = True, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        if warn:
            warnings.warn(
                "the 'local' workspace backend has no filesystem isolation: the agent can read "
                "anything the harness user can (use backend='bwrap' or 'docker' for untrusted agents)",
                stacklevel=3,
            )

    @property
    def root(self) -> str:
        return str(self.spec.host_dir.resolve())

    @property
    def pool_path(self) -> str:
        return str(self.spec.pool_dir.resolve()) if self.spec.pool_dir else ""

    def environment(self) -> dict[str, str]:
        env = super().environment()
        # Absolute paths: the shell runs inside the workspace, so a relative run directory
        # (the default ``runs/...``) would hide the tools. The interpreter's own folder, not its
        # resolved target: a virtual environment's python is a link to the base interpreter,
        # whose folder has none of the environment's packages.
        path = [str(self.spec.bin_dir.resolve()), os.path.dirname(os.path.abspath(sys.executable))]
        env["PATH"] = ":".join(path + ["/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def leftover_processes(self) -> int:
        return len(subtree(self.shell.pid)) if self.shell is not None else 0

    def _make_shell(self) -> PersistentShell:
        def kill_command(shell: PersistentShell) -> None:
            stop_then_kill(lambda: subtree(shell.pid))

        return PersistentShell(
            ["bash", "--noprofile", "--norc"],
            env=self.environment(),
            kill_command=kill_command,
            preexec_fn=rlimit_setter(self.spec.limits, with_nproc=os.geteuid() != 0, cgroup=self.cgroup),
            cwd=self.root,
        )
