"""The ``bwrap`` backend: bubblewrap namespaces, no daemon. The default on Linux.

The sandbox sees only a whitelist: /usr and /etc read-only, the Python environment
read-only (without curbench's own source: an empty tmpfs covers it), the pool read-only at /pool, the workspace read-write at /workspace, a private
/tmp, no network, its own pid namespace. When the harness runs as root, bwrap does the
mounts and ``setpriv`` then drops to uid 65534 before bash starts, so visible root-owned
files stay unreadable; the launcher starts with a minimal environment, so nothing of the
harness's (API keys included) is visible through /proc.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from curbench_env.errors import WorkspaceError
from curbench_env.workspace.base import (
    SANDBOX_BIN,
    SANDBOX_POOL,
    SANDBOX_UID,
    SANDBOX_WORKSPACE,
    Mount,
    hand_over,
)
from curbench_env.workspace.processes import descendants, process_table, stop_then_kill, subtree
from curbench_env.workspace.seccomp import filter_fd
from curbench_env.workspace.shell import PersistentShell
from curbench_env.workspace.shell_backend import ShellWorkspace, rlimit_setter

#: curbench's own packages: never visible in the sandbox, or an agent could read the world
#: generator and the harness (and rebuild what is hidden) from the installed source.
_PACKAGES = ("curbench_env", "curbench_env.envs", "curbench_env.wrappers", "curbench_env.agents",
             "curbench_env.scaffolds", "curbench_env.configs")


def python_mounts() -> list[Mount]:
    """Read-only mounts that make this Python (its interpreter and installed libraries) usable inside."""
    paths = sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}, key=lambda x: len(x.parts))
    keep: list[Path] = []
    for p in paths:
        if str(p).startswith(("/usr/", "/etc/")) or p == Path("/usr"):
            continue
        if not any(parent == k for k in keep for parent in p.parents):
            keep.append(p)
    return [Mount(host=p, target=str(p)) for p in keep]


def harness_paths() -> list[Path]:
    """Where curbench's own source lives on this machine (to be masked wherever a mount exposes it)."""
    out: set[Path] = set()
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            out.add(Path(loc).resolve())
    return sorted(out)


