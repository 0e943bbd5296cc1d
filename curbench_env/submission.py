"""Parse and validate a submitted file into a :class:`Selection`.

Every problem is reported precisely (line number, id) and nothing is trained; the env
turns :class:`SubmissionError` into an observation and the iteration is not spent.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curbench_env.errors import SubmissionError

MAX_PROBLEMS_SHOWN = 10


@dataclass(frozen=True)
class SubmissionRules:
    """What a task accepts as a submission."""

    budget: int
    formats: tuple[str, ...] = ("jsonl", "json", "txt")
    max_copies: int = 1
    allow_rewrite: bool = False
    rewrite_fields: tuple[str, ...] = ("conversations",)
    max_file_bytes: int = 64 << 20
    min_examples: int = 1

    def describe(self) -> str:
        """One paragraph for the task README and error messages."""
        fmts = ", ".join(f".{f}" for f in self.formats)
        dup = "no duplicate ids" if self.max_copies == 1 else f"an id may appear up to {self.max_copies} times"
        rw = (f"full records may rewrite {', '.join(self.rewrite_fields)}" if self.allow_rewrite
              else "records must match the pool (no rewriting)")
        return f"at most {self.budget} examples; formats {fmts}; {dup}; {rw}"


@dataclass
class Selection:
    """A validated submission: ordered ids and, for rewrites, the rewritten records."""

    ids: list[str]
    rewrites: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    note: str = ""

    @property
    def content_hash(self) -> str:
        """Hash of what would be trained on (order-independent, rewrites included)."""
        h = hashlib.sha256()
        for i in sorted(self.ids):
            h.update(i.encode())
            h.update(b"\0")
        for i in sorted(self.rewrites):
            h.update(json.dumps(self.rewrites[i], sort_keys=True).encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.ids)


class PoolIndex:
    """What validation needs to know about the pool: ids and, for schema checks, records."""

    def __init__(self, ids: list[str], record: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        self.ids = ids
        self._set = frozenset(ids)
        self._record = record

    def __contains__(self, item: str) -> bool:
        return item in self._set

    def __len__(self) -> int:
        return len(self.ids)

    def record(self, id_: str) -> Mapping[str, Any] | None:
        """The pool's record for ``id_`` (None where the task gives no record access)."""
        return self._record(id_) if self._record else None


