"""The recorder: writes an episode into its run directory (config once, every step, every
scored iteration, the summary) and reads back what resume needs."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curbench_env.config import RunConfig
from curbench_env.episode import EpisodeState
from curbench_env.errors import CurbenchError
from curbench_env.gate import Admitted
from curbench_env.pipeline import EvalResult
from curbench_env.trajectory import RunDirectory


@dataclass(frozen=True)
class IterationManifest:
    """One scored submission as written to iterations/NN/manifest.json."""

    iteration: int
    step: int
    file: str
    note: str
    n_examples: int
    content_hash: str
    rewrites: int
    scores: dict[str, float]
    average: float
    base_average: float
    delta_vs_base: float
    reward: float
    best_score: float
    cached: bool
    timings: dict[str, float]
    policy_files: list[str]
    snapshot_skipped: dict[str, int]  # workspace files left out of the snapshot, by reason
    commit: str | None
    time: float
    status: str = "scored"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ResumePoint:
    """Where a recorded episode stopped: its config, scored averages, step count and elapsed time."""

    config: RunConfig
    manifests: list[dict[str, Any]]
    steps: int
    elapsed_s: float
    repaired: str | None = None
    spent: frozenset[int] = frozenset()  # iterations spent without a score (contaminated submissions)

    @property
    def outcomes(self) -> list[float | None]:
        """Each iteration's score in order, None where it was spent without one."""
        scored = {int(m["iteration"]): float(m["average"]) for m in self.manifests}
        return [scored.get(k) for k in range(1, max([*scored, *self.spent], default=0) + 1)]


class Recorder:
    """Writes one episode's run directory (layout: :mod:`curbench_env.trajectory`)."""

    def __init__(self, run: RunDirectory) -> None:
        self.run = run

    @property
    def root(self) -> Path:
        return self.run.root

    def start(self, config: RunConfig, workspace_files: dict[str, str]) -> None:
        """Create the run directory: config.json, the initial workspace files and their commit."""
        self.run.create(config.to_dict())
        for rel, text in workspace_files.items():
            target = self.run.workspace / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.run.commit("initial workspace")

    def step(self, record: dict[str, Any]) -> None:
        """Append one step to steps.jsonl (durable at once)."""
        self.run.append_step({**record, "time": time.time()})

    def iteration(self, step: int, admitted: Admitted, result: EvalResult, state: EpisodeState,
                  reward: float, shown: str) -> IterationManifest:
        """Write iterations/NN/ for a scored submission and commit the workspace."""
        index, selection = state.iteration, admitted.selection
        d = self.run.iteration_dir(index)
        (d / "selection.txt").write_text("\n".join(selection.ids) + "\n")
        if selection.rewrites:
            with open(d / "rewrites.jsonl", "w") as fh:
                for k, v in selection.rewrites.items():
                    fh.write(json.dumps({"id": k, **v}) + "\n")
        (d / "train.log").write_text(result.train_log)
        (d / "eval.log").write_text(result.eval_log)
        self.run.write_json(f"iterations/{index:02d}/audit.json", admitted.audit.to_dict())
        self.run.write_json(f"iterations/{index:02d}/scores.json", {"scores": result.scores, "average": result.average})
        files, skipped = self.run.policy_files()
        policy = self.run.snapshot_policy(index, files)
        commit = self.run.commit(f"iteration {index}: {shown} -> {result.average:.2f}")
        manifest = IterationManifest(
            iteration=index, step=step, file=shown, note=selection.note, n_examples=len(selection),
            content_hash=selection.content_hash, rewrites=len(selection.rewrites), scores=result.scores,
            average=result.average, base_average=state.base_score, delta_vs_base=result.average - state.base_score,
            reward=reward, best_score=state.best_score, cached=result.cached, timings=result.timings,
            policy_files=policy, snapshot_skipped=skipped, commit=commit, time=time.time())
        self.run.write_json(f"iterations/{index:02d}/manifest.json", manifest.to_dict())
        return manifest

    def summary(self, env_id: str, steps: int, state: EpisodeState, elapsed_s: float) -> None:
        """Write summary.json when the episode ends."""
        self.run.write_json("summary.json", {
            "env_id": env_id, "steps": steps, "iterations": state.iteration, "base_score": state.base_score,
            "best_score": state.best_score, "best_iteration": state.best_iteration,
            "return": state.best_score - state.base_score, "elapsed_s": round(elapsed_s, 2),
        })

    def close(self) -> None:
        self.run.close()

    @staticmethod
    def recorded_config(root: Path) -> RunConfig:
        """The config a run directory was recorded with (a clear error when it is not a run directory)."""
        return RunConfig.from_dict(RunDirectory.existing(root).config)

    @classmethod
    def reopen(cls, root: Path) -> tuple[Recorder, ResumePoint]:
        """Take ownership of a recorded, unfinished episode and read where it stopped (a clear
        error when another harness owns it, or when it cannot continue). A torn last journal line
        is cut first; the point says so."""
        run = RunDirectory.existing(root)
        run.acquire()
        try:
            repaired = run.repair_tail()
            steps = run.steps()
            if not any(s.get("kind") == "reset" for s in steps):
                raise CurbenchError(f"{root}: steps.jsonl has no reset record; start a new run instead")
            n_steps = max((int(s.get("step", 0)) for s in steps), default=0)
            if steps[-1].get("terminated") or steps[-1].get("truncated"):
                raise CurbenchError(f"{root}: the episode already ended (step {n_steps}); nothing to resume")
        except BaseException:
            run.close()
            raise
        manifests = [m for m in run.iterations() if m.get("status", "scored") == "scored"]
        elapsed = max((float(s.get("elapsed_s", 0.0)) for s in steps), default=0.0)
        spent = frozenset(int(s["submission"]["iteration"]) for s in steps
                          if (s.get("submission") or {}).get("status") == "contaminated")
        point = ResumePoint(config=RunConfig.from_dict(run.config), manifests=manifests, steps=n_steps,
                            elapsed_s=elapsed, repaired=repaired, spent=spent)
        return cls(run), point
