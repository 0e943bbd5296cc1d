"""Per-iteration labels (new policy family, grounded, effective, shallow) and the session figures
the paper reports, from the declared method, the diff of the policy scripts and the score change.
Heuristics by default; optionally an LLM judge (litellm) with the rubric in ``scaffolds/``."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from curbench_env.scaffolds import method_library, parse_declaration, text
from curbench_env.trajectory import RunDirectory

#: Keywords → policy family, for iterations that cite nothing (checked in order).
FAMILY_KEYWORDS: list[tuple[str, str]] = [
    (r"\brandom\b", "baseline"),
    (r"rewrit|template", "rewriting"),
    (r"influen|gradient|less\b|tracin|icons", "influence"),
    (r"clip.?score|align|mismatch", "alignment_filter"),
    (r"dedup|duplicate|semdedup|minhash", "deduplication"),
    (r"k.?center|coreset|cluster|divers|coverage|coincide", "coverage"),
    (r"el2n|grand|loss|difficult|hard|forget", "difficulty"),
    (r"balanc|mixture|source|quota|proportion", "mixture"),
    (r"filter|format|length|perplex|quality", "heuristic_filter"),
]
_NUM = re.compile(r"\d+(?:\.\d+)?")
CODE_SUFFIXES = (".py", ".sh", ".ipynb", ".yaml", ".yml", ".toml", ".cfg")


def infer_family(note: str, policy_text: str = "") -> str:
    """The policy family of an iteration: from a cited card, else keywords in the note, else the scripts."""
    decl = parse_declaration(note)
    lib = method_library()
    cite = decl.get("cite", "").strip().lower()
    if cite in lib:
        return lib[cite].family
    for source in (note, policy_text):
        low = source.lower()
        for pattern, family in FAMILY_KEYWORDS:
            if re.search(pattern, low):
                return family
    return "unknown"


def is_grounded(note: str) -> bool:
    """Whether the iteration cites or names a known (non-baseline) method."""
    decl = parse_declaration(note)
    lib = {k: c for k, c in method_library().items() if c.family != "baseline"}
    if decl.get("cite", "").strip().lower() in lib:
        return True
    low = note.lower().replace("_", " ")
    return any(re.search(rf"\b{re.escape(c.id.replace('_', ' '))}\b", low) or c.name.lower() in low
               for c in lib.values())


def _policy_text(iteration_dir: Path) -> dict[str, str]:
    pol = iteration_dir / "policy"
    if not pol.is_dir():
        return {}
    # Code only: selection outputs (.txt/.jsonl of ids) change every time and say nothing of the policy.
    return {str(p.relative_to(pol)): p.read_text(errors="replace") for p in sorted(pol.rglob("*"))
            if p.is_file() and p.suffix in CODE_SUFFIXES}


def _only_constants_changed(before: str, after: str) -> bool:
    return before != after and _NUM.sub("N", before) == _NUM.sub("N", after)


def is_shallow(prev_note: str, note: str, prev_files: dict[str, str], files: dict[str, str],
               prev_family: str, family: str) -> bool:
    """Same family as before, and the change only tunes constants (script numbers or note numbers)."""
    if family != prev_family:
        return False
    changed = {k for k in set(prev_files) | set(files) if prev_files.get(k) != files.get(k)}
    if changed and all(k in prev_files and k in files and _only_constants_changed(prev_files[k], files[k])
                       for k in changed):
        return True
    strip = lambda s: _NUM.sub("N", re.sub(r"\s+", " ", s.lower())).strip()  # noqa: E731
    return not changed and strip(prev_note) == strip(note)


def label_run(run_dir: Path, judge_model: str | None = None, **judge_kwargs: Any) -> list[dict[str, Any]]:
    """Labels for every scored iteration of a run."""
    run = RunDirectory(run_dir)
    labels: list[dict[str, Any]] = []
    families: set[str] = set()
    best = None
    prev: dict[str, Any] | None = None
    for m in run.iterations():
        d = run.root / "iterations" / f"{m['iteration']:02d}"
        files = _policy_text(d)
        note = m.get("note", "") or ""
        family = infer_family(note, "\n".join(files.values()) if not note else "")
        base = m.get("base_average") or 0.0
        row = {
            "iteration": m["iteration"], "family": family, "note": note, "average": m["average"],
            "new_family": family not in families and family != "unknown",
            "grounded": is_grounded(note),
            "effective": m["average"] > (best if best is not None else base),
            "shallow": prev is not None and is_shallow(prev["note"], note, prev["files"], files, prev["family"], family),
        }
        if judge_model:
            row.update(_judge(judge_model, row, prev, files, **judge_kwargs))
        labels.append(row)
        families.add(family)
        best = m["average"] if best is None else max(best, m["average"])
        prev = {"note": note, "files": files, "family": family}
    return labels


def session_summary(labels: list[dict[str, Any]]) -> dict[str, float]:
    """Shares of new-family, grounded, effective and shallow iterations (the paper's figures)."""
    n = len(labels)
    if not n:
        return {"iterations": 0, "new_family": 0.0, "grounded": 0.0, "effective": 0.0, "shallow": 0.0}
    return {"iterations": n, **{k: sum(bool(r[k]) for r in labels) / n
                                for k in ("new_family", "grounded", "effective", "shallow")}}


def _judge(model: str, row: dict[str, Any], prev: dict[str, Any] | None, files: dict[str, str],
           **kwargs: Any) -> dict[str, Any]:
    """Ask an LLM judge (litellm) for new_family / grounded / shallow; the heuristics stay as fallback."""
    import litellm

    before = "\n".join((prev or {}).get("files", {}).values())
    diff = "\n".join(difflib.unified_diff(before.splitlines(), "\n".join(files.values()).splitlines(), lineterm=""))
    prompt = (f"{text('judge_rubric.md')}\n\nDeclared method / note: {row['note']!r}\n"
              f"Score: {row['average']:.2f}\nPolicy diff:\n{diff[:6000]}")
    try:
        resp = litellm.completion(model=model, messages=[{"role": "user", "content": prompt}], **kwargs)
        content = resp.choices[0].message.content or ""
        data = json.loads(content[content.find("{"): content.rfind("}") + 1])
        return {k: bool(data[k]) for k in ("new_family", "grounded", "shallow") if k in data} | {
            "judge_why": str(data.get("why", ""))}
    except Exception as exc:  # a judge failure keeps the heuristic labels
        return {"judge_error": f"{type(exc).__name__}: {exc}"}