def _id_of(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def read_without_links(path: Path, max_bytes: int, name: str) -> bytes:
    """The bytes of the file at ``path`` (a resolved path: it has no symbolic link in it), opened one
    component at a time without following any link, and without blocking on a FIFO. A component that
    became a link after the path was resolved (an agent's process racing the harness) is refused, so
    the harness never reads outside the workspace; more than ``max_bytes`` is an error."""
    flags = os.O_RDONLY | os.O_NOFOLLOW
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in path.parts[1:-1]:
            try:
                nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            except OSError:
                raise SubmissionError(f"{name}: no such file (or a folder on its path is a link)") from None
            os.close(fd)
            fd = nxt
        try:
            file_fd = os.open(path.name, flags | os.O_NONBLOCK, dir_fd=fd)
        except FileNotFoundError:
            raise SubmissionError(f"{name}: no such file") from None
        except OSError:
            raise SubmissionError(f"{name}: cannot be opened (a symbolic link? copy the file in)") from None
    finally:
        os.close(fd)
    try:
        st = os.fstat(file_fd)
        if not stat.S_ISREG(st.st_mode):
            raise SubmissionError(f"{name}: not a regular file")
        if st.st_size > max_bytes:
            raise SubmissionError(
                f"{name}: the file is {st.st_size / 1e6:.1f} MB; submissions are limited to "
                f"{max_bytes / 1e6:.0f} MB (submit ids, not images)"
            )
        chunks, left = [], max_bytes + 1
        while left > 0 and (chunk := os.read(file_fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(file_fd)
    if len(data) > max_bytes:  # it grew while it was read
        raise SubmissionError(f"{name}: the file is over {max_bytes / 1e6:.0f} MB (submit ids, not images)")
    if not data:
        raise SubmissionError(f"{name}: the file is empty")
    return data


def parse_submission(path: Path, rules: SubmissionRules, pool: PoolIndex, *, shown_as: str = "") -> Selection:
    """Read ``path`` (resolved, inside the workspace) and return the validated selection, or raise
    :class:`SubmissionError`. The file is read once, through :func:`read_without_links`."""
    name = shown_as or path.name
    raw = read_without_links(path, rules.max_file_bytes, name)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in rules.formats:
        raise SubmissionError(
            f"{name}: unsupported format '.{suffix}'; this task accepts "
            + ", ".join(f".{f}" for f in rules.formats)
        )
    if suffix == "npy":
        entries = _read_npy(io.BytesIO(raw), name)
    else:
        if b"\0" in raw[:65536]:
            raise SubmissionError(f"{name}: the file is binary, not text; write JSONL or one id per line")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SubmissionError(f"{name}: not valid UTF-8 text (byte {exc.start}); is it a binary file?") from None
        if suffix == "txt":
            entries = _read_txt(text)
        elif suffix == "json":
            entries = _read_json(text, name)
        else:
            entries = _read_jsonl(text, name)
    return _validate(entries, rules, pool, name)


# -- readers: each yields (line number, id or None, record or None, problem or None) -------
Entry = tuple[int, str | None, dict[str, Any] | None, str | None]


def _read_txt(text: str) -> list[Entry]:
    out: list[Entry] = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if len(s.split()) > 1:
            out.append((n, None, None, f"line {n}: expected one id per line, got {s[:60]!r}"))
        else:
            out.append((n, s, None, None))
    return out


def _entry_from_obj(n: int, obj: Any) -> Entry:
    if isinstance(obj, dict):
        if "id" not in obj:
            return (n, None, None, f"line {n}: missing field \"id\" (expected {{\"id\": ...}})")
        id_ = _id_of(obj["id"])
        if id_ is None:
            return (n, None, None, f"line {n}: \"id\" must be a string or integer, got {type(obj['id']).__name__}")
        return (n, id_, obj if len(obj) > 1 else None, None)
    id_ = _id_of(obj)
    if id_ is None:
        return (n, None, None, f"line {n}: expected an object like {{\"id\": ...}}, got {type(obj).__name__}")
    return (n, id_, None, None)


#: Records are a few levels deep; anything deeper is refused before it can exhaust the stack.
MAX_JSON_DEPTH = 32


def _load_json(text: str) -> Any:
    """``json.loads`` that refuses values nested deeper than :data:`MAX_JSON_DEPTH` (ValueError)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return obj


def _read_jsonl(text: str, name: str) -> list[Entry]:
    out: list[Entry] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = _load_json(line)
        except json.JSONDecodeError as exc:
            out.append((n, None, None, f"line {n}: malformed JSON ({exc.msg} at column {exc.colno})"))
            continue
        except ValueError as exc:
            out.append((n, None, None, f"line {n}: {exc}"))
            continue
        out.append(_entry_from_obj(n, obj))
    return out


def _read_json(text: str, name: str) -> list[Entry]:
    try:
        data = _load_json(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{name}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:
        raise SubmissionError(f"{name}: {exc}") from None
    if not isinstance(data, list):
        raise SubmissionError(f"{name}: a .json submission must be a list of ids or records")
    return [_entry_from_obj(n, obj) for n, obj in enumerate(data, 1)]


def _read_npy(path: Path | io.BytesIO, name: str) -> list[Entry]:
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise SubmissionError(f"{name}: not a readable .npy array ({exc})") from None
    if arr.ndim != 1:
        raise SubmissionError(f"{name}: expected a 1-D array of uids, got shape {arr.shape}")
    if arr.dtype.names is not None and len(arr.dtype.names) == 2 and all(
            arr.dtype[f].kind == "u" and arr.dtype[f].itemsize == 8 for f in arr.dtype.names):
        # DataComp's subset format: each 128-bit uid as a (high, low) pair of uint64.
        hi, lo = arr.dtype.names
        return [(n, f"{int(a):016x}{int(b):016x}", None, None) for n, (a, b) in
                enumerate(zip(arr[hi].tolist(), arr[lo].tolist(), strict=True), 1)]
    if arr.dtype.kind not in "UiuS":
        raise SubmissionError(f"{name}: expected string or integer uids, got dtype {arr.dtype}")
    return [(n, str(v.decode() if isinstance(v, bytes) else v), None, None) for n, v in enumerate(arr.tolist(), 1)]


# -- validation ------------------------------------------------------------------------------
def _validate(entries: list[Entry], rules: SubmissionRules, pool: PoolIndex, name: str) -> Selection:
    problems = [p for _, _, _, p in entries if p]
    ids: list[str] = []
    rewrites: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    for n, id_, record, problem in entries:
        if problem or id_ is None:
            continue
        if id_ not in pool:
            problems.append(f"line {n}: unknown id {id_!r} (not in the pool)")
            continue
        counts[id_] += 1
        if counts[id_] > rules.max_copies:
            allowed = "duplicates are not allowed" if rules.max_copies == 1 else f"at most {rules.max_copies} copies"
            problems.append(f"line {n}: duplicate id {id_!r} ({allowed})")
            continue
        if record is not None:
            problem = _check_record(n, id_, record, rules, pool)
            if problem:
                problems.append(problem)
                continue
            if rules.allow_rewrite and _differs(record, pool.record(id_), rules):
                rewrites[id_] = {k: record[k] for k in rules.rewrite_fields if k in record}
        ids.append(id_)
    if problems:
        problems.sort(key=_line_of)
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        msg = f"{name}: {len(problems)} problem(s):\n  " + "\n  ".join(shown)
        if more:
            msg += f"\n  ... and {more} more"
        raise SubmissionError(msg, problems=problems)
    if len(ids) < rules.min_examples:
        raise SubmissionError(f"{name}: no examples selected (the file has no ids)")
    if len(ids) > rules.budget:
        raise SubmissionError(
            f"{name}: {len(ids)} examples selected; the budget is {rules.budget}. Keep the best {rules.budget}."
        )
    return Selection(ids=ids, rewrites=rewrites, source=name)


def _line_of(problem: str) -> int:
    head = problem.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


def _differs(record: Mapping[str, Any], original: Mapping[str, Any] | None, rules: SubmissionRules) -> bool:
    if original is None:
        return False
    return any(k in record and record[k] != original.get(k) for k in rules.rewrite_fields)


def _check_record(n: int, id_: str, record: dict[str, Any], rules: SubmissionRules, pool: PoolIndex) -> str | None:
    original = pool.record(id_)
    if original is None:
        return None
    if "image" in record and record["image"] != original.get("image"):
        return (f"line {n}: id {id_!r} points at image {record['image']!r}, not the pool's "
                f"{original.get('image')!r} (new image paths are not allowed)")
    unknown = sorted(set(record) - set(original) - {"id"})
    if unknown:
        return f"line {n}: id {id_!r} has unexpected field(s) {', '.join(unknown)} (wrong schema)"
    changed = [k for k in record if k != "id" and record[k] != original.get(k)]
    if not changed:
        return None
    if not rules.allow_rewrite:
        return (f"line {n}: record {id_!r} differs from the pool in {', '.join(changed)}; this task does not "
                "allow rewriting: submit {\"id\": ...} or the unchanged record")
    bad = [k for k in changed if k not in rules.rewrite_fields]
    if bad:
        return f"line {n}: id {id_!r} changes {', '.join(bad)}; only {', '.join(rules.rewrite_fields)} may be rewritten"
    if "conversations" in changed:
        return _check_conversations(n, id_, record["conversations"])
    return None


def _check_conversations(n: int, id_: str, conv: Any) -> str | None:
    if not isinstance(conv, list) or not conv:
        return f"line {n}: id {id_!r}: \"conversations\" must be a non-empty list of turns"
    for k, turn in enumerate(conv):
        if not isinstance(turn, dict) or set(turn) != {"from", "value"} or not isinstance(turn["value"], str):
            return f"line {n}: id {id_!r}: turn {k} must be {{\"from\": ..., \"value\": \"...\"}}"
        want = "human" if k % 2 == 0 else "gpt"
        if turn["from"] != want:
            return f"line {n}: id {id_!r}: turn {k} is from {turn['from']!r}; turns alternate human/gpt"
    return None
