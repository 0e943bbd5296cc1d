"""The rewriting setting: the agent selects pool examples and has an external (M)LLM rewrite them.

Contract (what the agent sees): ``rewrite IDS_FILE --prompt TEXT [--out FILE]`` is a program on the
workspace PATH, like ``submit``. It only queues a request in ``.curbench/rewrite-outbox/``; when the
command finishes, the harness (outside the sandbox) reads the request, checks it (ids known, budget
left, prompt and output path valid), sends each record to the task's rewriter with the prompt
rendered for it, audits the outputs against the evaluation index and writes the rewritten records,
one JSON object a line in the pool's format, to FILE (default ``rewrites/rewrite-NNN.jsonl``). The
result is appended to that command's output; the file exists from the next command on, so a chained
``rewrite ... && submit FILE`` cannot work: submit it in a later command. Every example sent to the
rewriter spends one unit of the episode's rewrite budget; a refused request (bad ids, over budget,
empty prompt, bad output path, unreachable rewriter) spends nothing. A call whose outputs contain
evaluation data is withheld whole (nothing written; its examples are spent).

Everything is recorded in the run directory: ``rewrites/calls.jsonl`` (one line a call: ids, prompt
template, output file, counts, cost) and ``rewrites/NNN.jsonl`` (per record: rendered prompt, raw
model output, the conversations kept or the error).
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from curbench_env.audit import LeakageAudit
from curbench_env.errors import CurbenchError, SubmissionError, WorkspaceError
from curbench_env.gate import take_requests
from curbench_env.submission import Selection

if TYPE_CHECKING:
    from curbench_env.task import CurationTask
    from curbench_env.workspace import Workspace

#: Where `rewrite` leaves requests, relative to the workspace.
REWRITE_OUTBOX = (".curbench", "rewrite-outbox")
REWRITE_USAGE = "rewrite IDS_FILE --prompt TEXT [--out FILE]"
MAX_REQUEST_BYTES = 16_384  # what the outbox reader reads of a request
MAX_PROMPT_CHARS = 3_000
MAX_PATH_CHARS = 4_096
MAX_IDS_BYTES = 4 << 20
MAX_OUTPUT_CHARS = 32_000
MAX_TURNS = 64
MAX_TURN_CHARS = 8_000
MAX_RECORDED_CHARS = 8_000

#: What the harness asks of any text rewriter after the agent's prompt (the output contract).
OUTPUT_INSTRUCTION = (
    "Return only the rewritten conversation as a JSON array of turns, "
    '[{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}, ...], '
    "alternating human and gpt, starting with human. Keep the image placeholder <image> in the first human turn "
    "when the original has it.")


class RewriteRefused(CurbenchError):
    """A rewrite request refused before any record was sent: nothing is spent."""


# -- what travels between the harness and a rewriter ------------------------------------------------
@dataclass(frozen=True)
class RewriteJob:
    """One record to rewrite: the pool record, the agent's prompt rendered for it and its picture."""

    id: str
    record: dict[str, Any]
    prompt: str
    image: Path | None = None


@dataclass
class RewriteOutput:
    """What a rewriter returned for one job: new conversations, or an error; and what it cost."""

    id: str
    conversations: list[dict[str, str]] | None = None
    raw: str = ""
    error: str | None = None
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Rewriter(Protocol):
    """A rewriting backend: records in, rewritten conversations out (one output per job, in order)."""

    name: str

    def rewrite(self, jobs: list[RewriteJob]) -> list[RewriteOutput]:
        """Rewrite every job; a per-record failure is an output with ``error`` set."""
        ...


@dataclass
class RewriteSetting:
    """What a task with a rewriting tool gives the env: the budget and how to reach the rewriter.

    ``make_rewriter`` is called once per episode, at its first request; ``image_of`` maps a pool
    record to its picture on the host (None for text-only records).
    """

    budget: int
    make_rewriter: Callable[[], Rewriter]
    image_of: Callable[[dict[str, Any]], Path | None] = lambda record: None
    fields: tuple[str, ...] = ("conversations",)
    rewriter_name: str = ""


