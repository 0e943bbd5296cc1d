"""OpenEnv: the episode served with ``openenv-core`` so any OpenEnv trainer or agent can use it.

Server (`curbench serve --openenv`, or :func:`create_openenv_app`): one FastAPI app; each WebSocket
session (``/ws``) is one episode with its own sandbox and run directory, up to ``max_sessions`` at
once (``SUPPORTS_CONCURRENT_SESSIONS``), and idle sessions are reaped after ``session_timeout_s``.
Sessions step in their own threads, so one session's slow submission does not stall the others;
submissions queue for the machine's scoring slots (:mod:`curbench_env.scorer`).

Client (:class:`CurationEnvClient`): the typed OpenEnv client, with a message timeout that outlives
the slowest submission (OpenEnv's default, 60 s, is shorter than one training run)::

    with CurationEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
        result = env.reset(seed=0)
        result = env.step(CurationAction(command="head -3 $POOL/pool.jsonl"))
        result = env.step(CurationAction(command="submit picks.jsonl --note 'top loss'"))
        print(result.reward, result.observation.iteration)

An action is one shell command, exactly a ``step`` of ``CurationEnv`` (``submit PATH`` runs in the
sandbox; ``done`` ends the episode); the observation carries the output, the exit code, the budget
and the scores, and ``info`` (the env's ``info``, with the submission record).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from openenv.core.env_server import Action, ConcurrencyConfig, Environment, Observation, State, create_app
from pydantic import Field

from curbench_env.observation import ACTION_MAX_CHARS
from curbench_env.session import EpisodeSession

#: OpenEnv's client gives up on an answer after 60 s by default; a submission trains for longer.
MESSAGE_TIMEOUT_S = 3600.0


class CurationAction(Action):
    """One shell command in the episode's workspace (``submit PATH [--note TEXT]``, ``done``)."""

    command: str = Field(..., max_length=ACTION_MAX_CHARS, description="A shell command, run in the workspace.")


class CurationObservation(Observation):
    """What the agent sees after a reset or a command."""

    output: str = Field(default="", description="The command's output and any submission feedback.")
    exit_code: int = Field(default=0, description="The command's exit code.")
    iteration: int = Field(default=0, description="Iterations (scored submissions) used.")
    budget_left: int = Field(default=0, description="Iterations left.")
    best_score: float = Field(default=0.0, description="Best benchmark average so far (the base model's at first).")
    last_score: float = Field(default=0.0, description="The last scored submission's average.")
    info: dict[str, Any] = Field(default_factory=dict, description="The env's info, with the submission record.")


class CurationState(State):
    """The episode's state (read by ``state()``; no step is recorded)."""

    env_id: str = ""
    run_dir: str | None = None
    iteration: int = 0
    budget_left: int = 0
    base_score: float = 0.0
    best_score: float = 0.0
    ended: bool = False


