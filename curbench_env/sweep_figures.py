"""The sweep report's two figures: the scaffold comparison (box + strip per scaffold and agent) and
the best score against the iteration (one colour per iteration budget, with the average curve)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

AGENT_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
LINESTYLES = ["-", "--", ":", "-."]
BUDGET_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _order(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def scaffold_figure(records: list[dict[str, Any]], rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Best score per session by scaffold (a box per scaffold and agent, every session a dot), one panel
    per iteration budget (and env); dashed: the base model; dotted: best-of-N random."""
    done = [r for r in records if r["state"] == "finished" and r["best"] is not None]
    if not done:
        return None
    plt = _plt()
    envs = _order([r["session"].env for r in done])
    budgets = sorted({r["session"].iterations for r in done})
    agents = _order([r["session"].agent for r in done])
    scaffolds = _order([r["session"].scaffold_label for r in done])
    colors = {a: AGENT_COLORS[k % len(AGENT_COLORS)] for k, a in enumerate(agents)}
    width = 0.8 / len(agents)
    fig, axes = plt.subplots(len(envs), len(budgets), squeeze=False, sharey="row",
                             figsize=(max(6.4, max(4.5, 1.2 + 1.3 * len(scaffolds) * len(agents) ** 0.5) * len(budgets)),
                                      4.2 * len(envs)))
    for i, env in enumerate(envs):
        for j, budget in enumerate(budgets):
            ax = axes[i][j]
            here = [r for r in done if r["session"].env == env and r["session"].iterations == budget]
            for k, agent in enumerate(agents):
                for x, scaffold in enumerate(scaffolds):
                    ys = [r["best"] for r in here if r["session"].agent == agent and r["session"].scaffold_label == scaffold]
                    if not ys:
                        continue
                    pos = x - 0.4 + width * (k + 0.5)
                    ax.boxplot([ys], positions=[pos], widths=width * 0.8, showfliers=False, patch_artist=True,
                               boxprops={"facecolor": colors[agent], "alpha": 0.25, "edgecolor": colors[agent]},
                               medianprops={"color": colors[agent], "linewidth": 2},
                               whiskerprops={"color": colors[agent]}, capprops={"color": colors[agent]})
                    jitter = [pos + width * 0.25 * ((n % 5) - 2) / 2 for n in range(len(ys))]
                    ax.scatter(jitter, ys, s=22, color=colors[agent], edgecolor="white", linewidth=0.5, zorder=3)
            bases = [r["base"] for r in here if r["base"] is not None]
            if bases:
                ax.axhline(statistics.fmean(bases), color="0.4", linestyle="--", linewidth=1)
            rnd = [row["best_of_random"] for row in rows if row["env"] == env and row["budget"] == budget
                   and row["best_of_random"] is not None]
            if rnd:
                ax.axhline(rnd[0], color="0.4", linestyle=":", linewidth=1.2)
            ax.set_xticks(range(len(scaffolds)), scaffolds)
            ax.set_xlim(-0.6, len(scaffolds) - 0.4)
            ax.grid(axis="y", alpha=0.3)
            env_part = f"{env.removeprefix('Curation-')} · " if len(envs) > 1 else ""
            n = len(here)
            ax.set_title(f"{env_part}budget {budget} iterations ({n} session{'s' if n != 1 else ''})", fontsize=10)
            if j == 0:
                ax.set_ylabel("best benchmark average of the session")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colors[a], label=a) for a in agents]
    handles += [plt.Line2D([], [], color="0.4", linestyle="--", label="base model"),
                plt.Line2D([], [], color="0.4", linestyle=":", label="best-of-N random (N = budget)")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    fig.suptitle("Scaffold comparison: best score per session (dots)", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def budget_figure(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Best score so far against the iteration, one panel per agent (and env): a thin line per session,
    coloured by its iteration budget, and the average curve of each budget in bold."""
    done = [r for r in records if r["state"] == "finished" and r["curve"]]
    if not done:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    envs = _order([r["session"].env for r in done])
    agents = _order([r["session"].agent for r in done])
    budgets = sorted({r["session"].iterations for r in done})
    colors = {b: BUDGET_COLORS[k % len(BUDGET_COLORS)] for k, b in enumerate(budgets)}
    fig, axes = plt.subplots(len(envs), len(agents), squeeze=False, sharey="row",
                             figsize=(max(6.4, 5.2 * len(agents)), 4.0 * len(envs)))
    for i, env in enumerate(envs):
        for j, agent in enumerate(agents):
            ax = axes[i][j]
            for n, budget in enumerate(budgets):
                here = [r for r in done if r["session"].env == env and r["session"].agent == agent
                        and r["session"].iterations == budget]
                if not here:
                    continue
                # A session that ended before its budget keeps its best: the curve is flat to the budget.
                curves = [r["curve"] + [r["curve"][-1]] * (budget + 1 - len(r["curve"])) for r in here]
                for c in curves:
                    ax.plot(range(len(c)), c, color=colors[budget], alpha=0.25, linewidth=1)
                length = max(len(c) for c in curves)
                mean = [statistics.fmean(c[min(k, len(c) - 1)] for c in curves) for k in range(length)]
                # Thinner and dashed for each larger budget, drawn on top: equal curves stay both visible.
                ax.plot(range(length), mean, color=colors[budget], linewidth=max(1.4, 3.0 - 0.7 * n),
                        linestyle=LINESTYLES[n % len(LINESTYLES)], zorder=3 + n,
                        label=f"budget {budget}: mean of {len(here)} (final {mean[-1]:.2f})")
            ax.set_xlabel("iteration (0 = base model)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if j == 0:
                ax.set_ylabel("best benchmark average so far")
            env_part = f"{env.removeprefix('Curation-')} · " if len(envs) > 1 else ""
            ax.set_title(f"{env_part}{agent}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Score vs iteration budget: best so far per session (thin), average (bold)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