# -- the request -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RewriteRequest:
    """One ``rewrite IDS_FILE --prompt TEXT [--out FILE]`` as the harness received it."""

    ids_path: str
    prompt: str
    out: str | None = None
    cwd: str | None = None

    @classmethod
    def from_json(cls, raw: bytes) -> RewriteRequest:
        """Parse and type-check a request file (a :class:`SubmissionError` for the outbox reader)."""
        if len(raw) > MAX_REQUEST_BYTES:
            raise SubmissionError(f"the request is {len(raw)} bytes (limit {MAX_REQUEST_BYTES})")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SubmissionError("the request is not JSON written by `rewrite`") from None
        if not isinstance(data, dict):
            raise SubmissionError("the request is not a JSON object")
        values = {k: data.get(k) for k in ("ids", "prompt", "out", "cwd")}
        for name, value in values.items():
            if value is None and name in ("out", "cwd"):
                continue
            if not isinstance(value, str) or "\0" in value:
                raise SubmissionError(f"the request's {name!r} is not a string without NUL bytes")
        for name in ("ids", "out", "cwd"):
            if values[name] is not None and len(values[name]) > MAX_PATH_CHARS:
                raise SubmissionError(f"the request's {name!r} is longer than {MAX_PATH_CHARS} characters")
        return cls(ids_path=values["ids"], prompt=values["prompt"], out=values["out"] or None,
                   cwd=values["cwd"] or None)


def take_rewrite_requests(workspace_dir: Path) -> list[RewriteRequest | SubmissionError]:
    """Remove and return the requests in the rewrite outbox (bounded, no link followed)."""
    return take_requests(workspace_dir, box=REWRITE_OUTBOX, parse=RewriteRequest.from_json, program="rewrite")


# -- prompts and outputs ---------------------------------------------------------------------------
_FIELD = re.compile(r"\{(id|image|conversations|turns|question|answer)\}")


