"""``CurationEnv``: one episode is one data-curation session in a sandboxed terminal.

The wiring, top-down: a command runs in the :mod:`workspace <curbench_env.workspace>`; a `submit`
request it leaves passes the :class:`~curbench_env.gate.SubmissionGate`; the
:class:`~curbench_env.scorer.Scorer` trains and evaluates it; the
:class:`~curbench_env.episode.EpisodeState` gives the reward; the
:class:`~curbench_env.recorder.Recorder` writes it all to the run directory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from curbench_env.config import EpisodeConfig, RunConfig, SandboxLimits
from curbench_env.episode import EpisodeState
from curbench_env.errors import SubmissionError
from curbench_env.gate import SubmissionCheck, SubmissionGate, SubmitRequest, take_requests
from curbench_env.observation import feedback_scored, observation, welcome
from curbench_env.pipeline import EvalResult
from curbench_env.recorder import Recorder
from curbench_env.registry import load_task
from curbench_env.scorer import Scorer, ScoringCrash
from curbench_env.task import CurationTask
from curbench_env.text import CHARSET
from curbench_env.trajectory import RunDirectory, default_run_dir
from curbench_env.workspace import Workspace, WorkspaceSpec, make_workspace, resolve_backend
from curbench_env.workspace.tools import install_tools

ACTION_MAX_CHARS = 16_384
SUBMIT_USAGE = "submit PATH [--note TEXT]"


class CurationEnv(gym.Env):
    """A data-curation session as a Gymnasium environment.

    ## Description
    The agent works in a sandboxed terminal holding a candidate training pool (read-only at
    ``$POOL``) and a task README. It writes selection policies, runs them, and submits subsets
    with ``submit PATH``. A fixed pipeline trains the fixed model on each valid submission and
    evaluates it on held-out benchmarks; the per-benchmark scores come back in the observation.
    Evaluation data never enters the workspace; every submission is audited against it.

    ## Action Space
    ``Text(16384, charset=CHARSET)``: one shell command, run in a persistent bash (cwd and
    exported variables persist). ``submit PATH [--note TEXT]`` is a program on the PATH, so it
    chains (``python select.py && submit picks.jsonl``). The action ``done`` ends the episode.

    ## Observation Space
    ``Dict``: ``output`` (``Text(observation_chars)``: the command's output and the submission
    feedback, printable ASCII, capped with a visible marker), ``exit_code`` (``Box(-1, 255)``),
    ``iteration`` and ``budget_left`` (``Box(0, budget)``), ``best_score`` and ``last_score``
    (``Box(0, 100)``: benchmark averages; the base model's before any submission).

    ## Rewards
    0 for plain commands and refused submissions. For a scored submission, by ``reward_mode``:
    ``best`` (default) ``max(0, score - best so far)``, so the return is best - base;
    ``previous`` ``score - previous score``; ``base`` ``score - base score``.

    ## Starting State
    ``reset(seed)`` creates a run directory and a fresh workspace; the observation is the task
    README. The seed fixes the training seed; results are cached by content hash of selection,
    pipeline and seed. ``options``: ``scaffolds`` and ``agent`` (names recorded in config.json).

    ## Episode End
    Terminated when the iteration budget is spent or on ``done``. Truncated at ``max_steps``
    steps or after ``max_wall_clock_s`` seconds (counted across resumes).

    ## Arguments
    ``task`` (family name, ``"module:Class"`` or a ``CurationTask``), ``task_kwargs``,
    ``iteration_budget`` (10), ``max_steps`` (300), ``max_wall_clock_s`` (None), ``reward_mode``
    (``"best"``), ``backend`` (``"auto"``: bwrap where installed, else local; or ``"docker"``),
    ``limits`` (:class:`SandboxLimits`), ``observation_chars`` (16000), ``docker_image``;
    ``run_dir`` (the first episode's run directory), ``run_root`` ($CURBENCH_RUNS or ./runs);
    ``resume_from``: continue a recorded episode with every setting it was recorded with (the
    episode arguments here are ignored, except an explicit ``backend``); ``render_mode`` ("ansi").

    ## Info
    iteration, budget_left, steps, base/best scores, the submission rules and budget, the submit
    usage, per-benchmark ``scores`` and the ``submission`` record (audit, timings, commit).
    Heavy scaffolds add rules with :meth:`add_submission_check`.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, task: str | CurationTask = "minivqa", task_kwargs: dict[str, Any] | None = None, *,
                 iteration_budget: int = EpisodeConfig.iteration_budget, max_steps: int = EpisodeConfig.max_steps,
                 max_wall_clock_s: float | None = EpisodeConfig.max_wall_clock_s,
                 reward_mode: str = EpisodeConfig.reward_mode, backend: str = EpisodeConfig.backend,
                 limits: SandboxLimits | dict[str, Any] | None = None,
                 observation_chars: int = EpisodeConfig.observation_chars,
                 docker_image: str = EpisodeConfig.docker_image, run_dir: str | Path | None = None,
                 run_root: str | Path | None = None, resume_from: str | Path | None = None,
                 render_mode: str | None = None, env_id: str | None = None,
                 workspace_kwargs: dict[str, Any] | None = None) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be 'ansi' or None, not {render_mode!r}")
        self._resume_from = Path(resume_from) if resume_from else None
        if self._resume_from is not None:
            recorded = RunConfig.from_dict(RunDirectory.existing(self._resume_from).config)
            self.config = recorded.episode
            if backend != EpisodeConfig.backend:
                self.config = EpisodeConfig.from_dict({**self.config.to_dict(), "backend": resolve_backend(backend)})
            task = task if isinstance(task, CurationTask) else recorded.task
            task_kwargs, env_id = recorded.task_kwargs, recorded.env_id
        else:
            if reward_mode not in ("best", "previous", "base"):
                raise ValueError(f"reward_mode must be 'best', 'previous' or 'base', not {reward_mode!r}")
            limits = SandboxLimits(**limits) if isinstance(limits, dict) else limits or SandboxLimits()
            self.config = EpisodeConfig(
                iteration_budget=iteration_budget, max_steps=max_steps, max_wall_clock_s=max_wall_clock_s,
                reward_mode=reward_mode, backend=resolve_backend(backend),  # type: ignore[arg-type]
                observation_chars=observation_chars, limits=limits, docker_image=docker_image)
        self.task_kwargs = dict(task_kwargs or {})
        self.task = load_task(task, **self.task_kwargs)
        self.task_ref = task if isinstance(task, str) else f"{type(task).__module__}:{type(task).__qualname__}"
        self.env_id = env_id or f"Curation-{self.task.name}"
        self.render_mode = render_mode
        self._first_run_dir = Path(run_dir) if run_dir else None
        self._run_root = Path(run_root) if run_root else None
        self._workspace_kwargs = dict(workspace_kwargs or {})
        self.gate = SubmissionGate(self.task)
        self.scorer = Scorer(self.task)
        budget = self.config.iteration_budget
        self.action_space = spaces.Text(ACTION_MAX_CHARS, min_length=0, charset=CHARSET)
        self.observation_space = spaces.Dict({
            "output": spaces.Text(self.config.observation_chars, min_length=0, charset=CHARSET),
            "exit_code": spaces.Box(-1, 255, shape=(), dtype=np.int64),
            "iteration": spaces.Box(0, budget, shape=(), dtype=np.int64),
            "budget_left": spaces.Box(0, budget, shape=(), dtype=np.int64),
            "best_score": spaces.Box(0.0, 100.0, shape=(), dtype=np.float32),
            "last_score": spaces.Box(0.0, 100.0, shape=(), dtype=np.float32),
        })
        self.workspace: Workspace | None = None
        self.recorder: Recorder | None = None
        self.state = EpisodeState.start(0.0, self.config.reward_mode)
        self.base: EvalResult | None = None
        self.history: list[dict[str, Any]] = []  # manifests of the scored iterations
        self.steps, self.seed_value, self._done, self._last_render = 0, 0, False, ""
        self._clock = time.monotonic()

    def add_submission_check(self, check: SubmissionCheck) -> None:
        """A rule every submission must pass before training (the hook heavy scaffolds use)."""
        self.gate.add_check(check)

    @property
    def run_dir(self) -> Path | None:
        """The current episode's run directory (kept out of ``info`` so info stays deterministic)."""
        return self.recorder.root if self.recorder else None

    @property
    def elapsed_s(self) -> float:
        """Seconds this episode has run, across resumes."""
        return time.monotonic() - self._clock

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._teardown()
        self.task.prepare()
        self.history, self._done = [], False
        resume, self._resume_from = self._resume_from, None
        if resume is not None:
            return self._resume(resume)
        self.seed_value, self.steps, self._clock = int(seed) if seed is not None else 0, 0, time.monotonic()
        self.base = base = self.scorer.base(self.seed_value)
        self.state = EpisodeState.start(base.average, self.config.reward_mode)
        options = options or {}
        config = RunConfig(env_id=self.env_id, task=self.task_ref, task_kwargs=self.task_kwargs, episode=self.config,
                           seed=self.seed_value, task_info=self.task.describe(),
                           scaffolds=tuple(options.get("scaffolds") or ()), agent=options.get("agent"),
                           created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.recorder = Recorder(RunDirectory(self._first_run_dir or default_run_dir(self.env_id, seed, self._run_root)))
        self._first_run_dir = None
        self.recorder.start(config, self.task.workspace_files())
        self._start_workspace()
        output = welcome(self.env_id, self.task.rules.describe(), self.config.iteration_budget, base.average,
                         SUBMIT_USAGE) + "\n\n" + self.task.readme()
        self.recorder.step({"step": 0, "kind": "reset", "seed": seed, "output": output, "base_scores": base.scores,
                            "base_average": base.average, "elapsed_s": 0.0})
        return self._observe(output, 0), self._info(last_scores=base.scores)

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self.recorder is None or self.workspace is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._done:
            raise gym.error.ResetNeeded("the episode has ended; call reset()")
        if not isinstance(action, str):
            raise TypeError(f"an action is one shell command as a str, not {type(action).__name__}")
        self.steps += 1
        t0 = time.monotonic()
        reward, terminated, submission, command = 0.0, False, None, action.strip()
        if command == "done":
            output, exit_code, terminated = "Episode ended by the agent (`done`).", 0, True
        elif not command:
            output, exit_code = "(empty command)", 0
        else:
            result = self.workspace.run(action)
            output, exit_code = result.output, result.exit_code
            feedback, reward, submission = self._take_submissions()
            if feedback:
                output = (output.rstrip("\n") + "\n\n" if output.strip() else "") + feedback
        end, terminated, truncated = self._episode_end(terminated)
        self._done = terminated or truncated
        obs = self._observe(output + end, exit_code)
        self.recorder.step({
            "step": self.steps, "kind": "command", "action": action, "output": obs["output"],
            "exit_code": int(exit_code), "reward": reward, "terminated": terminated, "truncated": truncated,
            "duration_s": round(time.monotonic() - t0, 4), "iteration": self.state.iteration,
            "submission": submission, "elapsed_s": round(self.elapsed_s, 3)})
        self._last_render = f"$ {action}\n{obs['output']}"
        if self._done:
            self.recorder.summary(self.env_id, self.steps, self.state, self.elapsed_s)
        return obs, float(reward), terminated, truncated, self._info(submission)

    def render(self) -> str | None:
        return self._last_render if self.render_mode == "ansi" else None

    def close(self) -> None:
        self._teardown()
        super().close()

    # -- internals ---------------------------------------------------------------------------
    def _episode_end(self, terminated: bool) -> tuple[str, bool, bool]:
        cfg = self.config
        if terminated:
            return "", True, False
        if self.state.iteration >= cfg.iteration_budget:
            return f"\n\nIteration budget spent ({cfg.iteration_budget} scored submissions). Episode over.", True, False
        if self.steps >= cfg.max_steps:
            return f"\n\nStep limit reached ({cfg.max_steps} steps). Episode truncated.", False, True
        if cfg.max_wall_clock_s and self.elapsed_s > cfg.max_wall_clock_s:
            return f"\n\nWall-clock limit reached ({cfg.max_wall_clock_s:g}s). Episode truncated.", False, True
        return "", False, False

    def _teardown(self) -> None:
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None
        if self.recorder is not None:
            self.recorder.close()

    def _start_workspace(self) -> None:
        assert self.recorder is not None
        bin_dir = install_tools(self.recorder.root / ".bin", self.task.tools_dir())
        spec = WorkspaceSpec(host_dir=self.recorder.run.workspace, pool_dir=self.task.pool_dir, bin_dir=bin_dir,
                             limits=self.config.limits, docker_image=self.config.docker_image,
                             extra_mounts=self.task.workspace_mounts())
        kwargs = dict(self._workspace_kwargs)
        if self.config.backend == "local":
            kwargs.setdefault("warn", True)
        self.workspace = make_workspace(self.config.backend, spec, **kwargs)
        self.workspace.start()

    def _observe(self, output: str, exit_code: int) -> dict[str, Any]:
        self._last_render = output
        return observation(output, exit_code, self.state, self.config)

    def _info(self, submission: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        s = self.state
        info: dict[str, Any] = {
            "iteration": s.iteration, "budget_left": max(0, self.config.iteration_budget - s.iteration),
            "steps": self.steps, "base_score": s.base_score, "best_score": s.best_score,
            "best_iteration": s.best_iteration, "last_score": s.last_score, "task": self.task.name, "pool_kind": self.task.pool_kind, "submission_budget": self.task.rules.budget,
            "submission_rules": self.task.rules.describe(), "submit_usage": SUBMIT_USAGE, **extra}
        if submission is not None:
            info["submission"] = submission
            if submission.get("status") == "scored":
                info["scores"], info["average"] = submission["scores"], submission["average"]
        return info

    # -- submissions -------------------------------------------------------------------------
    def _take_submissions(self) -> tuple[str, float, dict[str, Any] | None]:
        assert self.recorder is not None
        parts, reward, record = [], 0.0, None
        for n, request in enumerate(take_requests(self.recorder.run.workspace)):
            if isinstance(request, SubmissionError):
                parts.append(f"== submission refused: {request} ==")
            elif n > 0:
                parts.append(f"== submission of {request.path} refused: one submission per command; "
                             "submit it again in its own command ==")
            else:
                text, reward, record = self._submit(request)
                parts.append(text)
        return "\n".join(parts), reward, record

    def _submit(self, request: SubmitRequest) -> tuple[str, float, dict[str, Any]]:
        assert self.recorder is not None and self.workspace is not None and self.base is not None
        shown = request.path
        try:
            admitted = self.gate.admit(request, self.workspace)
        except SubmissionError as exc:
            text = f"== submission {shown} refused (no iteration spent) ==\n{exc}"
            return text, 0.0, {"status": "refused", "file": shown, "error": str(exc), "problems": exc.problems[:50]}
        try:
            result = self.scorer.score(admitted.selection, self.seed_value,
                                       self.recorder.root / "work" / f"step-{self.steps:04d}")
        except ScoringCrash as exc:
            text = (f"== submission {shown}: training/evaluation crashed: {exc}\nThe iteration is not spent. "
                    f"Log: {exc.log.relative_to(self.recorder.root)} in the run directory. ==")
            return text, 0.0, {"status": "crashed", "file": shown, "error": str(exc)}
        previous_best = self.state.best_score
        self.state, reward = self.state.scored(result.average)
        manifest = self.recorder.iteration(self.steps, admitted, result, self.state, reward, shown).to_dict()
        self.history.append(manifest)
        text = feedback_scored(manifest, admitted, result, self.base, previous_best, self.config.iteration_budget)
        return text, reward, manifest

    def _resume(self, root: Path) -> tuple[dict, dict]:
        point = Recorder.resume_point(root)
        self.recorder = Recorder(RunDirectory(root))
        self.seed_value, self.steps = point.config.seed, point.steps
        self._clock = time.monotonic() - point.elapsed_s
        self.base = base = self.scorer.base(self.seed_value)
        self.state = EpisodeState.replay(base.average, self.config.reward_mode, [m["average"] for m in point.manifests])
        self.history = list(point.manifests)
        self._start_workspace()
        output = (f"Session resumed from {root.name} at step {self.steps}: {self.state.iteration} of "
                  f"{self.config.iteration_budget} submissions scored, best average {self.state.best_score:.2f}. "
                  "The workspace files are as you left them; the shell is new (exported variables are gone).")
        self.recorder.step({"step": self.steps, "kind": "resume", "output": output, "episode": self.config.to_dict(),
                            "elapsed_s": round(self.elapsed_s, 3)})
        last = point.manifests[-1]["scores"] if point.manifests else base.scores
        return self._observe(output, 0), self._info(last_scores=last)
