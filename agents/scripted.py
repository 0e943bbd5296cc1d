"""Scripted baseline agents: they act through the terminal as an agent would (write a
selection script into the workspace, run it, submit with a note), so their trajectories
look like an LLM agent's and exercise the same harness.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SCRIPTS = ("_common.py", "random_subset.py", "source_balanced.py", "format_filter.py", "dedup_diversity.py",
           "top_loss.py", "quality_mix.py", "ards_like.py", "icons_like.py", "clip_filter.py", "rewrite_noisy.py",
           "merge_rewrites.py")
#: The rewriting baseline's prompt (the simulated MLLM re-answers from the picture; a real MLLM reads it).
REWRITE_PROMPT = ("Look at the picture and correct any wrong answer in this conversation. Keep every question and "
                  "each answer's format (a single word where one is asked for).\n{turns}")
#: With --free-form: conversation-style questions are turned into the benchmarks' short-answer format too.
REWRITE_SHORT_PROMPT = ("Look at the picture and correct any wrong answer in this conversation. Rewrite it so that "
                        "every question asks for, and every answer is, a single word or phrase.\n{turns}")

@dataclass(frozen=True)
class ScriptedPolicy:
    """A baseline selection policy: a script in ``agents/scripts/``, its arguments and the note it submits."""

    name: str
    script: str
    note: str
    args: str = ""


def _by_name(*policies: ScriptedPolicy) -> dict[str, ScriptedPolicy]:
    return {p.name: p for p in policies}


#: Scripted policies by name.
POLICIES: dict[str, ScriptedPolicy] = _by_name(
    ScriptedPolicy("random", "random_subset.py", "random subset (baseline)"),
    ScriptedPolicy("source_balanced", "source_balanced.py", "source balancing: equal share per (image source, format)"),
    ScriptedPolicy("format_filter", "format_filter.py",
                   "length/format filter: drop chat, off-format answers, p95 length"),
    ScriptedPolicy("dedup_diversity", "dedup_diversity.py", "dedup + k-center diversity on base-model embeddings"),
    ScriptedPolicy("top_loss", "top_loss.py", "EL2N-style top-loss (highest early-training loss per source)",
                   "--noise-pct 100"),
    ScriptedPolicy("top_loss_p95", "top_loss.py", "EL2N-style top-loss with a per-source p95 loss noise filter"),
    ScriptedPolicy("quality_mix", "quality_mix.py",
                   "format/length/dedup/odd-picture filters + per-source p70 loss noise filter, balanced"),
    ScriptedPolicy("benchmark_formats", "quality_mix.py",
                   "quality_mix filters on the benchmark-format groups only (short, letter, yes/no, box)",
                   "--formats benchmark"),
    # Image-caption pools (Curation-MiniCLIP-v0), DataComp's baselines:
    ScriptedPolicy("no_filter", "clip_filter.py", "no filtering: the whole pool (DataComp baseline)", "--by none"),
    ScriptedPolicy("random30", "clip_filter.py", "a random 30% of the pool", "--by random --fraction 0.3"),
    ScriptedPolicy("clip_score30", "clip_filter.py", "CLIP score top 30% (DataComp baseline)",
                   "--by clip_score --fraction 0.3"),
    ScriptedPolicy("text_filter", "clip_filter.py", "text-based: drop file names, spam, short captions, duplicates",
                   "--by text"),
    ScriptedPolicy("ards_like", "ards_like.py", "ARDS-like: budget shifted to the hardest format groups, p90 loss filter"),
    ScriptedPolicy("icons_like", "icons_like.py",
                   "ICONS-like: consensus of per-format-group embedding-alignment votes"),
)


@dataclass(frozen=True)
class BaselineSet:
    """The policies `curbench baselines` runs for a kind of pool, and the paper shape they must show.

    ``shape``: "selection" (base < random < best scripted < full pool, the LLaVA setting) or
    "filtering" (DataComp's: filtering beats no filtering at a fixed compute).
    """

    policies: tuple[str, ...]
    shape: str


#: Pool kind (``CurationTask.pool_kind``) → its baseline set.
BASELINE_SETS: dict[str, BaselineSet] = {
    "conversations": BaselineSet(("random", "source_balanced", "format_filter", "dedup_diversity", "top_loss",
                                  "top_loss_p95", "quality_mix", "benchmark_formats", "ards_like", "icons_like"), "selection"),
    "image-caption": BaselineSet(("random30", "clip_score30", "text_filter"), "filtering"),
}


def script_text(name: str) -> str:
    """Source of one of the baseline selection scripts."""
    return (resources.files("curbench_env.agents") / "scripts" / name).read_text()


def write_file_command(path: str, text: str) -> str:
    """A shell command that writes ``text`` to ``path`` (quoted heredoc: no expansion)."""
    delim = "CURBENCH_EOF"
    return f"cat > {shlex.quote(path)} <<'{delim}'\n{text.rstrip()}\n{delim}"


class ScriptedAgent:
    """Runs a fixed plan of commands, then ``done``. Subclasses define :meth:`plan`."""

    name = "scripted"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._plan: Iterator[str] | None = None
        self.budget = 1000
        self.pool_kind = "conversations"
        self.rewrite_budget = 0  # examples the task's `rewrite` tool may still take (0: no tool)
        self.usage: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}

    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.budget = int(info["submission_budget"])
        self.pool_kind = str(info["pool_kind"])
        self.rewrite_budget = int(info.get("rewrite_budget_left") or 0)
        plan = list(self.plan())
        spent = int(info.get("iteration") or 0)  # > 0: a resumed episode; its first submissions are recorded
        if spent:
            submits = [k for k, cmd in enumerate(plan) if re.search(r"(^|&&\s*)submit\s", cmd)]
            plan = plan[submits[spent - 1] + 1:] if len(submits) >= spent else ["done"]
        self._plan = iter(plan)

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        if self._plan is None:
            self.reset(obs, info)
        assert self._plan is not None
        return next(self._plan, "done")

    def setup_commands(self) -> list[str]:
        """Write every baseline script into ./policies/."""
        cmds = ["mkdir -p policies"]
        cmds += [write_file_command(f"policies/{s}", script_text(s)) for s in SCRIPTS]
        return cmds

    def submit_command(self, policy: str, extra: str = "", tag: str = "") -> str:
        p = POLICIES[policy]
        out = f"picks_{policy}{tag}.txt"
        return (f"python3 policies/{p.script} --budget {self.budget} --seed {self.seed} --out {out} {p.args} {extra}"
                f" && submit {out} --note {shlex.quote(p.note + (' ' + extra if extra else ''))}")

    def plan(self) -> list[str]:
        raise NotImplementedError

    def rewrite_commands(self, policy: str, extra: str = "", noise_pct: float = 70.0, tag: str = "",
                         free_form: bool = True) -> list[str]:
        """Select with ``policy``, rewrite the selected examples the loss signal marks noisy, submit the
        selection with those rewritten (the rewriting baseline; needs the `rewrite` tool)."""
        p = POLICIES[policy]
        picks, ids, rw, merged = (f"picks_{policy}{tag}.txt", f"noisy_{policy}{tag}.txt", f"rewritten_{policy}{tag}.jsonl",
                                  f"submit_{policy}{tag}_rewritten.jsonl")
        return [
            f"test -f {picks} || python3 policies/{p.script} --budget {self.budget} --seed {self.seed} --out {picks} "
            f"{p.args} {extra}",
            f"python3 policies/rewrite_noisy.py --picks {picks} --noise-pct {noise_pct:g} --budget {self.rewrite_budget} "
            f"{' --free-form' if free_form else ''} --out {ids}",
            f"rewrite {ids} --prompt {shlex.quote(REWRITE_SHORT_PROMPT if free_form else REWRITE_PROMPT)} --out {rw}",
            f"python3 policies/merge_rewrites.py --picks {picks} --rewrites {rw} --out {merged} && submit {merged} "
            f"--note {shlex.quote(f'{p.note}; loss-noisy (>p{noise_pct:g}) examples rewritten by the MLLM tool')}",
        ]


class SinglePolicyAgent(ScriptedAgent):
    """Submits one named policy once (what `curbench baselines` runs), then ends."""

    def __init__(self, policy: str, seed: int = 0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown scripted policy {policy!r}; choose {', '.join(POLICIES)}")
        super().__init__(seed)
        self.policy = policy
        self.name = policy

    def plan(self) -> list[str]:
        return self.setup_commands() + [self.submit_command(self.policy), "done"]


class RewriteNoisyAgent(ScriptedAgent):
    """The rewriting baseline: submits a selection, then the same selection with its loss-noisy examples
    (and, with ``free_form``, its conversation-style ones, asked into the short-answer format) rewritten by
    the task's `rewrite` tool (two iterations, same training seed). The default selection is plain
    EL2N top-loss: its high-loss top is where the noise is, which the rewriter fixes instead of the p95
    filter dropping it."""

    name = "rewrite_noisy"

    def __init__(self, policy: str = "top_loss", seed: int = 0, extra: str = "", noise_pct: float = 70.0,
                 free_form: bool = True) -> None:
        super().__init__(seed)
        self.policy, self.extra, self.noise_pct, self.free_form = policy, extra, noise_pct, free_form

    def plan(self) -> list[str]:
        p = POLICIES[self.policy]
        picks = f"picks_{self.policy}.txt"
        return self.setup_commands() + [
            f"python3 policies/{p.script} --budget {self.budget} --seed {self.seed} --out {picks} {p.args} {self.extra}"
            f" && submit {picks} --note {shlex.quote(p.note)}",
            *self.rewrite_commands(self.policy, self.extra, self.noise_pct, free_form=self.free_form), "done"]


class RandomSearchAgent(ScriptedAgent):
    """The paper's best-of-N random baseline: a fresh random subset every iteration until the budget is
    spent, so the session's best is the best of N random draws (N = the iteration budget)."""

    name = "random_search"

    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.iterations = int(info.get("iteration") or 0) + int(info.get("budget_left") or 0)
        super().reset(obs, info)

    def plan(self) -> list[str]:
        p = POLICIES["random"]
        draws = [f"python3 policies/{p.script} --budget {self.budget} --seed {1000 * self.seed + k} "
                 f"--out picks_random_{k + 1}.txt {p.args} && submit picks_random_{k + 1}.txt --note "
                 f"{shlex.quote(f'{p.note}, draw {k + 1}')}" for k in range(self.iterations)]
        return self.setup_commands() + draws + ["done"]


#: The curator's refinement knobs: per selection script, each option's values in order (a step moves to a
#: neighbouring value) and the script's default (a knob at its default is the same as unset; a test checks
#: these defaults against the scripts). Scripts without knobs are refined by a fresh draw (``--seed``).
KNOBS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "quality_mix.py": {"--noise-pct": (("40", "50", "60", "70", "80", "90"), "70"),
                       "--odd-pct": (("90", "95", "97", "99"), "97"),
                       "--order": (("random", "loss"), "random")},
    "top_loss.py": {"--noise-pct": (("80", "85", "90", "95", "97.5"), "95")},
}
#: Scripts whose selection depends on ``--seed`` (quality_mix.py only in its random order).
DRAWS = ("random_subset.py", "quality_mix.py", "format_filter.py", "source_balanced.py")