class BwrapWorkspace(ShellWorkspace):
    """A bubblewrap sandbox with a persistent bash (see the module docstring)."""

    name = "bwrap"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        if shutil.which("bwrap") is None:
            raise WorkspaceError(
                "bubblewrap is not installed: `apt-get install bubblewrap` (or use backend='docker', "
                "or backend='local' for trusted agents)"
            )
        self._as_root = os.geteuid() == 0
        self._seccomp_fd = filter_fd()  # no user namespaces inside (see workspace/seccomp.py)
        self._shell_pid: int | None = None
        self._init_pid: int = 0
        if self._as_root:
            hand_over(self.spec.host_dir)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        venv_bin = os.path.dirname(os.path.abspath(sys.executable))
        env["PATH"] = ":".join([SANDBOX_BIN, venv_bin, "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def _argv(self) -> list[str]:
        return self.sandbox_argv(["bash", "--noprofile", "--norc"])

    def sandbox_argv(self, command: list[str], *, bin_dir: Path | None = None, mounts: Sequence[Mount] = (),
                     env: Mapping[str, str] | None = None, seccomp_fd: int | None = None) -> list[str]:
        """The bwrap command line that runs ``command`` in this workspace's sandbox: the same binds and
        namespaces as the shell, ``bin_dir`` in place of the episode's PATH folder, ``mounts`` added and
        ``env`` over the workspace's variables."""
        argv = ["bwrap", "--ro-bind", "/usr", "/usr"]
        for name in ("bin", "lib", "lib64", "sbin", "lib32"):
            p = Path("/") / name
            if p.is_symlink():
                argv += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                argv += ["--ro-bind", str(p), str(p)]
        argv += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
        binds = [Mount(self.spec.host_dir.resolve(), SANDBOX_WORKSPACE, read_only=False),
                 Mount((bin_dir or self.spec.bin_dir).resolve(), SANDBOX_BIN)]
        if self.spec.pool_dir is not None:
            binds.append(Mount(self.spec.pool_dir.resolve(), SANDBOX_POOL))
        binds += python_mounts() + list(self.spec.extra_mounts) + list(mounts)
        made: set[str] = {"/", "/usr", "/etc", "/tmp", "/proc", "/dev"}
        for m in binds:
            # Parents bwrap would create itself are root-only (0700); make them traversable.
            for parent in reversed(Path(m.target).parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind" if m.read_only else "--bind", str(m.host), m.target]
        for hidden in harness_paths():  # an empty tmpfs over the source, whichever mount (/usr too) shows it
            argv += ["--tmpfs", str(hidden)]
        # As root, --unshare-all would add a user namespace in which uid 65534 is unmapped.
        argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                 "--die-with-parent", "--new-session", "--hostname", "sandbox",
                 "--chdir", SANDBOX_WORKSPACE, "--clearenv"]
        for k, v in {**self.environment(), **(env or {})}.items():
            argv += ["--setenv", k, v]
        seccomp_fd = self._seccomp_fd if seccomp_fd is None else seccomp_fd
        if seccomp_fd is not None:
            argv += ["--seccomp", str(seccomp_fd)]
        if self._as_root:
            argv += ["--", "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        else:
            argv += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--"]
        return argv + list(command)

    def spawn(self, command: list[str], *, bin_dir: Path | None = None, mounts: Sequence[Mount] = (),
              env: Mapping[str, str] | None = None, stdout: IO[bytes] | int | None = None,
              stderr: IO[bytes] | int | None = None) -> subprocess.Popen:
        """Start ``command`` in a second sandbox over this workspace (see :meth:`sandbox_argv`), in its own
        process group: native-mode agents run here. The shell's per-process limits apply (Claude Code and
        Codex run under the 8 GB address-space cap), and the sandbox's cgroup totals, where there is one,
        count it with the shell's commands."""
        fd = filter_fd()
        try:
            return subprocess.Popen(
                self.sandbox_argv(command, bin_dir=bin_dir, mounts=mounts, env=env, seccomp_fd=fd),
                env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                start_new_session=True, pass_fds=(fd,) if fd is not None else (),
                preexec_fn=rlimit_setter(self.spec.limits, with_nproc=not self._as_root, cgroup=self.cgroup))
        finally:
            if fd is not None:
                os.close(fd)

    def _make_shell(self) -> PersistentShell:
        self._shell_pid = None
        if self._seccomp_fd is not None:
            os.lseek(self._seccomp_fd, 0, os.SEEK_SET)  # each bwrap reads the filter from the start
        return PersistentShell(
            self._argv(),
            # The launcher's own environment is readable through /proc/1/environ inside: keep it bare.
            env={"PATH": "/usr/bin:/bin"},
            kill_command=self._kill_command,
            preexec_fn=rlimit_setter(self.spec.limits, with_nproc=not self._as_root, cgroup=self.cgroup),
            pass_fds=(self._seccomp_fd,) if self._seccomp_fd is not None else (),
        )

    def _locate(self, shell: PersistentShell) -> tuple[int, int] | None:
        """Host pids of the sandbox's init (pid 1 inside) and of its bash."""
        if self._shell_pid is None or not os.path.exists(f"/proc/{self._shell_pid}"):
            table = process_table()
            bashes = [p for p in descendants(shell.pid, table) if table[p][1] == "bash"]
            if not bashes:
                return None
            self._shell_pid = min(bashes)
            self._init_pid = table[self._shell_pid][0]
        return self._init_pid, self._shell_pid

    def _kill_command(self, shell: PersistentShell) -> None:
        """Kill every process in the sandbox except its init and the shell.

        Orphans (``setsid``, ``nohup``, a fork bomb's children) are re-parented to the
        sandbox's init, so walking init's subtree finds them all.
        """
        where = self._locate(shell)
        if where is None:
            return
        init, bash = where
        stop_then_kill(lambda: [p for p in subtree(init) if p != bash])

    def leftover_processes(self) -> int:
        """Processes still running in the sandbox besides the shell (background jobs)."""
        if self.shell is None:
            return 0
        where = self._locate(self.shell)
        if where is None:
            return 0
        return sum(1 for p in subtree(where[0]) if p != where[1])

    def close(self) -> None:
        super().close()
        if self._seccomp_fd is not None:
            os.close(self._seccomp_fd)
            self._seccomp_fd = None
