"""Train a curation policy against the environment and show that it learns (tier a: torch only).

The policy is a factored categorical over a parameterised action space: a selection-recipe family
(the nine scripted baselines: random, source balancing, format filter, dedup+diversity, EL2N-style
top loss, quality mix, benchmark formats, ARDS-like, ICONS-like) and a noise-filter percentile knob
(p60/p80/p95, used by the loss-filtering families). A sampled action becomes real commands in a real
episode: the recipe scripts are written into the workspace, the chosen one runs and its subset is
submitted (one iteration), and the reward is the episode's (score − base, benchmark points).
REINFORCE with a batch-mean baseline and Adam updates the logits; each generation's rollouts run
concurrently (:func:`curbench_env.integrations.rollouts.run_rollouts`).

Honest comparison, all from the same episodes' scores:
- ``random``: the random-subset policy (random data selection) over ``--random-seeds`` subsets;
- ``untrained``: the initial (uniform) policy's first generation;
- ``learned``: the last generation's samples, and the final policy's greedy action.
Scores are deterministic per (subset, training seed), so learner seeds differ in their exploration
only; the result cache makes a repeated action cost no training.

    python examples/train_recipe_policy.py --out results/recipe_policy      # CPU default world, ~20 min cold
    python examples/train_recipe_policy.py --preset tiny --generations 2 --batch 2 --seeds 1   # a smoke run

Writes ``curve.png`` and ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from curbench_env.agents.scripted import POLICIES, ScriptedAgent

from curbench_env.integrations.rollouts import run_rollouts
from curbench_env.runner import make_env

FAMILIES = ("random", "source_balanced", "format_filter", "dedup_diversity", "top_loss", "quality_mix",
            "benchmark_formats", "ards_like", "icons_like")
NOISE_PCTS = (60, 80, 95)
KNOBBED = {"top_loss", "quality_mix", "benchmark_formats"}  # families that take --noise-pct


@dataclass(frozen=True)
class Recipe:
    family: str
    noise: int | None = None
    subset_seed: int = 0

    @property
    def label(self) -> str:
        return self.family + (f"@p{self.noise}" if self.noise is not None else "")


class RecipeAgent(ScriptedAgent):
    """Writes the recipe scripts, runs one recipe, submits its subset, ends."""

    def __init__(self, recipe: Recipe) -> None:
        super().__init__(seed=recipe.subset_seed)
        self.recipe = recipe

    def plan(self) -> list[str]:
        extra = f"--noise-pct {self.recipe.noise}" if self.recipe.noise is not None else ""
        cmd = self.submit_command(self.recipe.family, extra)
        note = POLICIES[self.recipe.family].note + (" " + extra if extra else "")
        return [*self.setup_commands(), cmd.replace(f"--note {shlex.quote(note)}",
                                                     f"--note {shlex.quote(self.recipe.label)}"), "done"]


class RecipePolicy(torch.nn.Module):
    """Logits over families and over the noise knob."""

    def __init__(self) -> None:
        super().__init__()
        self.family = torch.nn.Parameter(torch.zeros(len(FAMILIES)))
        self.noise = torch.nn.Parameter(torch.zeros(len(NOISE_PCTS)))

    def sample(self, g: torch.Generator) -> tuple[Recipe, torch.Tensor]:
        pf, pn = torch.softmax(self.family, 0), torch.softmax(self.noise, 0)
        f = int(torch.multinomial(pf.detach(), 1, generator=g))
        logp = torch.log(pf[f])
        noise = None
        if FAMILIES[f] in KNOBBED:
            n = int(torch.multinomial(pn.detach(), 1, generator=g))
            logp = logp + torch.log(pn[n])
            noise = NOISE_PCTS[n]
        return Recipe(FAMILIES[f], noise), logp

    def greedy(self) -> Recipe:
        family = FAMILIES[int(self.family.argmax())]
        return Recipe(family, NOISE_PCTS[int(self.noise.argmax())] if family in KNOBBED else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Curation-MiniVQA-v0")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--seeds", type=int, default=3, help="learner seeds")
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--batch", type=int, default=6, help="rollouts per generation")
    ap.add_argument("--lr", type=float, default=0.25)
    ap.add_argument("--random-seeds", type=int, default=5, help="random-subset baseline: how many subsets")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--train-seed", type=int, default=0, help="the episodes' seed (fixes the training seed)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out", default="results/recipe_policy")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    task_args = {"preset": a.preset} if a.preset else {}
    t_start = time.monotonic()

    def env_factory() -> Any:
        return make_env(a.env, task_args=task_args, backend=a.backend, iteration_budget=1, max_steps=40)

    def evaluate(recipes: list[Recipe]) -> list[float]:
        results = run_rollouts(env_factory, lambda k: RecipeAgent(recipes[k]), seeds=[a.train_seed] * len(recipes),
                               concurrency=a.concurrency)
        for r in results:
            if r.error:
                raise RuntimeError(f"a rollout failed ({r.run_dir}): {r.error}")
        return [r.episode_return for r in results]

    print(f"{a.env} {task_args or ''}: {a.seeds} learner seeds x {a.generations} generations x {a.batch} rollouts",
          flush=True)
    random_rewards = evaluate([Recipe("random", subset_seed=s) for s in range(a.random_seeds)])
    print(f"random subsets: {statistics.mean(random_rewards):+.2f} ± {statistics.pstdev(random_rewards):.2f}",
          flush=True)

    curves, untrained, learned, greedy = [], [], [], []
    for seed in range(a.seeds):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        policy = RecipePolicy()
        opt = torch.optim.Adam(policy.parameters(), lr=a.lr)
        curve = []
        for gen in range(a.generations):
            samples = [policy.sample(g) for _ in range(a.batch)]
            rewards = evaluate([r for r, _ in samples])
            r = torch.tensor(rewards)
            adv = (r - r.mean()) / (r.std() + 1e-6) if len(rewards) > 1 else r * 0
            loss = -(adv * torch.stack([lp for _, lp in samples])).sum() / len(samples)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append({"generation": gen, "mean": float(r.mean()), "rewards": rewards,
                          "recipes": [s.label for s, _ in samples]})
            print(f"seed {seed} gen {gen}: mean reward {float(r.mean()):+.2f}  "
                  f"[{', '.join(f'{s.label} {x:+.1f}' for (s, _), x in zip(samples, rewards, strict=True))}]",
                  flush=True)
        final = policy.greedy()
        greedy_reward = evaluate([final])[0]
        curves.append(curve)
        untrained.append(curve[0]["mean"])
        learned.append(curve[-1]["mean"])
        greedy.append(greedy_reward)
        print(f"seed {seed}: greedy recipe {final.label} reward {greedy_reward:+.2f}", flush=True)

    def stat(xs: list[float]) -> dict[str, float]:
        return {"mean": round(statistics.mean(xs), 2), "std": round(statistics.pstdev(xs), 2)}

    wall = time.monotonic() - t_start
    summary = {"env": a.env, "task_args": task_args, "args": vars(a), "wall_s": round(wall, 1),
               "random": {**stat(random_rewards), "rewards": random_rewards},
               "untrained": stat(untrained), "learned_last_generation": stat(learned), "learned_greedy": stat(greedy),
               "curves": curves}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    plot(summary, out / "curve.png")
    print(f"\nreward = score − base (benchmark points), mean ± std over {a.seeds} learner seeds; wall {wall:.0f}s")
    print(f"  random subsets        {summary['random']['mean']:+.2f} ± {summary['random']['std']:.2f}")
    print(f"  untrained (gen 0)     {summary['untrained']['mean']:+.2f} ± {summary['untrained']['std']:.2f}")
    print(f"  learned (last gen)    {summary['learned_last_generation']['mean']:+.2f} ± "
          f"{summary['learned_last_generation']['std']:.2f}")
    print(f"  learned (greedy)      {summary['learned_greedy']['mean']:+.2f} ± {summary['learned_greedy']['std']:.2f}")
    print(f"wrote {out / 'curve.png'} and {out / 'results.json'}")


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    curves = summary["curves"]
    gens = list(range(len(curves[0])))
    for k, curve in enumerate(curves):
        ax.plot(gens, [c["mean"] for c in curve], color="tab:blue", alpha=0.35, lw=1,
                label="learner seeds" if k == 0 else None)
    mean = [statistics.mean(c[g]["mean"] for c in curves) for g in gens]
    ax.plot(gens, mean, color="tab:blue", lw=2.5, marker="o", label="REINFORCE policy (mean over seeds)")
    rnd = summary["random"]
    ax.axhline(rnd["mean"], color="tab:gray", ls="--", label=f"random subsets ({rnd['mean']:+.1f} ± {rnd['std']:.1f})")
    ax.axhspan(rnd["mean"] - rnd["std"], rnd["mean"] + rnd["std"], color="tab:gray", alpha=0.15)
    greedy = summary["learned_greedy"]
    ax.errorbar([gens[-1] + 0.25], [greedy["mean"]], yerr=[greedy["std"]], fmt="*", ms=12, color="tab:green",
                capsize=4, label=f"learned policy's greedy recipe ({greedy['mean']:+.1f} ± {greedy['std']:.1f})")
    ax.axhline(summary["untrained"]["mean"], color="tab:orange", ls=":",
               label=f"untrained policy ({summary['untrained']['mean']:+.1f})")
    ax.set_xlabel("generation (each: a batch of real episodes, one submission each)")
    ax.set_ylabel("reward: score − base model (points)")
    ax.set_title(f"Learning to curate on {summary['env']}")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(-0.3, gens[-1] + 0.6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    main()
