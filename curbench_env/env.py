"""``CurationEnv``: one episode is one data-curation session in a sandboxed terminal."""

from __future__ import annotations

import json
import shutil
import time
import traceback
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from curbench_env.config import EpisodeConfig, SandboxLimits
from curbench_env.errors import CurbenchError, SubmissionError, WorkspaceError
from curbench_env.pipeline import EvalResult, ResultCache, curbench_home
from curbench_env.registry import load_task
from curbench_env.submission import Selection, parse_submission
from curbench_env.task import CurationTask
from curbench_env.text import CHARSET, clip_text, normalise_text
from curbench_env.trajectory import RunDirectory, default_run_dir
from curbench_env.workspace import Workspace, WorkspaceSpec, make_workspace, resolve_backend

ACTION_MAX_CHARS = 16_384


class CurationEnv(gym.Env):
    """A data-curation session as a Gymnasium environment.

    ## Description
    The agent works in a sandboxed terminal holding a candidate training pool (read-only at
    ``$POOL``) and a task README. It writes selection policies, runs them, and submits
    subsets with ``submit PATH``. A fixed pipeline trains the fixed model on each valid
    submission and evaluates it on held-out benchmarks; the per-benchmark scores come back
    in the observation. Evaluation data never enters the workspace; every submission is
    audited against it before training.

    ## Action Space
    ``Text(16384, charset=CHARSET)``: one shell command, run in a persistent bash (cwd and
    exported variables persist). ``submit PATH [--note TEXT]`` is a program on the PATH, so
    it chains (``python select.py && submit picks.jsonl``). The action ``done`` ends the episode.

    ## Observation Space
    ``Dict`` with
    - ``output``: ``Text(observation_chars, min_length=0, charset=CHARSET)``: the command's
      output (stdout and stderr), followed by submission feedback; normalised to printable
      ASCII and capped with a visible truncation marker;
    - ``exit_code``: ``Box(-1, 255, (), int64)``;
    - ``iteration``, ``budget_left``: ``Box(0, budget, (), int64)``: scored submissions so far / left;
    - ``best_score``, ``last_score``: ``Box(0, 100, (), float32)``: benchmark averages (the base
      model's score before any submission).

    ## Rewards
    0 for plain commands and refused submissions. For a scored submission, by ``reward_mode``:
    ``best`` (default) ``max(0, score - best so far)`` so the return is best - base;
    ``previous`` ``score - previous score``; ``base`` ``score - base score``.

    ## Starting State
    ``reset(seed)`` creates a run directory and a fresh workspace; the observation is the
    task README. The seed fixes the training seed (scores are repeatable; results are cached
    by content hash of selection, pipeline and seed).

    ## Episode End
    Terminated when the iteration budget is spent or the agent runs ``done``. Truncated at
    ``max_steps`` steps or after ``max_wall_clock_s`` seconds.

    ## Arguments
    - ``task``: task family name (``"minivqa"``), ``"module:Class"`` or a ``CurationTask``.
    - ``task_kwargs``: passed to the task class (pool size, budget...).
    - ``iteration_budget`` (10), ``max_steps`` (300), ``max_wall_clock_s`` (None),
      ``reward_mode`` (``"best"``), ``backend`` (``"auto"``: bwrap where installed, else local;
      or ``"docker"``), ``limits`` (:class:`SandboxLimits`), ``observation_chars`` (16000).
    - ``run_dir``: where to record the first episode; ``run_root``: parent of generated run
      directories ($CURBENCH_RUNS or ./runs); ``resume_from``: continue a recorded episode.
    - ``render_mode``: ``"ansi"`` or None.

    ``info`` holds the iteration, budget left, per-benchmark scores, the audit report,
    timings, the run directory and the workspace commit of each scored iteration.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        task: str | CurationTask = "minivqa",
        task_kwargs: dict[str, Any] | None = None,
        *,
        iteration_budget: int = EpisodeConfig.iteration_budget,
        max_steps: int = EpisodeConfig.max_steps,
        max_wall_clock_s: float | None = EpisodeConfig.max_wall_clock_s,
        reward_mode: str = EpisodeConfig.reward_mode,
        backend: str = EpisodeConfig.backend,
        limits: SandboxLimits | dict[str, Any] | None = None,
        observation_chars: int = EpisodeConfig.observation_chars,
        docker_image: str = EpisodeConfig.docker_image,
        run_dir: str | Path | None = None,
        run_root: str | Path | None = None,
        resume_from: str | Path | None = None,
        render_mode: str | None = None,
        env_id: str | None = None,
        workspace_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if reward_mode not in ("best", "previous", "base"):
            raise ValueError(f"reward_mode must be 'best', 'previous' or 'base', not {reward_mode!r}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be 'ansi' or None, not {render_mode!r}")
        if isinstance(limits, dict):
            limits = SandboxLimits(**limits)
        self.config = EpisodeConfig(
            iteration_budget=iteration_budget, max_steps=max_steps, max_wall_clock_s=max_wall_clock_s,
            reward_mode=reward_mode,  # type: ignore[arg-type]
            backend=resolve_backend(backend),  # type: ignore[arg-type]
            observation_chars=observation_chars, limits=limits or SandboxLimits(), docker_image=docker_image,
        )
        self.task_kwargs = dict(task_kwargs or {})
        self.task = load_task(task, **self.task_kwargs)
        self.task_ref = task if isinstance(task, str) else f"{type(task).__module__}:{type(task).__qualname__}"
        self.env_id = env_id or f"Curation-{self.task.name}"
        self.render_mode = render_mode
        self._first_run_dir = Path(run_dir) if run_dir else None
        self._resume_from = Path(resume_from) if resume_from else None
        self._run_root = Path(run_root) if run_root else None
        self._workspace_kwargs = dict(workspace_kwargs or {})
        #: Checks run on each parsed submission before training (wrappers add scaffold rules
        #: here). Each gets (selection, request, env) and raises SubmissionError to refuse.
        self.submission_validators: list[Any] = []
        #: Text scaffolds add to what the agent is told (also passed to policies via info).
        self.scaffold_prompt: str = ""
        #: Extra facts recorded in config.json (the agent, the scaffolds applied).
        self.run_metadata: dict[str, Any] = {}

        budget = self.config.iteration_budget
        self.action_space = spaces.Text(ACTION_MAX_CHARS, min_length=0, charset=CHARSET)
        self.observation_space = spaces.Dict({
            "output": spaces.Text(observation_chars, min_length=0, charset=CHARSET),
            "exit_code": spaces.Box(-1, 255, shape=(), dtype=np.int64),
            "iteration": spaces.Box(0, budget, shape=(), dtype=np.int64),
            "budget_left": spaces.Box(0, budget, shape=(), dtype=np.int64),
            "best_score": spaces.Box(0.0, 100.0, shape=(), dtype=np.float32),
            "last_score": spaces.Box(0.0, 100.0, shape=(), dtype=np.float32),
        })

        self.workspace: Workspace | None = None
        self.run: RunDirectory | None = None
        self.cache = ResultCache(curbench_home() / "results" / self.task.name)
        self._reset_state()

    # -- state -------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.steps = 0
        self.iteration = 0
        self.seed_value = 0
        self.base: EvalResult | None = None
        self.best_score = 0.0
        self.last_score = 0.0
        self.best_iteration: int | None = None
        self.history: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self._last_render = ""
        self._done = False

    @property
    def run_dir(self) -> Path | None:
        """The current episode's run directory (kept out of ``info`` so info stays deterministic)."""
        return self.run.root if self.run else None

    @property
    def budget_left(self) -> int:
        return max(0, self.config.iteration_budget - self.iteration)

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._teardown()
        self._reset_state()
        self.task.prepare()
        resume = self._resume_from
        self._resume_from = None
        if resume is not None:
            return self._resume(resume)
        self.seed_value = int(seed) if seed is not None else 0
        self.base = self._base_result()
        self.best_score = self.last_score = self.base.average

        run_dir = self._first_run_dir or default_run_dir(self.env_id, seed, self._run_root)
        self._first_run_dir = None
        self.run = RunDirectory(run_dir)
        self.run.create(self._run_config())
        for rel, text in self.task.workspace_files().items():
            target = self.run.workspace / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.run.commit("initial workspace")
        self._start_workspace()

        output = self._welcome() + "\n\n" + self.task.readme()
        obs = self._obs(output, 0)
        info = self._info()
        self.run.append_step({"step": 0, "kind": "reset", "seed": seed, "output": output,
                              "base_scores": self.base.scores, "base_average": self.base.average,
                              "time": time.time()})
        self._last_render = output
        return obs, info

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self.run is None or self.workspace is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._done:
            raise gym.error.ResetNeeded("the episode has ended; call reset()")
        if not isinstance(action, str):
            raise TypeError(f"an action is one shell command as a str, not {type(action).__name__}")
        self.steps += 1
        t0 = time.monotonic()
        reward = 0.0
        terminated = False
        submission: dict[str, Any] | None = None
        command = action.strip()
        if command == "done":
            output, exit_code = "Episode ended by the agent (`done`).", 0
            terminated = True
        elif not command:
            output, exit_code = "(empty command)", 0
        else:
            result = self.workspace.run(action)
            output, exit_code = result.output, result.exit_code
            feedback, reward, submission = self._process_outbox()
            if feedback:
                output = (output.rstrip("\n") + "\n\n" if output.strip() else "") + feedback
        if self.iteration >= self.config.iteration_budget and not terminated:
            terminated = True
            output += f"\n\nIteration budget spent ({self.config.iteration_budget} scored submissions). Episode over."
        truncated = False
        if not terminated:
            if self.steps >= self.config.max_steps:
                truncated = True
                output += f"\n\nStep limit reached ({self.config.max_steps} steps). Episode truncated."
            elif self.config.max_wall_clock_s and time.monotonic() - self.started > self.config.max_wall_clock_s:
                truncated = True
                output += f"\n\nWall-clock limit reached ({self.config.max_wall_clock_s:g}s). Episode truncated."
        self._done = terminated or truncated
        obs = self._obs(output, exit_code)
        info = self._info(submission)
        self.run.append_step({
            "step": self.steps, "kind": "command", "action": action, "output": obs["output"],
            "exit_code": int(exit_code), "reward": reward, "terminated": terminated, "truncated": truncated,
            "duration_s": round(time.monotonic() - t0, 4), "iteration": self.iteration,
            "submission": submission, "time": time.time(),
        })
        self._last_render = f"$ {action}\n{obs['output']}"
        if self._done:
            self._write_summary()
        return obs, float(reward), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_render
        return None

    def close(self) -> None:
        self._teardown()
        super().close()

    # -- internals ---------------------------------------------------------------------------
    def _teardown(self) -> None:
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None
        if self.run is not None:
            self.run.close()

    def _run_config(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "task": self.task_ref, "task_kwargs": self.task_kwargs,
                "task_info": self.task.describe(), "episode": self.config.to_dict(), "seed": self.seed_value,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **self.run_metadata}

    def _start_workspace(self) -> None:
        assert self.run is not None
        bin_dir = self.run.root / ".bin"
        if bin_dir.exists():
            shutil.rmtree(bin_dir)
        bin_dir.mkdir()
        src = resources.files("curbench_env.sandbox_bin") / "submit"
        (bin_dir / "submit").write_bytes(src.read_bytes())
        (bin_dir / "submit").chmod(0o755)
        tools = self.task.tools_dir()
        if tools is not None:
            for tool in Path(tools).iterdir():
                if tool.is_file() and not tool.name.startswith(("_", ".")):
                    (bin_dir / tool.name).write_bytes(tool.read_bytes())
                    (bin_dir / tool.name).chmod(0o755)
        (self.run.workspace / ".curbench" / "outbox").mkdir(parents=True, exist_ok=True)
        spec = WorkspaceSpec(host_dir=self.run.workspace, pool_dir=self.task.pool_dir, bin_dir=bin_dir,
                             limits=self.config.limits, docker_image=self.config.docker_image,
                             extra_mounts=self.task.workspace_mounts())
        kwargs = dict(self._workspace_kwargs)
        if self.config.backend == "local":
            kwargs.setdefault("warn", True)
        self.workspace = make_workspace(self.config.backend, spec, **kwargs)
        self.workspace.start()

    def _base_result(self) -> EvalResult:
        key = ResultCache.key(Selection(ids=[]), "base:" + self.task.pipeline.fingerprint(), self.seed_value)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        result = self.task.pipeline.base_result(self.seed_value)
        self.cache.put(key, result)
        return result

    def _welcome(self) -> str:
        budget = self.config.iteration_budget
        base = f"{self.base.average:.2f}" if self.base else "n/a"
        return (
            f"# {self.env_id}: data-curation session\n"
            "Your workspace is the current directory ($WORKSPACE, your files persist); "
            "the candidate pool is read-only at $POOL.\n"
            f"Submit with `submit PATH [--note TEXT]` ({self.task.rules.describe()}). "
            f"You have {budget} scored submissions; refused submissions cost none. "
            f"Run `done` to finish.\n"
            f"Base model (no fine-tuning): average {base}"
        )

    def _obs(self, output: str, exit_code: int) -> dict[str, Any]:
        text = clip_text(normalise_text(output), self.config.observation_chars)
        budget = self.config.iteration_budget
        return {
            "output": text,
            "exit_code": np.array(max(-1, min(255, int(exit_code))), dtype=np.int64),
            "iteration": np.array(min(self.iteration, budget), dtype=np.int64),
            "budget_left": np.array(self.budget_left, dtype=np.int64),
            "best_score": np.array(np.clip(self.best_score, 0, 100), dtype=np.float32),
            "last_score": np.array(np.clip(self.last_score, 0, 100), dtype=np.float32),
        }

    def _info(self, submission: dict[str, Any] | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {
            "iteration": self.iteration,
            "budget_left": self.budget_left,
            "steps": self.steps,
            "base_score": self.base.average if self.base else None,
            "best_score": self.best_score,
            "best_iteration": self.best_iteration,
            "submission_budget": self.task.rules.budget,
        }
        if self.scaffold_prompt:
            info["scaffold_prompt"] = self.scaffold_prompt
        if submission is not None:
            info["submission"] = submission
            if submission.get("status") == "scored":
                info["scores"] = submission["scores"]
                info["average"] = submission["average"]
        return info

    # -- submissions -------------------------------------------------------------------------
    def _process_outbox(self) -> tuple[str, float, dict[str, Any] | None]:
        assert self.run is not None
        outbox = self.run.workspace / ".curbench" / "outbox"
        requests = sorted(p for p in outbox.glob("*.json")) if outbox.is_dir() else []
        if not requests:
            return "", 0.0, None
        parts, reward, info = [], 0.0, None
        for n, req_path in enumerate(requests):
            try:
                req = json.loads(req_path.read_text())
                if not isinstance(req, dict) or not isinstance(req.get("path"), str):
                    raise ValueError("not a submit request")
            except (OSError, ValueError):
                req = None
            req_path.unlink(missing_ok=True)
            if req is None:
                parts.append("== submission refused: unreadable request in the outbox (use the `submit` program) ==")
                continue
            if n > 0:
                parts.append(f"== submission of {req['path']} refused: one submission per command; "
                             "submit it again in its own command ==")
                continue
            text, reward, info = self._handle_submission(req)
            parts.append(text)
        return "\n".join(parts), reward, info

    def _handle_submission(self, req: dict[str, Any]) -> tuple[str, float, dict[str, Any]]:
        assert self.run is not None and self.workspace is not None and self.base is not None
        shown = req["path"]
        try:
            host_path = self.workspace.to_host(req["path"], req.get("cwd"))
        except WorkspaceError as exc:
            return self._refused(shown, str(exc))
        try:
            selection = parse_submission(host_path, self.task.rules, self.task.pool, shown_as=shown)
            selection.note = str(req.get("note") or "")
            for validate in self.submission_validators:
                validate(selection, req, self)
            report = self.task.audit(selection)
            from curbench_env.audit import LeakageAudit

            LeakageAudit(self.task.leakage_index).enforce(report)
        except SubmissionError as exc:
            return self._refused(shown, str(exc), problems=exc.problems)

        index = self.iteration + 1
        key = ResultCache.key(selection, self.task.pipeline.fingerprint(), self.seed_value)
        result = self.cache.get(key)
        scratch = self.run.root / "work" / f"step-{self.steps:04d}"
        if result is None:
            scratch.mkdir(parents=True, exist_ok=True)
            try:
                result = self.task.pipeline.run(selection, scratch, self.seed_value)
            except Exception as exc:  # a crashed run must leave the episode intact
                log = scratch / "crash.log"
                log.write_text(traceback.format_exc())
                msg = exc.args[0] if isinstance(exc, CurbenchError) and exc.args else f"{type(exc).__name__}: {exc}"
                text = (f"== submission {shown}: training/evaluation crashed: {msg}\n"
                        f"The iteration is not spent. Log: {log.relative_to(self.run.root)} in the run directory. ==")
                return text, 0.0, {"status": "crashed", "file": shown, "error": msg}
            self.cache.put(key, result)

        score = result.average
        previous_best = self.best_score
        if self.config.reward_mode == "best":
            reward = max(0.0, score - self.best_score)
        elif self.config.reward_mode == "previous":
            reward = score - self.last_score
        else:
            reward = score - self.base.average
        self.iteration = index
        self.last_score = score
        if score > self.best_score or self.best_iteration is None and score >= self.best_score:
            self.best_score = score
            self.best_iteration = index
        record = self._record_iteration(index, selection, report, result, reward, shown)
        self.history.append(record)
        lines = [
            f"== submission {shown}: {len(selection)} examples ==",
            f"audit: clean ({report.checked} checked)",
            (f"trained in {result.timings.get('train_s', 0):.1f}s, evaluated in {result.timings.get('eval_s', 0):.1f}s"
             + ("  [cached result: this exact selection was scored before]" if result.cached else "")),
            result.table(reference=self.base),
            f"iteration {index}/{self.config.iteration_budget}: average {score:.2f} "
            f"(best before {previous_best:.2f}; base {self.base.average:.2f}); reward {reward:+.2f}",
        ]
        if record.get("commit"):
            lines.append(f"workspace committed as {record['commit'][:10]}")
        return "\n".join(lines), reward, record

    def _refused(self, shown: str, message: str, problems: list[str] | None = None) -> tuple[str, float, dict]:
        text = f"== submission {shown} refused (no iteration spent) ==\n{message}"
        return text, 0.0, {"status": "refused", "file": shown, "error": message, "problems": (problems or [])[:50]}

    def _record_iteration(self, index: int, selection: Selection, report: Any, result: EvalResult,
                          reward: float, shown: str) -> dict[str, Any]:
        assert self.run is not None
        d = self.run.iteration_dir(index)
        (d / "selection.txt").write_text("\n".join(selection.ids) + "\n")
        if selection.rewrites:
            with open(d / "rewrites.jsonl", "w") as fh:
                for k, v in selection.rewrites.items():
                    fh.write(json.dumps({"id": k, **v}) + "\n")
        (d / "train.log").write_text(result.train_log)
        (d / "eval.log").write_text(result.eval_log)
        self.run.write_json(f"iterations/{index:02d}/audit.json", report.to_dict())
        self.run.write_json(f"iterations/{index:02d}/scores.json", {"scores": result.scores, "average": result.average})
        policy = self.run.snapshot_policy(index)
        commit = self.run.commit(f"iteration {index}: {shown} -> {result.average:.2f}")
        manifest = {
            "status": "scored", "iteration": index, "step": self.steps, "file": shown, "note": selection.note,
            "n_examples": len(selection), "content_hash": selection.content_hash, "rewrites": len(selection.rewrites),
            "scores": result.scores, "average": result.average, "base_average": self.base.average if self.base else None,
            "delta_vs_base": result.average - (self.base.average if self.base else 0.0), "reward": reward,
            "best_score": self.best_score, "cached": result.cached, "timings": result.timings,
            "policy_files": policy, "commit": commit, "time": time.time(),
        }
        self.run.write_json(f"iterations/{index:02d}/manifest.json", manifest)
        return manifest

    def _write_summary(self) -> None:
        if self.run is None:
            return
        self.run.write_json("summary.json", {
            "env_id": self.env_id, "steps": self.steps, "iterations": self.iteration,
            "base_score": self.base.average if self.base else None, "best_score": self.best_score,
            "best_iteration": self.best_iteration, "return": self.best_score - (self.base.average if self.base else 0),
            "elapsed_s": round(time.monotonic() - self.started, 2),
        })

    # -- resume ------------------------------------------------------------------------------
    def _resume(self, root: Path) -> tuple[dict, dict]:
        run = RunDirectory.existing(root)
        steps = run.steps()
        reset = next((s for s in steps if s.get("kind") == "reset"), None)
        if reset is None:
            raise CurbenchError(f"{root}: steps.jsonl has no reset record; start a new run instead")
        self.run = run
        self.seed_value = int(run.config.get("seed", 0))
        self.base = self._base_result()
        self.best_score = self.last_score = self.base.average
        for m in run.iterations():
            self.iteration = max(self.iteration, int(m["iteration"]))
            self.last_score = float(m["average"])
            if m["average"] > self.best_score:
                self.best_score, self.best_iteration = float(m["average"]), int(m["iteration"])
            self.history.append(m)
        self.steps = max((int(s.get("step", 0)) for s in steps), default=0)
        last = steps[-1] if steps else {}
        if last.get("terminated") or last.get("truncated"):
            raise CurbenchError(f"{root}: the episode already ended (step {self.steps}); nothing to resume")
        self._start_workspace()
        output = (f"Session resumed from {root.name} at step {self.steps}: {self.iteration} of "
                  f"{self.config.iteration_budget} submissions scored, best average {self.best_score:.2f}. "
                  "The workspace files are as you left them; the shell is new (exported variables are gone).")
        run.append_step({"step": self.steps, "kind": "resume", "output": output, "time": time.time()})
        self._last_render = output
        return self._obs(output, 0), self._info()
