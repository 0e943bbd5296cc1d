"""A persistent bash over pipes with a sentinel protocol.

Each command is handed to the shell through a quoted heredoc and ``eval``'d in the shell
itself, so ``cd`` and ``export`` persist and a syntax error in the command cannot desync
the protocol. Output (stdout and stderr merged) is read until a per-shell random marker.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence

from curbench_env.errors import WorkspaceError
from curbench_env.text import normalise_text
from curbench_env.workspace.base import CommandResult

#: A flood of output beyond this multiple of the cap kills the command early.
_FLOOD_FACTOR = 8
#: How long to wait for the shell to come back after its command was killed.
_GRACE_S = 3.0
_STOP_GRACE_S = 0.3
_WATCH_S = 0.5  # how often a running command's watch (e.g. the disk quota) is checked


class PersistentShell:
    """One long-lived ``bash --noprofile --norc`` whose commands are run with limits.

    ``kill_command`` is called on timeout or flood: it must kill every process the current
    command started while leaving the shell alive (backends know how, e.g. by pid namespace).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        kill_command: Callable[[PersistentShell], None],
        preexec_fn: Callable[[], None] | None = None,
        cwd: str | None = None,
        user: int | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.kill_command = kill_command
        self.preexec_fn = preexec_fn
        self.cwd = cwd
        self.user = user
        self.pass_fds = tuple(pass_fds)
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = uuid.uuid4().hex
        self.last_cwd: str | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the shell and wait until it answers."""
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=self.preexec_fn,
                close_fds=True,
                pass_fds=self.pass_fds,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user is not None else None,
            )
        except OSError as exc:
            raise WorkspaceError(f"could not start the workspace shell ({self.argv[0]}): {exc}") from exc
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        hello = self.run("true", timeout_s=30.0, cap_bytes=65536)
        if hello.exit_code != 0 or hello.timed_out:
            out = hello.output.strip()
            self.close()
            raise WorkspaceError(f"the workspace shell did not start: {out or 'no output'}")

    @property
    def pid(self) -> int:
        """Host pid of the process we spawned (the sandbox launcher or bash itself)."""
        if self.proc is None:
            raise WorkspaceError("shell not started")
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the shell process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Kill the shell's whole process group. Idempotent."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    # -- commands ----------------------------------------------------------------------
    def _script(self, command: str) -> bytes:
        delim = f"__CB_CMD_{self.token}__"
        body = command if command.endswith("\n") else command + "\n"
        if f"\n{delim}\n" in "\n" + body:
            raise WorkspaceError("command contains the shell protocol delimiter")
        return (
            f"IFS= read -r -d '' __cb_cmd <<'{delim}'\n{body}{delim}\n"
            f'eval "$__cb_cmd" < /dev/null 2>&1\n'
            f"printf '\\036__CB_END_{self.token}__:%s:%s\\n' \"$?\" \"$PWD\"\n"
        ).encode("utf-8", errors="replace")

    def run(self, command: str, *, timeout_s: float, cap_bytes: int,
            watch: Callable[[], str | None] | None = None) -> CommandResult:
        """Run ``command``; return its output (capped), exit code and what went wrong.

        ``watch`` is called about every half second while the command runs; a reason it returns
        (e.g. a disk quota passed) kills the command like a timeout does.
        """
        if not self.alive():
            raise WorkspaceError("the workspace shell is not running")
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        marker = f"\x1e__CB_END_{self.token}__:".encode()
        start = time.monotonic()
        try:
            self.proc.stdin.write(self._script(command))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkspaceError(f"the workspace shell died: {exc}") from exc

        head = bytearray()
        window = bytearray()  # recent bytes, to find the marker across read boundaries
        total = 0
        timed_out = flooded = False
        stopped: str | None = None
        next_watch = start + _WATCH_S
        deadline = start + timeout_s
        kill_deadline: float | None = None
        result_line: bytes | None = None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        fd = self.proc.stdout.fileno()
        try:
            while True:
                now = time.monotonic()
                if watch is not None and kill_deadline is None and now >= next_watch:
                    stopped, next_watch = watch(), now + _WATCH_S
                if kill_deadline is None and (stopped or now >= deadline or total > cap_bytes * _FLOOD_FACTOR):
                    timed_out = not stopped and now >= deadline
                    flooded = not stopped and not timed_out
                    self.kill_command(self)
                    # A watch stops a command that does harm while it runs (filling the disk): the
                    # shell gets little time to finish its builtin loop before it is replaced.
                    kill_deadline = time.monotonic() + (_STOP_GRACE_S if stopped else _GRACE_S)
                if kill_deadline is not None and time.monotonic() >= kill_deadline:
                    break  # the shell itself is stuck (a builtin loop, exec >/dev/null ...)
                limit = kill_deadline if kill_deadline is not None else deadline
                if not sel.select(timeout=max(0.0, min(0.5, limit - time.monotonic()))):
                    if not self.alive():
                        break
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:  # EOF: the shell exited (e.g. `exit`)
                    break
                window += chunk
                idx = window.find(marker)
                if idx >= 0:
                    before = bytes(window[:idx])
                    rest = bytes(window[idx + len(marker):])
                    while b"\n" not in rest:
                        more = self._read_more(fd, sel, 2.0)
                        if not more:
                            break
                        rest += more
                    result_line = rest.split(b"\n", 1)[0]
                    total += len(before)
                    if len(head) < cap_bytes:
                        head += before[: cap_bytes - len(head)]
                    break
                # Everything but the last len(marker) bytes can no longer contain the marker.
                flush = len(window) - len(marker)
                if flush > 0:
                    part = bytes(window[:flush])
                    del window[:flush]
                    total += len(part)
                    if len(head) < cap_bytes:
                        head += part[: cap_bytes - len(head)]
        finally:
            sel.close()

        duration = time.monotonic() - start
        text = normalise_text(bytes(head))
        truncated = total > cap_bytes
        notes: list[str] = []
        if truncated:
            text += f"\n[output truncated: {total - len(head)} more bytes not shown (cap {cap_bytes} bytes)]"
        if flooded:
            notes.append("output flood: the command was killed")
            text += f"\n[command killed: it produced more than {cap_bytes * _FLOOD_FACTOR} bytes]"
        if timed_out:
            notes.append(f"timed out after {timeout_s:g}s")
            text += f"\n[command timed out after {timeout_s:g}s and was killed]"
        if stopped:
            notes.append(stopped)
            text += f"\n[command killed: {stopped}]"
        if result_line is None:
            rc = self.proc.poll() if self.proc else None
            return CommandResult(
                output=text, exit_code=124 if timed_out else (rc if rc is not None else -1),
                duration_s=duration, timed_out=timed_out, truncated=truncated,
                shell_restarted=True, notes=notes + ["shell lost"],
            )
        code_s, _, cwd = result_line.decode("utf-8", "replace").partition(":")
        try:
            rc = int(code_s)
        except ValueError:
            rc = -1
        if cwd:
            self.last_cwd = cwd
        if timed_out or flooded or stopped:
            rc = 124 if timed_out else 137
        return CommandResult(output=text, exit_code=rc, duration_s=duration, timed_out=timed_out,
                             truncated=truncated, notes=notes)

    def drain(self, cap_bytes: int, quiet_s: float = 0.05, max_s: float = 1.0) -> str:
        """Read what killed background processes left in the pipe, so it does not leak into the
        next command's output. Returns it (capped)."""
        if self.proc is None or self.proc.stdout is None:
            return ""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        got = bytearray()
        deadline = time.monotonic() + max_s
        try:
            while time.monotonic() < deadline and sel.select(timeout=quiet_s):
                try:
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                if len(got) < cap_bytes:
                    got += chunk[: cap_bytes - len(got)]
        finally:
            sel.close()
        return normalise_text(bytes(got))

    @staticmethod
    def _read_more(fd: int, sel: selectors.BaseSelector, timeout: float) -> bytes:
        if not sel.select(timeout=timeout):
            return b""
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return b""


# -- process-table helpers used by the backends' kill strategies ---------------------------