class CuratorAgent(ScriptedAgent):
    """The default agent of `curbench run`: a session that looks around, tries one policy family per
    iteration (ten submissions), then, while iterations are left, refines the best configuration so far:
    it moves one knob of it to a neighbouring value (noise-filter percentile, outlier cut, order), keeps
    a move when it scores higher, and when every neighbour is tried, draws the best one afresh (no API
    key needed)."""

    name = "curator"

    def reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.scored: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._configs: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}
        self._sent: str | None = None
        self._draws = 0
        super().reset(obs, info)
        for entry in info.get("history") or []:  # a resumed episode: what this session scored before
            config = _recorded_config(Path(str(entry.get("file", ""))).name, str(entry.get("note", "")))
            if config is not None:
                self._configs[f"(recorded) {entry['file']}"] = config
                self.scored[config] = max(self.scored.get(config, float("-inf")), float(entry["average"]))
                self._draws += "--seed" in dict(config[1])

    def submit_command(self, policy: str, extra: str = "", tag: str = "") -> str:
        cmd = super().submit_command(policy, extra, tag)
        self._configs[cmd] = (policy, _knobs(extra))
        return cmd

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        if self._plan is None:
            self.reset(obs, info)
        sub = info.get("submission") or {}
        if self._sent in self._configs and sub.get("status") == "scored":
            config = self._configs[self._sent]
            self.scored[config] = max(self.scored.get(config, float("-inf")), float(sub["average"]))
        cmd = super().act(obs, info)
        if cmd == "done" and int(info.get("budget_left") or 0) > 0 and self.pool_kind != "image-caption":
            cmd = self.refinement() or "done"
        self._sent = cmd
        return cmd

    def refinement(self) -> str | None:
        """The next configuration to try, from the best scored one down: a one-knob neighbour not tried yet (a
        policy without knobs gets one fresh draw instead); when every neighbour is tried, a fresh draw of the
        best one that draws. None when nothing was scored (a resumed session counts the scores recorded
        before the resume, from ``info["history"]``)."""
        if not self.scored:
            return None
        ranked = sorted(self.scored, key=lambda c: -self.scored[c])
        tried = set(self._configs.values())
        drawn = {(p, tuple(kv for kv in k if kv[0] != "--seed")) for p, k in tried if "--seed" in dict(k)}
        for policy, knobs in ranked:
            script = POLICIES[policy].script
            have = dict(knobs)
            if not KNOBS.get(script) and _draws(policy, have) and (policy, knobs) not in drawn and "--seed" not in have:
                return self._draw(policy, have)
            for knob, (values, default) in KNOBS.get(script, {}).items():
                if knob in POLICIES[policy].args:  # fixed by the policy (plain top-loss: no noise filter)
                    continue
                now = have.get(knob, default)
                k = values.index(now) if now in values else len(values) // 2
                for j in (k - 1, k + 1):
                    if 0 <= j < len(values):
                        moved = {**have, knob: values[j]}
                        if values[j] == default:  # the same as not setting it
                            del moved[knob]
                        config = (policy, tuple(sorted(moved.items())))
                        if config not in tried:
                            return self._refine_command(config)
        for policy, knobs in ranked:
            if _draws(policy, dict(knobs)):
                return self._draw(policy, dict(knobs))
        return None

    def _draw(self, policy: str, knobs: dict[str, str]) -> str:
        """The configuration again with a seed of its own (a fresh random draw)."""
        self._draws += 1
        return self._refine_command((policy, tuple(sorted({**knobs, "--seed": str(
            1000 + 100 * self.seed + self._draws)}.items()))))

    def _refine_command(self, config: tuple[str, tuple[tuple[str, str], ...]]) -> str:
        policy, knobs = config
        extra = " ".join(f"{k} {shlex.quote(v)}" if v else k for k, v in knobs)
        tag = "_" + re.sub(r"[^A-Za-z0-9.]+", "_", extra.replace("--", "")).strip("_")
        return self.submit_command(policy, extra, tag)  # a --seed in ``extra`` comes last: the draw's seed wins

    def plan(self) -> list[str]:
        if self.pool_kind == "image-caption":  # DataComp-style pools get DataComp's filters
            return self.setup_commands() + [
                "ls -la $POOL && head -3 $POOL/metadata.jsonl",
                "python3 -c \"import json; r=[json.loads(l) for l in open('$POOL/metadata.jsonl')]; "
                "import collections; print(len(r), collections.Counter(x['text'] for x in r).most_common(8))\"",
                self.submit_command("no_filter"),
                self.submit_command("random30"),
                self.submit_command("text_filter"),
                self.submit_command("clip_score30"),
                self.submit_command("clip_score30", "--fraction 0.2", "_20"),
                self.submit_command("clip_score30", "--fraction 0.4", "_40"),
                self.submit_command("clip_score30", "--fraction 0.5", "_50"),
                "done",
            ]
        return self.setup_commands() + [
            "ls -la $POOL && pool-stats",
            "pool-show $(python3 -c \"import json; print(json.load(open('$POOL/pool.json'))[0]['id'])\")",
            self.submit_command("random"),
            self.submit_command("source_balanced"),
            self.submit_command("source_balanced", "--drop-text", "_notext"),
            self.submit_command("format_filter"),
            self.submit_command("dedup_diversity"),
            self.submit_command("top_loss_p95"),
            self.submit_command("top_loss_p95", "--noise-pct 90", "_p90"),
            self.submit_command("quality_mix"),
            self.submit_command("benchmark_formats"),
            self.submit_command("benchmark_formats", "--noise-pct 60", "_p60"),
            # With a rewriting tool: keep top-loss's noisy top and have it fixed instead of filtering it out.
            *(self.rewrite_commands("top_loss") if self.rewrite_budget else []),
            "done",
        ]


def _knobs(extra: str) -> tuple[tuple[str, str], ...]:
    """A configuration's knobs from the extra arguments of its submit command (a flag without a value: "")."""
    words = shlex.split(extra)
    return tuple(sorted((w, words[k + 1] if k + 1 < len(words) and not words[k + 1].startswith("--") else "")
                        for k, w in enumerate(words) if w.startswith("--")))


def _recorded_config(file: str, note: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """The (policy, knobs) of a submission recorded before a resume, from its file (``picks_<policy>...``)
    and its note (the policy's note, then the extra arguments); None for a file the curator did not write."""
    for name in sorted(POLICIES, key=len, reverse=True):
        p = POLICIES[name]
        if file.startswith(f"picks_{name}") and (note == p.note or note.startswith(p.note + " ")):
            return name, _knobs(note[len(p.note):].strip())
    return None


def _draws(policy: str, knobs: dict[str, str]) -> bool:
    """Whether another ``--seed`` gives another selection for this configuration."""
    return POLICIES[policy].script in DRAWS and knobs.get("--order") != "loss"


AGENTS = {"curator": CuratorAgent, "rewrite_noisy": RewriteNoisyAgent, "random_search": RandomSearchAgent}
