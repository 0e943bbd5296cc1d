"""The ``docker`` backend: one container per episode through the docker SDK.

The container has no network, a pids limit, a memory limit and a file-size ulimit; the
workspace is bind-mounted read-write at /workspace and the pool read-only at /pool. One
``bash`` runs for the whole episode through an attached ``exec`` socket, with the same
sentinel protocol as the other backends; a timeout kills every process in the container
except the shell (the container's init stays).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from curbench_env.errors import WorkspaceError
from curbench_env.workspace.base import SANDBOX_BIN, SANDBOX_POOL, SANDBOX_WORKSPACE, CommandResult, Workspace
from curbench_env.workspace.shell import PersistentShell
from curbench_env.workspace.totals import note_quota, quota_watch


class _SocketProcess:
    """Adapts a docker exec socket to the pipe interface :class:`PersistentShell` reads from."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        r, w = os.pipe()
        self.stdout = os.fdopen(r, "rb", buffering=0)
        self._w = w
        self.stdin = sock.makefile("wb", buffering=0)
        self._alive = True
        self._pump = threading.Thread(target=self._copy, daemon=True)
        self._pump.start()

    def _copy(self) -> None:
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                os.write(self._w, data)
        except OSError:
            pass
        finally:
            self._alive = False
            os.close(self._w)

    def poll(self) -> int | None:
        return None if self._alive else 0


class DockerWorkspace(Workspace):
    """A container per episode (see the module docstring). Needs a running Docker daemon."""

    name = "docker"

    def __init__(self, *args: Any, client: Any | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if client is None:
            try:
                import docker

                client = docker.from_env()
                client.ping()
            except Exception as exc:  # the SDK raises several unrelated types here
                raise WorkspaceError(
                    f"no Docker daemon is reachable ({type(exc).__name__}: {exc}); start dockerd or set "
                    "DOCKER_HOST, or use backend='bwrap'"
                ) from exc
        self.client = client
        self.container: Any | None = None
        self.shell: PersistentShell | None = None
        self._shell_pid: str | None = None

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["PATH"] = ":".join([SANDBOX_BIN, "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def container_kwargs(self) -> dict[str, Any]:
        """Arguments for ``containers.run``: the isolation and limits of the episode."""
        limits = self.spec.limits
        volumes = {
            str(self.spec.host_dir.resolve()): {"bind": SANDBOX_WORKSPACE, "mode": "rw"},
            str(self.spec.bin_dir.resolve()): {"bind": SANDBOX_BIN, "mode": "ro"},
        }
        if self.spec.pool_dir is not None:
            volumes[str(self.spec.pool_dir.resolve())] = {"bind": SANDBOX_POOL, "mode": "ro"}
        for m in self.spec.extra_mounts:
            volumes[str(m.host)] = {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
        import docker.types

        return dict(
            image=self.spec.docker_image,
            command=["sleep", "infinity"],
            detach=True,
            init=True,
            network_disabled=True,
            network_mode="none",
            pids_limit=limits.max_processes,
            mem_limit=limits.memory_bytes,
            ulimits=[docker.types.Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
                     docker.types.Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files)],
            volumes=volumes,
            working_dir=SANDBOX_WORKSPACE,
            environment=self.environment(),
            user=f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 else "65534:65534",
            labels={"curbench": "workspace"},
        )

    def start(self) -> None:
        if self.container is None:
            try:
                self.container = self.client.containers.run(**self.container_kwargs())
            except Exception as exc:
                raise WorkspaceError(f"could not start the workspace container: {exc}") from exc
        self._start_shell()

    def _start_shell(self) -> None:
        assert self.container is not None
        exec_id = self.client.api.exec_create(self.container.id, ["bash", "--noprofile", "--norc"],
                                              stdin=True, tty=False, environment=self.environment(),
                                              workdir=SANDBOX_WORKSPACE)["Id"]
        sock = self.client.api.exec_start(exec_id, socket=True, demux=False)
        raw = getattr(sock, "_sock", sock)
        proc = _SocketProcess(raw)
        shell = PersistentShell(["docker-exec"], env={}, kill_command=self._kill_command)
        shell.proc = proc  # type: ignore[assignment]
        os.set_blocking(proc.stdout.fileno(), False)
        self.shell = shell
        self._shell_pid = None
        hello = shell.run("echo $$", timeout_s=30, cap_bytes=4096)
        if hello.exit_code != 0:
            raise WorkspaceError(f"the container shell did not start: {hello.output.strip()}")
        self._shell_pid = hello.output.strip().splitlines()[-1]

    def _kill_command(self, shell: PersistentShell) -> None:
        assert self.container is not None
        keep = self._shell_pid or "0"
        script = (f"for p in $(ls /proc | grep -E '^[0-9]+$'); do "
                  f"[ $p -gt 1 ] && [ $p != {keep} ] && [ $p != $$ ] && kill -9 $p 2>/dev/null; done; true")
        self.container.exec_run(["sh", "-c", script], user="0")

    def run(self, command: str, timeout_s: float | None = None) -> CommandResult:
        if self.shell is None:
            self.start()
        assert self.shell is not None
        timeout = timeout_s if timeout_s is not None else self.spec.limits.command_timeout_s
        watch = quota_watch(self.spec.host_dir, self.spec.limits.workspace_bytes)
        result = self.shell.run(command, timeout_s=timeout, cap_bytes=self.spec.limits.output_cap_bytes,
                                watch=watch)
        if result.shell_restarted:
            cwd = self.shell.last_cwd
            # Like the other backends: nothing the dead or hung shell started outlives it.
            self._shell_pid = None
            self._kill_command(self.shell)
            self._start_shell()
            if cwd:
                self.shell.run(f"cd '{cwd}'", timeout_s=10, cap_bytes=4096)
            result.output += "\n[the shell exited or hung; a new shell was started (exported variables were reset)]"
        return note_quota(result, watch)

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:
                pass
            self.container = None
        self.shell = None
