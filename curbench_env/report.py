"""`curbench report`: plots and a comparison table across runs (agent x scaffold)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from curbench_env.diagnostics import label_run, session_summary
from curbench_env.trajectory import RunDirectory


def collect(run_dirs: list[Path], judge_model: str | None = None) -> list[dict[str, Any]]:
    """One record per run: config, iterations, labels and summary."""
    runs = []
    for d in run_dirs:
        run = RunDirectory.existing(d)
        cfg = run.config
        its = run.iterations()
        labels = label_run(d, judge_model=judge_model)
        reset = next((s for s in run.steps() if s.get("kind") == "reset"), {})
        base = reset.get("base_average", its[0]["base_average"] if its else 0.0)
        runs.append({
            "name": d.name, "dir": str(d), "env": cfg.get("env_id"), "agent": cfg.get("agent") or "?",
            "scaffold": "+".join(cfg.get("scaffolds") or []) or "none", "base": base,
            "best": max([m["average"] for m in its], default=base), "iterations": its, "labels": labels,
            "summary": session_summary(labels), "rewrites": rewrite_totals(d),
        })
    return runs


def write_report(run_dirs: list[Path], out: Path, judge_model: str | None = None) -> list[Path]:
    """Write PNG plots, report.md and report.html into ``out``; return the files written."""
    from curbench_env.sweep_report import is_sweep_dir, write_sweep_report

    if len(run_dirs) == 1 and is_sweep_dir(run_dirs[0]):  # a sweep: its per-cell aggregate and figures
        return write_sweep_report(run_dirs[0], out, judge_model=judge_model)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = collect(run_dirs, judge_model)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        xs = [0] + [m["iteration"] for m in r["iterations"]]
        ys = [r["base"]] + [m["average"] for m in r["iterations"]]
        best = [max(ys[: k + 1]) for k in range(len(ys))]
        line, = ax.plot(xs, ys, marker="o", label=f"{r['agent']} / {r['scaffold']} ({r['name'][-12:]})")
        ax.plot(xs, best, linestyle="--", color=line.get_color(), alpha=0.5)
    ax.set_xlabel("iteration (0 = base model)")
    ax.set_ylabel("benchmark average")
    ax.set_title("Score per iteration (dashed: best so far)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(_save(fig, out / "score_per_iteration.png"))

    benches = list(runs[0]["iterations"][0]["scores"]) if runs and runs[0]["iterations"] else []
    if benches:
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / max(1, len(runs))
        for k, r in enumerate(runs):
            if not r["iterations"]:
                continue
            best = max(r["iterations"], key=lambda m: m["average"])
            ax.bar([i + k * width for i in range(len(benches))], [best["scores"].get(b, 0) for b in benches],
                   width=width, label=f"{r['agent']} / {r['scaffold']}")
        ax.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(benches))], benches, rotation=30)
        ax.set_ylabel("score (best iteration)")
        ax.set_title("Per-benchmark scores of each run's best iteration")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out / "per_benchmark.png"))

    keys = ["new_family", "grounded", "effective", "shallow"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(runs))
    for k, r in enumerate(runs):
        ax.bar([i + k * width for i in range(len(keys))], [100 * r["summary"][key] for key in keys], width=width,
               label=f"{r['agent']} / {r['scaffold']}")
    ax.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(keys))], keys)
    ax.set_ylabel("% of iterations")
    ax.set_title("Diagnostics")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(_save(fig, out / "diagnostics.png"))

    header = ["run", "agent", "scaffold", "base", "best", "gain", "iterations", "new family", "grounded",
              "effective", "shallow", "rewrites (calls, examples, cost)"]
    rows = [[r["name"], r["agent"], r["scaffold"], f"{r['base']:.2f}", f"{r['best']:.2f}",
             f"{r['best'] - r['base']:+.2f}", str(r["summary"]["iterations"]),
             *[f"{100 * r['summary'][k]:.0f}%" for k in keys],
             (f"{r['rewrites']['calls']}, {r['rewrites']['spent']}, ${r['rewrites']['cost_usd']:.4f}"
              if r["rewrites"]["calls"] else "-")] for r in runs]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    md += ["", "![score per iteration](score_per_iteration.png)", "![diagnostics](diagnostics.png)"]
    if benches:
        md.append("![per benchmark](per_benchmark.png)")
    (out / "report.md").write_text("# curbench report\n\n" + "\n".join(md) + "\n")
    written.append(out / "report.md")
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    imgs = "".join(f'<img src="{p.name}" style="max-width:48%">' for p in written if p.suffix == ".png")
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>curbench report</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd}</style>"
        f"<h1>curbench report</h1><table><tr>{''.join(f'<th>{h}</th>' for h in header)}</tr>{cells}</table>{imgs}")
    written.append(out / "report.html")
    (out / "labels.json").write_text(json.dumps({r["name"]: r["labels"] for r in runs}, indent=1))
    written.append(out / "labels.json")
    return written


def rewrite_totals(run_dir: Path) -> dict[str, Any]:
    """A run's use of the rewriting tool: calls, examples spent, examples written, cost (zeros without one)."""
    from curbench_env.rewrite import read_calls

    calls = read_calls(run_dir)
    return {"calls": len(calls), "spent": sum(int(c.get("spent", 0)) for c in calls),
            "rewritten": sum(int(c.get("rewritten", 0)) for c in calls),
            "cost_usd": sum(float(c.get("cost_usd", 0.0)) for c in calls)}


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
