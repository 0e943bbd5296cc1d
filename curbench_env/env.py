"""``CurationEnv``: one episode is one data-curation session in a sandboxed terminal.

The wiring, top-down: a command runs in the workspace; a `submit` request it leaves passes the
SubmissionGate; the Scorer trains and evaluates it; the EpisodeState gives the reward; the Recorder
writes it all to the run directory."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from curbench_env import observation as view
from curbench_env.config import EpisodeConfig, RunConfig, SandboxLimits
from curbench_env.episode import EpisodeState, episode_end
from curbench_env.errors import LeakageError, SubmissionError
from curbench_env.gate import SubmissionCheck, SubmissionGate, take_submission
from curbench_env.pipeline import EvalResult
from curbench_env.recorder import Recorder
from curbench_env.registry import load_task
from curbench_env.rewrite import RewriteDesk
from curbench_env.scorer import Scorer, ScoringCrash
from curbench_env.task import CurationTask
from curbench_env.trajectory import RunDirectory, default_run_dir
from curbench_env.workspace import Workspace, resolve_backend
from curbench_env.workspace.tools import open_workspace

SUBMIT_USAGE = "submit PATH [--note TEXT]"
_PREPARE_LOCK = threading.Lock()


class CurationEnv(gym.Env):
    """A data-curation session as a Gymnasium environment.

    ## Description
    The agent works in a sandboxed terminal holding a candidate pool (read-only at ``$POOL``) and a
    task README, writes selection policies and submits subsets with ``submit PATH``. A fixed pipeline
    trains the fixed model on each valid submission and reports per-benchmark scores. Evaluation
    data never enters the workspace; every submission is audited against it.

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
    0 for plain commands and refused or contaminated submissions. For a scored submission, by ``reward_mode``:
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
    ``limits`` (:class:`SandboxLimits`), ``observation_chars`` (16000), ``docker_image``,
    ``contamination_spends_iteration`` (True: a submission the leakage audit refuses costs its iteration);
    ``run_dir`` (the first episode's run directory), ``run_root`` ($CURBENCH_RUNS or ./runs);
    ``resume_from``: continue a recorded episode with every setting it was recorded with (the
    episode arguments here are ignored, except an explicit ``backend``); ``render_mode`` ("ansi").

    ## Info
    Iteration, budget, scores, rules, submit usage, the ``submission`` record. Scaffold rules: :meth:`add_submission_check`.
    Where the task has a rewriting tool (``Curation-*-Rewrite-v0``): ``rewrite_budget``, ``rewrite_budget_left``,
    ``rewrite_spent``, ``rewrite_calls``, ``rewrite_cost_usd``, ``rewrite_usage`` (contract: :mod:`curbench_env.rewrite`).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, task: str | CurationTask = "minivqa", task_kwargs: dict[str, Any] | None = None, *,
                 iteration_budget: int = EpisodeConfig.iteration_budget, max_steps: int = EpisodeConfig.max_steps,
                 max_wall_clock_s: float | None = EpisodeConfig.max_wall_clock_s, reward_mode: str = "best",
                 backend: str = EpisodeConfig.backend, limits: SandboxLimits | dict[str, Any] | None = None,
                 observation_chars: int = EpisodeConfig.observation_chars, docker_image: str = EpisodeConfig.docker_image,
                 run_dir: str | Path | None = None, run_root: str | Path | None = None,
                 resume_from: str | Path | None = None, render_mode: str | None = None, env_id: str | None = None,
                 workspace_kwargs: dict[str, Any] | None = None, contamination_spends_iteration: bool = True) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be 'ansi' or None, not {render_mode!r}")
        self._resume_from = Path(resume_from) if resume_from else None
        if self._resume_from is not None:  # every setting as recorded; only the backend may change
            recorded = Recorder.recorded_config(self._resume_from)
            self.config = recorded.episode if backend == EpisodeConfig.backend else dataclasses.replace(
                recorded.episode, backend=resolve_backend(backend))
            task = task if isinstance(task, CurationTask) else recorded.task
            task_kwargs, env_id = recorded.task_kwargs, recorded.env_id
        else:
            self.config = EpisodeConfig(
                iteration_budget=iteration_budget, max_steps=max_steps, max_wall_clock_s=max_wall_clock_s,
                reward_mode=reward_mode, backend=resolve_backend(backend),  # type: ignore[arg-type]
                observation_chars=observation_chars, limits=limits or SandboxLimits(), docker_image=docker_image,
                contamination_spends_iteration=contamination_spends_iteration)
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
        self.action_space = view.action_space()
        self.observation_space = view.observation_space(self.config)
        self.workspace: Workspace | None = None
        self.recorder: Recorder | None = None
        self.rewrites: RewriteDesk | None = None  # the rewriting tool, where the task has one
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

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.close()
        with _PREPARE_LOCK:  # concurrent episodes of one process share their task: it is prepared once
            self.task.prepare()
        self.history, self._done = [], False
        resume, self._resume_from = self._resume_from, None
        if resume is not None:
            return self._resume(resume)
        self.seed_value, self.steps, self._clock = int(seed) if seed is not None else 0, 0, time.monotonic()
        self.base = base = self.scorer.base(self.seed_value)
        self.state = EpisodeState.start(base.average, self.config.reward_mode)
        config = RunConfig.new(options, env_id=self.env_id, task=self.task_ref, task_kwargs=self.task_kwargs,
                               episode=self.config, seed=self.seed_value, task_info=self.task.describe())
        self.recorder = Recorder(RunDirectory(self._first_run_dir or default_run_dir(self.env_id, seed, self._run_root)))
        self._first_run_dir = None
        self.recorder.start(config, self.task.workspace_files())
        self.rewrites = RewriteDesk.open(self.task, self.recorder.root)
        self._start_workspace()
        output = view.welcome(self.env_id, self.task, self.config, base.average, SUBMIT_USAGE)
        if self.rewrites is not None:
            output = output.replace("\nBase model", f"\n{self.rewrites.describe()}\nBase model", 1)
        self.recorder.step({"step": 0, "kind": "reset", "seed": seed, "output": output, "base_scores": base.scores,
                            "base_average": base.average, "elapsed_s": 0.0})
        return self._observe(output, 0), self._info(last_scores=base.scores, history=[])

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self.recorder is None or self.workspace is None or self._done:
            raise gym.error.ResetNeeded("the episode has ended; call reset()" if self._done else "call reset() first")
        if not isinstance(action, str):
            raise TypeError(f"an action is one shell command as a str, not {type(action).__name__}")
        self.steps += 1
        reward, terminated, submission, command, t0 = 0.0, False, None, action.strip(), time.monotonic()
        rewrite: dict[str, Any] | None = None
        if command == "done":
            output, exit_code, terminated = "Episode ended by the agent (`done`).", 0, True
        elif not command:
            output, exit_code = "(empty command)", 0
        elif len(action) > view.ACTION_MAX_CHARS:
            output, exit_code = (f"command refused: {len(action):,} characters; a command holds at most "
                                 f"{view.ACTION_MAX_CHARS:,} (write long scripts to a file, then run it)"), 2
        else:
            result = self.workspace.run(action)
            output, exit_code = result.output, result.exit_code
            rewritten, rewrite = (self.rewrites.handle(self.workspace, self.recorder.run.workspace, self.steps)
                                  if self.rewrites is not None else ("", None))
            feedback, reward, submission = self._take_submissions()
            feedback = "\n".join(t for t in (rewritten, feedback) if t)
            if feedback:
                output = (output.rstrip("\n") + "\n\n" if output.strip() else "") + feedback
        end, terminated, truncated = episode_end(self.config, self.state, self.steps, self.elapsed_s, terminated)
        self._done = terminated or truncated
        obs = self._observe(output + end, exit_code)
        self.recorder.step({
            "step": self.steps, "kind": "command", "action": action, "output": obs["output"],
            "exit_code": int(exit_code), "reward": reward, "terminated": terminated, "truncated": truncated,
            "duration_s": round(time.monotonic() - t0, 4), "iteration": self.state.iteration,
            "submission": submission, "elapsed_s": round(self.elapsed_s, 3),
            **({"rewrite": rewrite} if rewrite else {})})
        self._last_render = f"$ {action}\n{obs['output']}"
        if self._done:
            self.recorder.summary(self.env_id, self.steps, self.state, self.elapsed_s)
        return obs, float(reward), terminated, truncated, self._info(submission)

    def render(self) -> str | None:
        return self._last_render if self.render_mode == "ansi" else None

    def close(self) -> None:
        """Stop the workspace and close the run directory (``reset`` does this for the previous episode)."""
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None
        if self.recorder is not None:
            self.recorder.close()

    def _start_workspace(self) -> None:
        assert self.recorder is not None
        self.workspace = open_workspace(self.config, self.recorder.run.workspace, self.recorder.root / ".bin",
                                        self.task.pool_dir, self.task.tools_dir(), self.task.workspace_mounts(),
                                        programs=("submit", "rewrite") if self.rewrites else ("submit",),
                                        **self._workspace_kwargs)

    def _observe(self, output: str, exit_code: int) -> dict[str, Any]:
        self._last_render = output
        return view.observation(output, exit_code, self.state, self.config)

    def _info(self, submission: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        if self.rewrites is not None:
            extra = {**self.rewrites.info(), **extra}
        return view.episode_info(self.state, self.config, self.task, self.steps, SUBMIT_USAGE, submission, **extra)

    def _take_submissions(self) -> tuple[str, float, dict[str, Any] | None]:
        """Validate, audit, score and record the command's submission, if it left one."""
        assert self.recorder is not None and self.workspace is not None and self.base is not None
        request, refusals = take_submission(self.recorder.run.workspace)
        if request is None:
            return "\n".join(refusals), 0.0, None
        try:
            admitted = self.gate.admit(request, self.workspace)
            result = self.scorer.score(admitted.selection, self.seed_value,
                                       self.recorder.root / "work" / f"step-{self.steps:04d}")
        except (SubmissionError, ScoringCrash) as exc:  # nothing trained; only contamination may cost
            spent = isinstance(exc, LeakageError) and self.config.contamination_spends_iteration
            self.state = self.state.spent() if spent else self.state
            text, record = view.feedback_not_scored(request.path, exc, self.recorder.root, spent, self.state)
            return "\n".join([text, *refusals]), 0.0, record
        previous_best = self.state.best_score
        self.state, reward = self.state.scored(result.average)
        manifest = self.recorder.iteration(self.steps, admitted, result, self.state, reward, request.path).to_dict()
        self.history.append(manifest)
        text = view.feedback_scored(manifest, admitted, result, self.base, previous_best, self.config.iteration_budget)
        return "\n".join([text, *refusals]), reward, manifest

    def _resume(self, root: Path) -> tuple[dict, dict]:
        self.recorder, point = Recorder.reopen(root)
        self.seed_value, self.steps = point.config.seed, point.steps
        self._clock = time.monotonic() - point.elapsed_s
        self.base = base = self.scorer.base(self.seed_value)
        self.state = EpisodeState.replay(base.average, self.config.reward_mode, point.outcomes)
        self.history = list(point.manifests)
        self.rewrites = RewriteDesk.open(self.task, root)
        self._start_workspace()
        output = view.resumed(root.name, self.steps, self.state, self.config.iteration_budget, point.repaired,
                              self.history)
        self.recorder.step({"step": self.steps, "kind": "resume", "output": output, "episode": self.config.to_dict(),
                            "elapsed_s": round(self.elapsed_s, 3), "repaired": point.repaired})
        last = point.manifests[-1]["scores"] if point.manifests else base.scores
        return self._observe(output, 0), self._info(last_scores=last, history=view.history(self.history))