class CurationOpenEnv(Environment[CurationAction, CurationObservation, CurationState]):
    """A curation episode as an OpenEnv ``Environment`` (one instance per session)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_id: str = "Curation-MiniVQA-v0", *, task_args: dict[str, Any] | None = None,
                 scaffolds: list[str] | tuple[str, ...] = (), iteration_budget: int | None = None,
                 backend: str = "auto", run_root: str | None = None) -> None:
        super().__init__()
        self.env_id, self.task_args, self.scaffolds = env_id, dict(task_args or {}), list(scaffolds)
        self.iteration_budget, self.backend, self.run_root = iteration_budget, backend, run_root
        self._session: EpisodeSession | None = None
        self._episode_id: str | None = None

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> CurationObservation:
        """A fresh episode (the session's previous one is closed); its brief is the observation."""
        from curbench_env.runner import make_env

        self.close()
        extra = {"run_root": self.run_root} if self.run_root else {}
        env = make_env(self.env_id, task_args=self.task_args, scaffolds=self.scaffolds, backend=self.backend,
                       iteration_budget=self.iteration_budget, **extra)
        self._session = EpisodeSession(env, seed=0 if seed is None else int(seed), agent="openenv")
        self._episode_id = episode_id
        brief = self._session.start()
        return self._observation(brief, 0, 0.0)

    def step(self, action: CurationAction, timeout_s: float | None = None, **kwargs: Any) -> CurationObservation:
        """Run the command; a scored submission's reward is the env's (by its ``reward_mode``).

        ``timeout_s`` is not used: the sandbox's own command limit applies, and a submission runs to
        its end (the run directory must record it)."""
        if self._session is None:
            raise RuntimeError("no episode: reset first")
        obs, _ = self._session.step(action.command)  # ToolRefused once the episode has ended
        return self._observation(obs["output"], int(obs["exit_code"]), self._session.rewards[-1])

    @property
    def state(self) -> CurationState:
        session = self._session
        info = session.info if session else {}
        root = session.env.unwrapped.run_dir if session else None
        return CurationState(episode_id=self._episode_id, step_count=len(session.rewards) if session else 0,
                             env_id=self.env_id, run_dir=str(root) if root else None,
                             iteration=int(info.get("iteration", 0)), budget_left=int(info.get("budget_left", 0)),
                             base_score=float(info.get("base_score", 0.0)),
                             best_score=float(info.get("best_score", 0.0)), ended=bool(session and session.ended))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _observation(self, output: str, exit_code: int, reward: float) -> CurationObservation:
        assert self._session is not None
        info = self._session.info
        return CurationObservation(
            output=output, exit_code=exit_code, iteration=int(info["iteration"]),
            budget_left=int(info["budget_left"]), best_score=float(info["best_score"]),
            last_score=float(info["last_score"]), info=_jsonable(info), reward=reward, done=self._session.ended)


def _jsonable(value: Any) -> Any:
    """numpy scalars and tuples in ``info`` as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def create_openenv_app(env_id: str = "Curation-MiniVQA-v0", *, task_args: dict[str, Any] | None = None,
                       scaffolds: list[str] | tuple[str, ...] = (), iteration_budget: int | None = None,
                       backend: str = "auto", run_root: str | None = None, max_sessions: int = 8,
                       session_timeout_s: float = 3600.0) -> Any:
    """The FastAPI app serving ``env_id`` over OpenEnv (HTTP ``/reset``/``/step`` for one-shot calls,
    ``/ws`` for sessions). The world is prepared here, once, before the first session."""
    from curbench_env.registry import env_entry, load_task, task_kwargs_for

    load_task(env_entry(env_id).task, **task_kwargs_for(env_id, task_args)).prepare()

    def factory() -> CurationOpenEnv:
        return CurationOpenEnv(env_id, task_args=task_args, scaffolds=scaffolds, iteration_budget=iteration_budget,
                               backend=backend, run_root=run_root)

    config = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=session_timeout_s)
    return create_app(factory, CurationAction, CurationObservation, env_name="curbench", concurrency_config=config)


class CurationEnvClient(EnvClient[CurationAction, CurationObservation, CurationState]):
    """The typed OpenEnv client for a `curbench serve --openenv` server (async; ``.sync()`` for a
    blocking one). Waits up to ``message_timeout_s`` (an hour) for a submission's answer."""

    def __init__(self, base_url: str, *, message_timeout_s: float = MESSAGE_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(base_url, message_timeout_s=message_timeout_s, **kwargs)

    def _step_payload(self, action: CurationAction) -> dict[str, Any]:
        return {"command": action.command}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[CurationObservation]:
        obs = CurationObservation(**payload.get("observation", {}), reward=payload.get("reward"),
                                  done=bool(payload.get("done", False)))
        return StepResult(observation=obs, reward=payload.get("reward"), done=bool(payload.get("done", False)))

    def _parse_state(self, payload: dict[str, Any]) -> CurationState:
        return CurationState(**payload)


def serve(app_factory: Callable[[], Any], host: str, port: int) -> None:
    """Run the app with uvicorn (long WebSocket pings tolerated: a step may train for minutes, but the
    server's event loop stays free, so pings are answered)."""
    import uvicorn

    uvicorn.run(app_factory(), host=host, port=port, log_level="warning", ws_ping_interval=20, ws_ping_timeout=60)
