"""Host processes of a sandbox: the process table, subtrees, and a kill that a fork bomb cannot outrun."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def process_table() -> dict[int, tuple[int, str]]:
    """Map pid → (parent pid, command name) from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        lpar, rpar = stat.find("("), stat.rfind(")")
        fields = stat[rpar + 2:].split()
        if len(fields) < 2:
            continue
        table[int(entry)] = (int(fields[1]), stat[lpar + 1:rpar])
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """All processes below ``root`` in the process tree."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def kill_all(pids: list[int]) -> None:
    """SIGKILL each pid, ignoring those already gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/PID/task/*/children: no full process-table scan)."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(x) for x in fh.read().split())
    except OSError:
        pass
    return out


def subtree(root: int) -> list[int]:
    """All processes below ``root``, walking children files (cheap enough to run every step)."""
    out, stack = [], children(root)
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children(pid))
    return out


def stop_then_kill(list_pids: Callable[[], list[int]], rounds: int = 200) -> None:
    """Kill a process tree that may be forking (a fork bomb): SIGSTOP every process found, rescan
    until no new ones appear (stopped processes cannot fork), then SIGKILL them all."""
    stopped: set[int] = set()
    for _ in range(rounds):
        fresh = [p for p in list_pids() if p not in stopped]
        if not fresh:
            break
        for pid in fresh:
            try:
                os.kill(pid, signal.SIGSTOP)
            except (ProcessLookupError, PermissionError):
                pass
        stopped.update(fresh)
    kill_all(sorted(stopped))
    # Survivors of a race (forked between the last scan and the stop) go in a final sweep.
    for _ in range(10):
        rest = list_pids()
        if not rest:
            return
        kill_all(rest)
