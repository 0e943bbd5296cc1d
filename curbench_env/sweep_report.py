"""`curbench report SWEEP_DIR`: a sweep's aggregate — per cell (env × agent × scaffold × budget × task
args) mean ± std of the best score, the best, best-of-N random, crash/invalid counts, diagnostics
rates, cost and time per session — and the paper's two figures (scaffold comparison; score vs
iteration budget with the average curve)."""

from __future__ import annotations

import csv
import html
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from curbench_env.console import make_console
from curbench_env.diagnostics import label_run
from curbench_env.sweep import Session, read_attempts, run_dir_of, session_state
from curbench_env.trajectory import RunDirectory

RATE_KEYS = ("new_family", "grounded", "shallow")


def is_sweep_dir(path: Path) -> bool:
    """Whether ``path`` is a sweep directory (it holds sweep.json)."""
    return (Path(path) / "sweep.json").is_file()


def _sessions(sweep_dir: Path) -> list[Session]:
    data = json.loads((sweep_dir / "sweep.json").read_text())
    return [Session.from_dict(s) for s in data.get("sessions", [])]


def collect_session(sweep_dir: Path, session: Session, attempts: list[dict[str, Any]],
                    judge_model: str | None = None) -> dict[str, Any]:
    """One session's record: state, scores, curve, labels, crash/invalid counts, time and cost."""
    root = run_dir_of(sweep_dir, session)
    mine = [a for a in attempts if a.get("name") == session.name]
    rec: dict[str, Any] = {
        "name": session.name, "session": session, "state": session_state(sweep_dir, session) if root.exists() else "new",
        "attempts": len(mine), "crashes": sum(a.get("returncode") not in (0, None) for a in mine),
        "wall_s": sum(float(a.get("wall_s", 0.0)) for a in mine), "base": None, "best": None, "curve": [],
        "iterations": 0, "invalid": 0, "crashed_submissions": 0, "labels": [], "random": [], "scoring_s": 0.0,
        "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    for a in mine:
        usage = a.get("usage") or {}
        rec["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        rec["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        rec["cost_usd"] += float(usage.get("cost_usd") or 0.0)
    if not (root / "config.json").exists():
        return rec
    run = RunDirectory(root)
    steps = run.steps()
    reset = next((s for s in steps if s.get("kind") == "reset"), None)
    if reset is None:
        return rec
    its = [m for m in run.iterations() if m.get("status", "scored") == "scored"]
    rec["base"] = float(reset.get("base_average", 0.0))
    for s in steps:
        status = (s.get("submission") or {}).get("status")
        rec["invalid"] += status in ("refused", "contaminated")
        rec["crashed_submissions"] += status == "crashed"
    rec["crashes"] += rec["crashed_submissions"]
    rec["iterations"] = len(its)
    best, curve = rec["base"], [rec["base"]]
    for m in its:
        best = max(best, float(m["average"]))
        curve.append(best)
        if not m.get("cached"):
            rec["scoring_s"] += float(m["timings"].get("train_s", 0.0)) + float(m["timings"].get("eval_s", 0.0))
    rec["best"], rec["curve"] = best, curve
    rec["labels"] = label_run(root, judge_model=judge_model)
    # Random-subset submissions (the baseline family) give the best-of-N random reference of the env.
    seed = run.config.get("seed")
    rec["random"] = [((m["content_hash"], seed), float(m["average"])) for m, lab in zip(its, rec["labels"], strict=False)
                     if lab["family"] == "baseline"]
    return rec


def expected_best_of(values: list[float], n: int) -> float:
    """E[max of ``n`` draws with replacement] from the empirical distribution of ``values`` (exact)."""
    xs = sorted(values)
    k = len(xs)
    return sum(x * (((i + 1) / k) ** n - (i / k) ** n) for i, x in enumerate(xs))


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-cell rows (sessions differing only by seed): the table of the report."""
    random_by_env: dict[tuple[str, str], dict[Any, float]] = defaultdict(dict)
    for r in records:
        for key, score in r["random"]:
            random_by_env[(r["session"].env, r["session"].task_label)][key] = score
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        cells.setdefault(r["session"].cell, []).append(r)
    rows = []
    for (env, agent, scaffold, budget, task), members in cells.items():
        done = [r for r in members if r["state"] == "finished" and r["best"] is not None]
        bests = [r["best"] for r in done]
        labels = [lab for r in done for lab in r["labels"]]
        randoms = list(random_by_env.get((env, task), {}).values())
        n_done = max(1, len(done))
        rows.append({
            "env": env, "agent": agent, "scaffold": scaffold, "budget": budget, "task_args": task,
            "sessions": len(members), "finished": len(done),
            "mean": statistics.fmean(bests) if bests else None,
            "std": statistics.stdev(bests) if len(bests) > 1 else 0.0 if bests else None,
            "best": max(bests) if bests else None,
            "base": statistics.fmean(r["base"] for r in done) if done else None,
            "best_of_random": expected_best_of(randoms, budget) if randoms else None, "random_draws": len(randoms),
            "crashes": sum(r["crashes"] for r in members), "invalid": sum(r["invalid"] for r in members),
            "iterations": sum(r["iterations"] for r in done),
            **{k: (sum(bool(lab[k]) for lab in labels) / len(labels) if labels else None) for k in RATE_KEYS},
            "wall_min": sum(r["wall_s"] for r in done) / n_done / 60,
            "scoring_min": sum(r["scoring_s"] for r in done) / n_done / 60,
            "tokens": sum(r["prompt_tokens"] + r["completion_tokens"] for r in members),
            "cost_usd": sum(r["cost_usd"] for r in members)})
    return rows


def _fmt(x: float | None, spec: str = ".2f", none: str = "–") -> str:
    return none if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


CELL_HEADER = ["env", "agent", "scaffold", "budget", "task args", "finished", "best: mean ± std", "best",
               "base", "best-of-N random", "crashes", "invalid", "new family", "grounded", "shallow",
               "wall min/session", "scoring min/session", "tokens", "cost $"]


def cell_cells(row: dict[str, Any]) -> list[str]:
    mean = "–" if row["mean"] is None else f"{row['mean']:.2f} ± {row['std']:.2f}"
    rnd = (f"{row['best_of_random']:.2f} (N={row['budget']}, {row['random_draws']} draws)"
           if row["best_of_random"] is not None else "–")
    return [row["env"].removeprefix("Curation-"), row["agent"], row["scaffold"], str(row["budget"]),
            row["task_args"] or "-", f"{row['finished']}/{row['sessions']}", mean, _fmt(row["best"]), _fmt(row["base"]),
            rnd, str(row["crashes"]), str(row["invalid"]), *[_pct(row[k]) for k in RATE_KEYS],
            f"{row['wall_min']:.1f}", f"{row['scoring_min']:.1f}", str(row["tokens"]), f"{row['cost_usd']:.2f}"]


SESSION_HEADER = ["session", "state", "attempts", "iterations", "best", "wall min", "scoring min", "tokens", "cost $"]


def session_cells(r: dict[str, Any]) -> list[str]:
    return [r["name"], r["state"], str(r["attempts"]), str(r["iterations"]), _fmt(r["best"]),
            f"{r['wall_s'] / 60:.1f}", f"{r['scoring_s'] / 60:.1f}", str(r["prompt_tokens"] + r["completion_tokens"]),
            f"{r['cost_usd']:.2f}"]


def write_sweep_report(sweep_dir: Path, out: Path, judge_model: str | None = None, console: Any = None) -> list[Path]:
    """Aggregate a sweep into ``out``: cells.csv, sessions.csv, the two figures, report.md/.html."""
    from rich.table import Table

    from curbench_env.sweep_figures import budget_figure, scaffold_figure

    sweep_dir, out = Path(sweep_dir), Path(out)
    attempts = read_attempts(sweep_dir)
    records = [collect_session(sweep_dir, s, attempts, judge_model) for s in _sessions(sweep_dir)]
    rows = aggregate(records)
    out.mkdir(parents=True, exist_ok=True)
    written = [p for p in (scaffold_figure(records, rows, out / "scaffolds.png"),
                           budget_figure(records, out / "budget.png")) if p is not None]
    for name, header, body in (("cells.csv", CELL_HEADER, [cell_cells(r) for r in rows]),
                               ("sessions.csv", SESSION_HEADER, [session_cells(r) for r in records])):
        with open(out / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(body)
        written.append(out / name)
    finished = sum(r["state"] == "finished" for r in records)
    intro = (f"{len(records)} sessions ({finished} finished) in {sweep_dir}. Best = the best benchmark average a "
             "session reached; best-of-N random = the expected best of N random-subset submissions (N = the "
             "cell's budget) drawn from the random subsets the sweep scored; rates are shares of scored iterations.")
    md = ["# Sweep report", "", intro, "", "| " + " | ".join(CELL_HEADER) + " |", "|" + "---|" * len(CELL_HEADER)]
    md += ["| " + " | ".join(cell_cells(r)) + " |" for r in rows]
    md += ["", *[f"![{p.stem}]({p.name})" for p in written if p.suffix == ".png"], "", "## Sessions", "",
           "| " + " | ".join(SESSION_HEADER) + " |", "|" + "---|" * len(SESSION_HEADER)]
    md += ["| " + " | ".join(session_cells(r)) + " |" for r in records]
    (out / "report.md").write_text("\n".join(md) + "\n")
    written.append(out / "report.md")

    def table_html(header: list[str], body: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><tr>{head}</tr>{cells}</table>"

    imgs = "".join(f'<img src="{p.name}" style="max-width:49%">' for p in written if p.suffix == ".png")
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>sweep report</title><style>body{font-family:sans-serif}"
        "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}</style>"
        f"<h1>Sweep report</h1><p>{html.escape(intro)}</p>{table_html(CELL_HEADER, [cell_cells(r) for r in rows])}"
        f"{imgs}<h2>Sessions</h2>{table_html(SESSION_HEADER, [session_cells(r) for r in records])}")
    written.append(out / "report.html")

    console = console or make_console()
    table = Table(title=f"sweep {sweep_dir.name}: per cell (best score over seeds)", header_style="bold")
    keep = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 18]  # the console's columns (all are in the files)
    if len({r["env"] for r in rows}) == 1:
        keep.remove(0)
    if len({r["task_args"] for r in rows}) == 1:
        keep.remove(4)
    for k in keep:
        table.add_column(CELL_HEADER[k], justify="left" if k < 5 else "right")
    for r in rows:
        cells = cell_cells(r)
        table.add_row(*[cells[k] for k in keep])
    console.print(table)
    return written
