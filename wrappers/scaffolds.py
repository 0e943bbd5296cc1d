"""Scaffolds as Gymnasium wrappers. Light ones add text to what the agent reads; heavy ones add
rules that every submission must satisfy before anything is trained."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
from curbench_env.scaffolds import method_library, parse_declaration, text

from curbench_env.errors import SubmissionError
from curbench_env.text import clip_text


def with_output(env: gym.Env, obs: dict[str, Any], extra: str) -> dict[str, Any]:
    """A copy of ``obs`` with ``extra`` appended to its output, kept inside the observation space."""
    obs = dict(obs)
    obs["output"] = clip_text(obs["output"] + extra, env.unwrapped.config.observation_chars)
    return obs


class _TextScaffold(gym.Wrapper):
    """Appends the scaffold's block to each reset's observation (once per episode: the env makes a
    fresh observation at every reset) and names the scaffold in ``options["scaffolds"]`` so the run
    directory records it. The inner env is never modified."""

    title = "scaffold"
    scaffold_name = "scaffold"

    def scaffold_text(self) -> str:
        raise NotImplementedError

    def block(self) -> str:
        """The text this scaffold adds to the first observation."""
        return f"\n\n## {self.title}\n{self.scaffold_text()}"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        # Outer wrappers reset first, so prepending keeps the list in the order they were applied.
        options["scaffolds"] = [self.scaffold_name, *options.get("scaffolds", ())]
        obs, info = self.env.reset(seed=seed, options=options)
        return with_output(self.env, obs, self.block()), info


class StrategyGuideWrapper(_TextScaffold):
    """Light scaffold: a list of curation strategies is added to the task README the agent sees.

    Changes only the first observation; rules are unchanged.
    """

    title = "Strategy guide"
    scaffold_name = "strategy-guide"

    def scaffold_text(self) -> str:
        return text("strategy_guide.md").strip()


class SkillCardsWrapper(_TextScaffold):
    """Light scaffold: short cards of published data-selection methods are added to the README.

    Changes only the first observation; rules are unchanged.
    """

    title = "Method cards (skills you may use)"
    scaffold_name = "skill-cards"

    def __init__(self, env: gym.Env, cards: list[str] | None = None) -> None:
        super().__init__(env)
        lib = method_library()
        unknown = [c for c in cards or [] if c not in lib]
        if unknown:
            raise ValueError(f"unknown method card(s): {', '.join(unknown)}; known: {', '.join(lib)}")
        self.cards = [lib[c] for c in cards] if cards else list(lib.values())

    def scaffold_text(self) -> str:
        return "\n".join(f"- [{c.id}] {c.name}: {c.idea}" for c in self.cards)


class AdaptPapersWrapper(_TextScaffold):
    """Heavy scaffold (the paper's Adapt-Papers): cite, instantiate and adapt a published method.

    Every non-baseline submission must carry a method declaration in its note::

        submit picks.txt --note "cite: el2n | instantiate: rank by \\$POOL/signals/loss.npy | adapt: per-source p95 cut"

    ``cite`` names a card of the method library (shown at reset), ``instantiate`` says how
    it is realised with this environment's tools, ``adapt`` what was changed for this task.
    ``cite: random`` (the baseline) needs nothing else. A missing or invalid declaration is
    refused before training (no iteration spent) with a message saying what is missing.
    """

    title = "Adapt-Papers protocol"
    scaffold_name = "adapt-papers"
    MIN_CHARS = 8

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        env.unwrapped.add_submission_check(self._validate)

    def scaffold_text(self) -> str:
        cards = "\n".join(c.render() for c in method_library().values())
        return ("Every submission must cite, instantiate and adapt a published method from the library below. "
                "Write it in the note: submit FILE --note \"cite: <card id> | instantiate: <how, with the tools "
                "here> | adapt: <what you changed for this task>\". Only `cite: random` may omit the rest.\n\n"
                + cards)

    def _validate(self, selection: Any) -> None:
        decl = parse_declaration(selection.note)
        lib = method_library()
        usage = ('submit FILE --note "cite: <card id> | instantiate: <how> | adapt: <what changed>"')
        cite = decl.get("cite", "").strip().lower()
        if not cite:
            raise SubmissionError(f"Adapt-Papers: the submission declares no method. Use: {usage}. "
                                  f"Card ids: {', '.join(lib)}")
        if cite not in lib:
            raise SubmissionError(f"Adapt-Papers: unknown card {cite!r}. Card ids: {', '.join(lib)}")
        if cite == "random":
            return
        missing = [k for k in ("instantiate", "adapt") if len(decl.get(k, "")) < self.MIN_CHARS]
        if missing:
            raise SubmissionError(f"Adapt-Papers: the declaration citing {cite!r} lacks {' and '.join(missing)} "
                                  f"(at least {self.MIN_CHARS} characters each). Use: {usage}")


class HypothesisLedgerWrapper(_TextScaffold):
    """Heavy scaffold (ours): every submission states a hypothesis and a falsifiable prediction.

    The note must contain ``hypothesis: ... | predict: ...`` where the prediction names a
    benchmark (or ``average``) and a direction (``up``/``down``, or a signed number), e.g.
    ``predict: count up``. After scoring, the wrapper checks the prediction against the
    per-benchmark change from the previous iteration and appends the verdict to the
    observation; the ledger of all verdicts is in ``info['ledger']``. It pushes agents from
    knob-turning toward testable ideas about the data. Missing parts are refused before training.
    """

    title = "Hypothesis ledger protocol"
    scaffold_name = "hypothesis-ledger"
    _PRED = re.compile(r"(?P<bench>[a-z_]+)\s*(?P<dir>up|down|[+-]\d+(?:\.\d+)?)", re.I)

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        env.unwrapped.add_submission_check(self._validate)
        self.ledger: list[dict[str, Any]] = []
        self._previous: dict[str, float] | None = None

    def scaffold_text(self) -> str:
        return ('Each submission must state what you believe about the data and what you expect: '
                'submit FILE --note "hypothesis: <what about the data limits the score> | predict: <benchmark or '
                'average> <up|down|+N|-N>". After scoring you are told whether the prediction held.')

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.ledger = []
        obs, info = super().reset(seed=seed, options=options)
        self._previous = dict(info["last_scores"], average=info["last_score"])
        return obs, info

    def _validate(self, selection: Any) -> None:
        decl = parse_declaration(selection.note)
        if len(decl.get("hypothesis", "")) < 8:
            raise SubmissionError('Hypothesis ledger: state a hypothesis: --note "hypothesis: ... | predict: count up"')
        if not self._PRED.search(decl.get("predict", "")):
            raise SubmissionError("Hypothesis ledger: 'predict' must name a benchmark (or average) and a "
                                  "direction, e.g. 'predict: count up' or 'predict: average +1.5'")

    def step(self, action: str):
        obs, reward, term, trunc, info = self.env.step(action)
        sub = info.get("submission")
        if sub and sub.get("status") == "scored":
            decl = parse_declaration(sub.get("note", ""))
            m = self._PRED.search(decl.get("predict", ""))
            current = dict(sub["scores"], average=sub["average"])
            verdict = "unchecked"
            if m and self._previous is not None:
                bench, direction = m.group("bench").lower(), m.group("dir").lower()
                if bench in current:
                    delta = current[bench] - self._previous.get(bench, 0.0)
                    want = 1.0 if direction == "up" else -1.0 if direction == "down" else float(direction)
                    verdict = ("held" if (delta > 0) == (want > 0) and delta != 0 else "failed") + f" ({bench} {delta:+.2f})"
            self.ledger.append({"iteration": sub["iteration"], "hypothesis": decl.get("hypothesis"),
                                "predict": decl.get("predict"), "verdict": verdict})
            self._previous = current
            obs = with_output(self.env, obs, f"\nprediction {verdict}")
        info["ledger"] = list(self.ledger)
        return obs, reward, term, trunc, info


class IterationBudget(gym.Wrapper):
    """Ends the episode (terminated) once ``budget`` submissions have been scored.

    Use it to give one agent fewer iterations than the env's own budget without re-making it.
    """

    def __init__(self, env: gym.Env, budget: int) -> None:
        super().__init__(env)
        if budget < 1:
            raise ValueError("budget must be at least 1")
        self.budget = budget

    def step(self, action: str):
        obs, reward, term, trunc, info = self.env.step(action)
        if not term and info.get("iteration", 0) >= self.budget:
            term = True
            obs = with_output(self.env, obs, f"\n\nIteration budget of {self.budget} spent. Episode over.")
        return obs, reward, term, trunc, info
