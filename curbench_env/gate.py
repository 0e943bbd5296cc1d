"""The submission gate: a request from the workspace becomes a selection to train, or a refusal.

Order of the checks: the request itself (read from the outbox without following links), the
file (parse and validate against the task's rules), the checks scaffolds add, and the leakage
audit. Anything refused raises :class:`SubmissionError` with a message the agent can act on.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curbench_env.audit import AuditReport, LeakageAudit
from curbench_env.errors import SubmissionError, WorkspaceError
from curbench_env.submission import Selection, parse_submission

if TYPE_CHECKING:
    from curbench_env.task import CurationTask
    from curbench_env.workspace import Workspace

#: Where `submit` leaves requests, relative to the workspace.
OUTBOX = (".curbench", "outbox")
MAX_REQUEST_BYTES = 16_384
MAX_NOTE_CHARS = 2_000
MAX_PATH_CHARS = 4_096
MAX_REQUESTS_READ = 20
MAX_OUTBOX_ENTRIES = 10_000

#: A scaffold rule: raises SubmissionError to refuse a parsed selection before training.
SubmissionCheck = Callable[[Selection], None]


@dataclass(frozen=True)
class SubmitRequest:
    """One `submit PATH --note TEXT` as the harness received it."""

    path: str
    cwd: str | None = None
    note: str = ""

    @classmethod
    def from_json(cls, raw: bytes) -> SubmitRequest:
        """Parse and type-check a request file; any problem is a :class:`SubmissionError`."""
        if len(raw) > MAX_REQUEST_BYTES:
            raise SubmissionError(f"the request is {len(raw)} bytes (limit {MAX_REQUEST_BYTES})")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SubmissionError("the request is not JSON written by `submit`") from None
        if not isinstance(data, dict):
            raise SubmissionError("the request is not a JSON object")
        path, cwd, note = data.get("path"), data.get("cwd"), data.get("note", "")
        for field_name, value, optional in (("path", path, False), ("cwd", cwd, True), ("note", note, True)):
            if value is None and optional:
                continue
            if not isinstance(value, str):
                raise SubmissionError(f"the request's {field_name!r} is not a string")
            if "\0" in value:
                raise SubmissionError(f"the request's {field_name!r} contains a NUL byte")
        if not path or len(path) > MAX_PATH_CHARS or (cwd and len(cwd) > MAX_PATH_CHARS):
            raise SubmissionError(f"the request's path is empty or longer than {MAX_PATH_CHARS} characters")
        return cls(path=path, cwd=cwd or None, note=(note or "")[:MAX_NOTE_CHARS])


def take_requests(workspace_dir: Path, *, box: tuple[str, ...] = OUTBOX, parse: Callable[[bytes], Any] | None = None,
                  program: str = "submit") -> list[Any]:
    """Remove and return the requests waiting in the workspace's outbox, oldest first (``box``,
    ``parse`` and ``program``: another tool's outbox, its request parser and its name for messages).

    The outbox is agent-writable: nothing here follows a symbolic link, so a linked outbox or
    request can neither make the harness read nor delete anything outside the workspace.
    """
    parse = parse or SubmitRequest.from_json
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fds: list[int] = []
    try:
        fds.append(os.open(workspace_dir, flags))
        for part in box:
            fds.append(os.open(part, flags, dir_fd=fds[-1]))
    except OSError:  # no outbox, or a link where the outbox should be: nothing was submitted
        for fd in fds:
            os.close(fd)
        return []
    box_fd = fds[-1]
    out: list[Any] = []
    try:
        with os.scandir(box_fd) as entries:  # a flooded outbox is read a bounded slice at a time
            names = sorted(e.name for _, e in zip(range(MAX_OUTBOX_ENTRIES), entries, strict=False))
        for k, name in enumerate(names):
            if k < MAX_REQUESTS_READ and name.endswith(".json"):
                try:
                    out.append(parse(_read_no_follow(name, box_fd)))
                except SubmissionError as exc:
                    out.append(SubmissionError(f"unreadable request in the outbox ({exc}); use the `{program}` program"))
            elif k == MAX_REQUESTS_READ:
                out.append(SubmissionError(f"more than {MAX_REQUESTS_READ} files in the outbox; the rest were removed "
                                           f"unread (use the `{program}` program)"))
            try:
                os.unlink(name, dir_fd=box_fd)  # removes a link itself, never its target
            except OSError:
                pass
    finally:
        for fd in fds:
            os.close(fd)
    return out


def take_submission(workspace_dir: Path) -> tuple[SubmitRequest | None, list[str]]:
    """The command's submission (its first readable request) and a refusal message for each other one."""
    request, refusals = None, []
    for n, got in enumerate(take_requests(workspace_dir)):
        if isinstance(got, SubmissionError):
            refusals.append(f"== submission refused: {got} ==")
        elif n > 0:
            refusals.append(f"== submission of {got.path} refused: one submission per command; "
                            "submit it again in its own command ==")
        else:
            request = got
    return request, refusals


def _read_no_follow(name: str, dir_fd: int) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        raise SubmissionError("the request is a link or cannot be opened") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SubmissionError("the request is not a regular file")
        return os.read(fd, MAX_REQUEST_BYTES + 1)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Admitted:
    """A selection that passed every check, with its audit report."""

    selection: Selection
    audit: AuditReport


class SubmissionGate:
    """Turns requests into admitted selections: validation, scaffold checks, leakage audit."""

    def __init__(self, task: CurationTask) -> None:
        self.task = task
        self._checks: list[SubmissionCheck] = []

    @property
    def audit(self) -> LeakageAudit:
        """The leakage audit over the task's index (built by the task's ``prepare``)."""
        return LeakageAudit(self.task.leakage_index)

    @property
    def checks(self) -> tuple[SubmissionCheck, ...]:
        """The scaffold checks, in the order they run."""
        return tuple(self._checks)

    def add_check(self, check: SubmissionCheck) -> None:
        """Run ``check`` on every parsed selection before training (idempotent)."""
        if check not in self._checks:
            self._checks.append(check)

    def admit(self, request: SubmitRequest, workspace: Workspace) -> Admitted:
        """The validated, checked and audited selection of ``request``, or a SubmissionError."""
        try:
            host_path = workspace.to_host(request.path, request.cwd)
        except WorkspaceError as exc:
            raise SubmissionError(str(exc)) from None
        selection = parse_submission(host_path, self.task.rules, self.task.pool, shown_as=request.path)
        selection.note = request.note
        for check in self._checks:
            check(selection)
        audit = self.audit
        report = audit.check(self.task.audit_items(selection))
        audit.enforce(report)
        return Admitted(selection, report)
