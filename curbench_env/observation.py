"""What the agent reads: the observation dict and the texts of the welcome and of a scored submission."""

from __future__ import annotations

from typing import Any

import numpy as np

from curbench_env.config import EpisodeConfig
from curbench_env.episode import EpisodeState
from curbench_env.gate import Admitted
from curbench_env.pipeline import EvalResult
from curbench_env.text import clip_text, normalise_text


def observation(output: str, exit_code: int, state: EpisodeState, config: EpisodeConfig) -> dict[str, Any]:
    """The observation dict, every field inside the env's observation space."""
    budget = config.iteration_budget
    return {
        "output": clip_text(normalise_text(output), config.observation_chars),
        "exit_code": np.array(max(-1, min(255, int(exit_code))), dtype=np.int64),
        "iteration": np.array(min(state.iteration, budget), dtype=np.int64),
        "budget_left": np.array(max(0, budget - state.iteration), dtype=np.int64),
        "best_score": np.array(np.clip(state.best_score, 0, 100), dtype=np.float32),
        "last_score": np.array(np.clip(state.last_score, 0, 100), dtype=np.float32),
    }


def welcome(env_id: str, rules: str, budget: int, base_average: float, submit_usage: str) -> str:
    """The lines above the task README in the first observation."""
    return (
        f"# {env_id}: data-curation session\n"
        "Your workspace is the current directory ($WORKSPACE, your files persist); "
        "the candidate pool is read-only at $POOL.\n"
        f"Submit with `{submit_usage}` ({rules}). "
        f"You have {budget} scored submissions; refused submissions cost none. Run `done` to finish.\n"
        f"Base model (no fine-tuning): average {base_average:.2f}"
    )


def feedback_scored(manifest: dict[str, Any], admitted: Admitted, result: EvalResult, base: EvalResult,
                    previous_best: float, budget: int) -> str:
    """The feedback block appended to the output of a command that submitted a scored selection."""
    lines = [
        f"== submission {manifest['file']}: {manifest['n_examples']} examples ==",
        f"audit: clean ({admitted.audit.checked} checked)",
        (f"trained in {result.timings.get('train_s', 0):.1f}s, evaluated in {result.timings.get('eval_s', 0):.1f}s"
         + ("  [cached result: this exact selection was scored before]" if result.cached else "")),
        result.table(reference=base),
        f"iteration {manifest['iteration']}/{budget}: average {result.average:.2f} "
        f"(best before {previous_best:.2f}; base {base.average:.2f}); reward {manifest['reward']:+.2f}",
    ]
    if manifest.get("commit"):
        lines.append(f"workspace committed as {manifest['commit'][:10]}")
    return "\n".join(lines)
