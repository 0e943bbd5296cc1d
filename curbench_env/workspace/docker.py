"""The ``docker`` backend: one container per episode through the docker SDK.

The container has no network, a pids limit, a memory limit and a file-size ulimit; the
workspace is bind-mounted read-write at /workspace and the pool read-only at /pool. One
``bash`` runs for the whole episode through an attached ``exec`` socket, with the same
sentinel protocol as the other backends. A timeout, or a background process left when a
command ends, kills every process in the container except its init, its main process and the
shell; a lost shell is replaced after a kill of everything it left. The harness finds and kills
those processes from the host, with the container frozen (a fork bomb cannot outrun it), so the
daemon must run on this machine, as a local dockerd does.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Any

from curbench_env.errors import WorkspaceError
from curbench_env.workspace.base import SANDBOX_BIN, SANDBOX_POOL, SANDBOX_UID, SANDBOX_WORKSPACE, hand_over
from curbench_env.workspace.shell import PersistentShell
from curbench_env.workspace.shell_backend import ShellWorkspace


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
        # Without a TTY the daemon multiplexes stdout and stderr into frames: an 8-byte header
        # (stream, 0, 0, 0, payload length big-endian) before each payload. Only payloads are output.
        buf = b""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 8:
                    size = int.from_bytes(buf[4:8], "big")
                    if len(buf) < 8 + size:
                        break
                    os.write(self._w, buf[8:8 + size])
                    buf = buf[8 + size:]
        except OSError:
            pass
        finally:
            self._alive = False
            os.close(self._w)

    def poll(self) -> int | None:
        return None if self._alive else 0

    def close(self) -> None:
        """Close the socket: the shell in the container reads end-of-input and exits."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


class _ExecShell(PersistentShell):
    """The persistent shell of a container: a ``bash`` started by ``docker exec``, attached by socket."""

    def __init__(self, workspace: DockerWorkspace) -> None:
        super().__init__(["docker-exec"], env={}, kill_command=workspace._kill_command)
        self.workspace = workspace

    def start(self) -> None:
        ws = self.workspace
        exec_id = ws.client.api.exec_create(ws.container.id, ["bash", "--noprofile", "--norc"], stdin=True,
                                            tty=False, environment=ws.environment(), workdir=SANDBOX_WORKSPACE)["Id"]
        sock = ws.client.api.exec_start(exec_id, socket=True, demux=False)
        self.proc = _SocketProcess(getattr(sock, "_sock", sock))  # type: ignore[assignment]
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        hello = self.run("echo $$", timeout_s=30, cap_bytes=4096)
        if hello.exit_code != 0 or not hello.output.strip():
            raise WorkspaceError(f"the container shell did not start: {hello.output.strip()}")
        ws._shell_pid = hello.output.strip().splitlines()[-1]

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close()  # type: ignore[attr-defined]


class DockerWorkspace(ShellWorkspace):
    """A container per episode (see the module docstring). Needs a running Docker daemon."""

    name = "docker"
    host_cgroup = False  # the container's own cgroup holds the memory and pids totals

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
        if os.getuid() == 0:  # commands run as SANDBOX_UID in the container (see container_kwargs)
            hand_over(self.spec.host_dir)
        self.container: Any | None = None
        self._shell_pid: str | None = None
        self._main_pid = "0"

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
            user=f"{os.getuid()}:{os.getgid()}" if os.getuid() != 0 else f"{SANDBOX_UID}:{SANDBOX_UID}",
            labels={"curbench": "workspace"},
        )

    def start(self) -> None:
        if self.container is None:
            try:
                self.container = self.client.containers.run(**self.container_kwargs())
            except Exception as exc:
                raise WorkspaceError(f"could not start the workspace container: {exc}") from exc
            # The container's main process (``sleep infinity`` under init) must outlive every kill.
            self._main_pid = self._as_root("cat /proc/1/task/1/children").split()[0]
        super().start()

    def _make_shell(self) -> PersistentShell:
        return _ExecShell(self)

    def _as_root(self, script: str) -> str:
        """Run ``script`` as root in the container, outside the agent's shell; its output."""
        assert self.container is not None
        _, out = self.container.exec_run(["sh", "-c", script], user="0")
        return out.decode("utf-8", "replace")

    def _others(self, keep_shell: bool = True) -> list[int]:
        """Host pids of the container's processes but its init, its main process (and the shell).

        Read from the host (``docker top`` and each pid's namespace ids), not by a command inside: a
        fork bomb that holds every pid the container may have leaves no room to start one.
        """
        assert self.container is not None
        keep = {"1", self._main_pid} | ({self._shell_pid} if keep_shell and self._shell_pid else set())
        top = self.container.top()
        col = top["Titles"].index("PID")
        out = []
        for row in top.get("Processes") or []:
            try:
                with open(f"/proc/{row[col]}/status") as fh:
                    inner = next(line.split()[-1] for line in fh if line.startswith("NSpid:"))
            except (OSError, StopIteration):
                continue  # gone already, or the daemon runs on another machine
            if inner not in keep:
                out.append(int(row[col]))
        return out

    def _sweep(self, keep_shell: bool = True) -> None:
        """Kill :meth:`_others` with the container frozen, so nothing forks while it dies."""
        for _ in range(20):
            victims = self._others(keep_shell)
            if not victims:
                return
            self.container.pause()
            try:
                for pid in victims:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            finally:
                self.container.unpause()

    def _kill_command(self, shell: PersistentShell) -> None:
        self._sweep()

    def leftover_processes(self) -> int:
        return len(self._others())

    def _restart(self) -> None:
        self._sweep(keep_shell=False)  # what the lost shell left
        super()._restart()

    def close(self) -> None:
        super().close()
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:
                pass
            self.container = None