def render_prompt(template: str, record: dict[str, Any]) -> str:
    """The agent's template with the record's fields filled in: ``{id}``, ``{image}``,
    ``{conversations}`` (JSON), ``{turns}`` (one ``role: text`` line a turn), ``{question}`` and
    ``{answer}`` (the first exchange). Nothing else is interpreted (no format-string attributes)."""
    conv = record.get("conversations") or []
    first_q = next((t.get("value", "") for t in conv if t.get("from") == "human"), "")
    first_a = next((t.get("value", "") for t in conv if t.get("from") == "gpt"), "")
    values = {
        "id": str(record.get("id", "")), "image": str(record.get("image", "")),
        "conversations": json.dumps(conv, ensure_ascii=False),
        "turns": "\n".join(f"{t.get('from')}: {t.get('value')}" for t in conv),
        "question": str(first_q).replace("<image>\n", "").replace("<image>", ""), "answer": str(first_a),
    }
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def parse_conversations(text: str, original: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation a rewriter returned (a JSON array of turns, possibly inside prose or a code
    fence), checked like a submission's; a ValueError says what is wrong."""
    text = text[:MAX_OUTPUT_CHARS]
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        raise ValueError("no JSON array of turns in the output")
    try:
        conv = json.loads(text[start:end + 1])
    except (ValueError, RecursionError):
        raise ValueError("the output's JSON array does not parse") from None
    return check_conversations(conv, original)


def check_conversations(conv: Any, original: dict[str, Any]) -> list[dict[str, str]]:
    """Type- and size-check rewritten turns; the ``<image>`` placeholder is kept where the original had it."""
    if not isinstance(conv, list) or not conv or len(conv) > MAX_TURNS:
        raise ValueError(f"the conversation must be a list of 1 to {MAX_TURNS} turns")
    out = []
    for k, turn in enumerate(conv):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise ValueError(f"turn {k} is not an object with a string 'value'")
        role = turn.get("from")
        if role != ("human" if k % 2 == 0 else "gpt"):
            raise ValueError(f"turn {k} should be from {'human' if k % 2 == 0 else 'gpt'}, not {role!r}")
        if len(turn["value"]) > MAX_TURN_CHARS:
            raise ValueError(f"turn {k} is longer than {MAX_TURN_CHARS} characters")
        out.append({"from": role, "value": turn["value"]})
    orig = original.get("conversations") or []
    had_image = bool(orig) and "<image>" in str(orig[0].get("value", ""))
    if had_image and "<image>" not in out[0]["value"]:
        out[0]["value"] = "<image>\n" + out[0]["value"]
    if not had_image and any("<image>" in t["value"] for t in out):
        raise ValueError("the rewrite adds an <image> placeholder the record has no picture for")
    return out


# -- the per-episode desk ---------------------------------------------------------------------------
@dataclass
class RewriteDesk:
    """The rewriting tool of one episode: its budget, its rewriter and its record in the run directory."""

    setting: RewriteSetting
    task: CurationTask
    log_dir: Path
    spent: int = 0
    calls: int = 0
    cost_usd: float = 0.0
    _rewriter: Rewriter | None = field(default=None, repr=False)

    @classmethod
    def open(cls, task: CurationTask, run_root: Path) -> RewriteDesk | None:
        """The desk of an episode recorded at ``run_root`` (spent budget read back on resume), or
        None when the task has no rewriting tool."""
        setting = task.rewrite_setting()
        if setting is None:
            return None
        desk = cls(setting=setting, task=task, log_dir=run_root / "rewrites")
        for call in read_calls(run_root):
            desk.calls += 1
            desk.spent += int(call.get("spent", 0))
            desk.cost_usd += float(call.get("cost_usd", 0.0))
        return desk

    @property
    def budget_left(self) -> int:
        """Examples the agent may still send to the rewriter this episode."""
        return max(0, self.setting.budget - self.spent)

    def info(self) -> dict[str, Any]:
        """The ``info`` keys of the rewriting tool."""
        return {"rewrite_budget": self.setting.budget, "rewrite_budget_left": self.budget_left,
                "rewrite_spent": self.spent, "rewrite_calls": self.calls, "rewrite_cost_usd": round(self.cost_usd, 6),
                "rewrite_usage": REWRITE_USAGE, "rewriter": self.setting.rewriter_name}

    def describe(self) -> str:
        """One paragraph for the welcome text."""
        return (f"Rewriting tool: `{REWRITE_USAGE}` sends the listed pool examples to an external model "
                f"({self.setting.rewriter_name or 'the task rewriter'}) with your prompt ({{question}}, {{answer}}, "
                "{turns}, {conversations}, {id}, {image} are filled in per record) and writes the rewritten "
                "records (JSONL, pool format; only `conversations` change) to FILE when the command finishes; "
                f"submit them in a later command. Budget: {self.setting.budget} examples per episode "
                f"({self.budget_left} left); a refused request spends nothing.")

    def handle(self, workspace: Workspace, workspace_dir: Path, step: int) -> tuple[str, dict[str, Any] | None]:
        """Serve the command's rewrite request, if it left one: (feedback text, step record)."""
        got = take_rewrite_requests(workspace_dir)
        if not got:
            return "", None
        texts, record = [], None
        for n, item in enumerate(got):
            if isinstance(item, SubmissionError):
                texts.append(f"== rewrite refused (nothing spent): {item} ==")
            elif n > 0 or record is not None:
                texts.append(f"== rewrite of {item.ids_path} refused (nothing spent): one rewrite per command ==")
            else:
                try:
                    text, record = self._serve(item, workspace, workspace_dir, step)
                except RewriteRefused as exc:
                    text, record = (f"== rewrite refused (nothing spent; {self.budget_left} of "
                                    f"{self.setting.budget} rewrite budget left) ==\n{exc}",
                                    {"status": "refused", "error": str(exc)})
                texts.append(text)
        return "\n".join(texts), record

    def _serve(self, req: RewriteRequest, workspace: Workspace, workspace_dir: Path,
               step: int) -> tuple[str, dict[str, Any]]:
        ids = self._read_ids(req, workspace)
        prompt = req.prompt.strip()
        if not prompt:
            raise RewriteRefused("the prompt is empty: --prompt TEXT says what the rewriter should do")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise RewriteRefused(f"the prompt is {len(prompt)} characters (limit {MAX_PROMPT_CHARS})")
        if len(ids) > self.budget_left:
            raise RewriteRefused(f"{len(ids)} examples asked, {self.budget_left} of {self.setting.budget} rewrite "
                                 "budget left: send fewer")
        index = self.calls + 1
        out_shown = req.out or f"rewrites/rewrite-{index:03d}.jsonl"
        rel = self._out_rel(out_shown, req.cwd, workspace)
        pool = self.task.pool
        jobs = []
        for i in ids:
            rec = dict(pool.record(i) or {})
            jobs.append(RewriteJob(id=i, record=rec, prompt=render_prompt(prompt, rec), image=self.setting.image_of(rec)))
        t0 = time.monotonic()
        try:
            if self._rewriter is None:
                self._rewriter = self.setting.make_rewriter()
            outputs = self._rewriter.rewrite(jobs)
        except CurbenchError as exc:  # the rewriter could not be reached at all: nothing was spent
            raise RewriteRefused(f"the rewriter failed: {exc}") from None
        if len(outputs) != len(jobs):
            raise RewriteRefused(f"the rewriter returned {len(outputs)} outputs for {len(jobs)} records")
        seconds = time.monotonic() - t0
        kept: dict[str, list[dict[str, str]]] = {}
        for job, out in zip(jobs, outputs, strict=True):
            if out.error is None and out.conversations is not None:
                try:
                    kept[job.id] = check_conversations(out.conversations, job.record)
                except ValueError as exc:
                    out.error, out.conversations = str(exc), None
        report = LeakageAudit(self.task.leakage_index).check(
            self.task.audit_items(Selection(ids=list(kept), rewrites={i: {"conversations": c} for i, c in kept.items()})))
        withheld = not report.clean
        cost = sum(o.cost_usd for o in outputs)
        self.calls, self.spent, self.cost_usd = index, self.spent + len(jobs), self.cost_usd + cost
        changed = sum(kept[i] != (pool.record(i) or {}).get("conversations") for i in kept)
        if not withheld:
            lines = [json.dumps({**jobs[k].record, "conversations": kept[j.id]}, ensure_ascii=False)
                     for k, j in enumerate(jobs) if j.id in kept]
            try:
                write_in_workspace(workspace_dir, rel, ("\n".join(lines) + ("\n" if lines else "")).encode())
            except OSError as exc:
                withheld = True
                write_error = f"could not write {out_shown}: {exc.strerror or exc}"
            else:
                write_error = None
        else:
            write_error = None
        summary = {
            "call": index, "step": step, "ids_file": req.ids_path, "prompt": prompt, "out": out_shown,
            "n": len(jobs), "spent": len(jobs), "rewritten": 0 if withheld else len(kept), "changed": changed,
            "failed": len(jobs) - len(kept), "withheld": withheld, "cost_usd": round(cost, 6),
            "prompt_tokens": sum(o.prompt_tokens for o in outputs),
            "completion_tokens": sum(o.completion_tokens for o in outputs), "seconds": round(seconds, 3),
            "rewriter": getattr(self._rewriter, "name", ""), "budget_left": self.budget_left, "time": time.time()}
        self._record(index, summary, jobs, outputs, kept)
        errors = [f"{o.id}: {o.error}" for o in outputs if o.error][:5]
        head = (f"== rewrite {index}: {len(jobs)} examples sent to {summary['rewriter']} "
                f"({seconds:.1f}s, cost ${cost:.4f}); {self.budget_left} of {self.setting.budget} rewrite budget left ==")
        if write_error:
            body = f"nothing written: {write_error}"
        elif withheld:
            body = ("nothing written: the rewriter's output contains evaluation data (leakage audit); the examples "
                    "are spent. Change the prompt or the examples.")
        else:
            body = (f"{len(kept)} records written to {out_shown} ({changed} changed, {len(jobs) - len(kept)} failed); "
                    "it exists from your next command on: submit it (alone or merged with {\"id\": ...} lines) "
                    "in a later command")
        text = "\n".join([head, body, *(f"  failed {e}" for e in errors)])
        return text, {"status": "withheld" if withheld else "done", **{k: summary[k] for k in (
            "call", "out", "n", "rewritten", "changed", "failed", "cost_usd", "budget_left")}}

    def _read_ids(self, req: RewriteRequest, workspace: Workspace) -> list[str]:
        try:
            host = workspace.to_host(req.ids_path, req.cwd)
        except WorkspaceError as exc:
            raise RewriteRefused(str(exc)) from None
        raw = read_regular_file(host, MAX_IDS_BYTES, shown=req.ids_path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RewriteRefused(f"{req.ids_path} is not UTF-8 text") from None
        ids, problems = parse_ids(text)
        pool = self.task.pool
        unknown = [i for i in ids if pool.record(i) is None]
        if unknown:
            problems.append(f"{len(unknown)} unknown id(s), e.g. {', '.join(repr(u) for u in unknown[:3])}")
        if problems:
            raise RewriteRefused(f"{req.ids_path}: " + "; ".join(problems[:5]))
        if not ids:
            raise RewriteRefused(f"{req.ids_path} lists no ids (one id a line, or {{\"id\": ...}} JSONL)")
        return ids

    def _out_rel(self, shown: str, cwd: str | None, workspace: Workspace) -> str:
        try:
            host = workspace.to_host(shown, cwd)
        except WorkspaceError as exc:
            raise RewriteRefused(str(exc).replace("submit a file", "write")) from None
        root = workspace.spec.host_dir.resolve()
        rel = host.relative_to(root).as_posix()
        if rel in ("", ".") or rel.startswith(".curbench") or host.is_dir():
            raise RewriteRefused(f"--out {shown!r} must name a file in the workspace (not a directory or .curbench)")
        return rel

    def _record(self, index: int, summary: dict[str, Any], jobs: list[RewriteJob], outputs: list[RewriteOutput],
                kept: dict[str, Any]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{index:03d}.jsonl", "w") as fh:
            for job, out in zip(jobs, outputs, strict=True):
                fh.write(json.dumps({
                    "id": job.id, "prompt": job.prompt[:MAX_RECORDED_CHARS], "image": str(job.image or ""),
                    "raw": out.raw[:MAX_RECORDED_CHARS], "conversations": kept.get(job.id), "error": out.error,
                    "cost_usd": out.cost_usd, "prompt_tokens": out.prompt_tokens,
                    "completion_tokens": out.completion_tokens}) + "\n")
        with open(self.log_dir / "calls.jsonl", "a") as fh:
            fh.write(json.dumps(summary) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def read_calls(run_root: Path) -> list[dict[str, Any]]:
    """The rewrite calls recorded in a run directory (``rewrites/calls.jsonl``), oldest first."""
    from curbench_env.trajectory import read_records

    return read_records(run_root / "rewrites" / "calls.jsonl")


def parse_ids(text: str) -> tuple[list[str], list[str]]:
    """Ids from one id a line, ``{"id": ...}`` JSONL or a JSON list; duplicates dropped. (ids, problems)."""
    ids: list[str] = []
    problems: list[str] = []
    stripped = text.lstrip()
    entries: Iterable[tuple[int, Any]]
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError):
            return [], ["the JSON list does not parse"]
        entries = enumerate(data if isinstance(data, list) else [], 1)
    else:
        entries = ((n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip())
    for n, entry in entries:
        value = entry
        if isinstance(entry, str) and entry.startswith("{"):
            try:
                value = json.loads(entry)
            except (ValueError, RecursionError):
                problems.append(f"line {n}: not JSON")
                continue
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value or len(value) > 512:
            problems.append(f"line {n}: no id")
            continue
        ids.append(value)
    return list(dict.fromkeys(ids)), problems


def read_regular_file(host: Path, limit: int, *, shown: str) -> bytes:
    """The bytes of a regular file (no link followed at the last component), at most ``limit``."""
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise RewriteRefused(f"{shown}: no such file (or a link)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RewriteRefused(f"{shown} is not a regular file")
        if st.st_size > limit:
            raise RewriteRefused(f"{shown} is {st.st_size} bytes (limit {limit})")
        return os.read(fd, limit + 1)[:limit]
    finally:
        os.close(fd)


def write_in_workspace(workspace_dir: Path, rel: str, data: bytes) -> None:
    """Write ``data`` to ``rel`` under the workspace, creating folders, following no link on the way
    (the folders are agent-writable: a link planted there cannot redirect the harness's write)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(0, "not a path inside the workspace")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fds = [os.open(workspace_dir, flags)]
    try:
        for part in parts[:-1]:
            try:
                fds.append(os.open(part, flags, dir_fd=fds[-1]))
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fds[-1])
                fds.append(os.open(part, flags, dir_fd=fds[-1]))
        fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644,
                     dir_fd=fds[-1])
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(0, "not a regular file")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
