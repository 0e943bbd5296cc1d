"""What the agent reads: the observation dict and the texts of the welcome and of a scored submission."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces

from curbench_env.config import EpisodeConfig
from curbench_env.episode import EpisodeState
from curbench_env.errors import SubmissionError
from curbench_env.gate import Admitted
from curbench_env.pipeline import EvalResult
from curbench_env.scorer import ScoringCrash
from curbench_env.text import CHARSET, clip_text, normalise_text

if TYPE_CHECKING:
    from curbench_env.task import CurationTask


#: The longest command an action may hold.
ACTION_MAX_CHARS = 16_384


def action_space() -> spaces.Text:
    """One shell command, in the printable charset real terminals use."""
    return spaces.Text(ACTION_MAX_CHARS, min_length=0, charset=CHARSET)


def observation_space(config: EpisodeConfig) -> spaces.Dict:
    """The observation space of an episode with ``config`` (text fields carry an explicit charset)."""
    budget = config.iteration_budget
    return spaces.Dict({
        "output": spaces.Text(config.observation_chars, min_length=0, charset=CHARSET),
        "exit_code": spaces.Box(-1, 255, shape=(), dtype=np.int64),
        "iteration": spaces.Box(0, budget, shape=(), dtype=np.int64),
        "budget_left": spaces.Box(0, budget, shape=(), dtype=np.int64),
        "best_score": spaces.Box(0.0, 100.0, shape=(), dtype=np.float32),
        "last_score": spaces.Box(0.0, 100.0, shape=(), dtype=np.float32),
    })


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


def episode_info(state: EpisodeState, config: EpisodeConfig, task: CurationTask, steps: int, submit_usage: str,
                 submission: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """``info``: the facts a policy needs (budget, scores, rules, the submit usage) and the last submission."""
    info: dict[str, Any] = {
        "iteration": state.iteration, "budget_left": max(0, config.iteration_budget - state.iteration),
        "steps": steps, "base_score": state.base_score, "best_score": state.best_score,
        "best_iteration": state.best_iteration, "last_score": state.last_score, "task": task.name,
        "pool_kind": task.pool_kind, "submission_budget": task.rules.budget,
        "submission_rules": task.rules.describe(), "submit_usage": submit_usage, **extra}
    if submission is not None:
        info["submission"] = submission
        if submission.get("status") == "scored":
            info["scores"], info["average"] = submission["scores"], submission["average"]
    return info


def welcome(env_id: str, task: CurationTask, config: EpisodeConfig, base_average: float, submit_usage: str) -> str:
    """The first observation: how the session works, then the task README."""
    budget = config.iteration_budget
    costs = (" (a contaminated one, with evaluation data in it, spends its iteration)"
             if config.contamination_spends_iteration else "")
    return (
        f"# {env_id}: data-curation session\n"
        "Your workspace is the current directory ($WORKSPACE, your files persist); "
        "the candidate pool is read-only at $POOL.\n"
        f"Submit with `{submit_usage}` ({task.rules.describe()}). "
        f"You have {budget} iterations; refused submissions cost none{costs}. Run `done` to finish.\n"
        f"Base model (no fine-tuning): average {base_average:.2f}\n\n" + task.readme()
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


def feedback_not_scored(shown: str, exc: SubmissionError | ScoringCrash, run_root: Path, spent: bool,
                        state: EpisodeState) -> tuple[str, dict[str, Any]]:
    """The text and the step record of a submission that was refused or whose training crashed;
    ``spent``: a contaminated submission that cost its iteration."""
    if spent:
        return (f"== submission {shown} refused: contaminated; the iteration is spent "
                f"(iteration {state.iteration}, no score, reward 0) ==\n{exc}",
                {"status": "contaminated", "file": shown, "error": str(exc), "iteration": state.iteration})
    if isinstance(exc, ScoringCrash):
        return (f"== submission {shown}: training/evaluation crashed: {exc}\nThe iteration is not spent. "
                f"Log: {exc.log.relative_to(run_root)} in the run directory. ==",
                {"status": "crashed", "file": shown, "error": str(exc)})
    return (f"== submission {shown} refused (no iteration spent) ==\n{exc}",
            {"status": "refused", "file": shown, "error": str(exc), "problems": exc.problems[:50]})


def history(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``info["history"]`` at reset: the episode's scored submissions so far (empty for a new episode), so
    that a resumed policy knows what it tried and how it scored."""
    return [{"iteration": int(m["iteration"]), "file": m["file"], "note": m.get("note", ""),
             "average": float(m["average"]), "scores": m.get("scores", {})} for m in manifests]


def resumed(run_name: str, steps: int, state: EpisodeState, budget: int, repaired: str | None = None,
            manifests: Sequence[dict[str, Any]] = ()) -> str:
    """The first observation of a resumed episode: where it stands, its scored submissions so far, and
    what was repaired in its journal, if anything."""
    def note(text: str) -> str:  # a note holds up to 2,000 characters; the list shows its start
        return f"  ({text[:80]}{'...' if len(text) > 80 else ''})" if text else ""

    earlier = "".join(f"\n  iteration {m['iteration']}: {m['file']}  average {float(m['average']):.2f}"
                      + note(str(m.get("note") or "")) for m in manifests)
    return (f"Session resumed from {run_name} at step {steps}: {state.iteration} of {budget} submissions "
            f"scored, best average {state.best_score:.2f}. The workspace files are as you left them; the "
            "shell is new (exported variables are gone)."
            + (f"\nScored so far:{earlier}" if earlier else "")
            + (f"\n[run directory: {repaired}]" if repaired else ""))
