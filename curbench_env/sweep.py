"""Sweeps: many curation sessions (env × agent × scaffold × seed × iteration budget × task args) run as
Ray tasks, each an ordinary run directory under one sweep directory.

Layout::

    SWEEP_DIR/
      sweep.json            the spec and its sessions (what `curbench report SWEEP_DIR` aggregates)
      sessions/<name>/      one run directory per session (a `curbench run` / `curbench resume` target)
      logs/<name>.log       the session's console output, every attempt appended
      attempts.jsonl        one line per attempt: action (run/resume), exit code, wall time, LLM usage
      restarted/<name>-N/   an interrupted CLI-agent session set aside before it was started again

A session runs in a subprocess (``curbench run ... --run-dir`` or ``curbench resume``) inside its Ray
task, so a killed session is an exit code the task turns into a retry, and CLI agents run unchanged.
A session is *finished* when its run directory holds summary.json (the episode ended); one with a
journal but no summary is *interrupted* and resumed; re-running a sweep skips finished sessions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curbench_env.errors import CurbenchError

#: Keys a spec file may hold (anything else is a typo and an error).
SPEC_KEYS = {"name", "envs", "env", "agents", "agent", "scaffolds", "scaffold", "seeds", "seed", "iterations",
             "task_args", "backend", "sessions", "resources", "max_retries", "api_concurrency"}
SESSION_KEYS = {"env", "agent", "scaffold", "scaffolds", "seed", "iterations", "task_args", "backend"}
#: Environment variables a session's subprocess takes from the driver (on a cluster too).
PASSED_ENV = re.compile(r"^(CURBENCH_|HF_|TRANSFORMERS_|TOKENIZERS_|LITELLM_|OMP_|MKL_|TMPDIR$|WANDB_|"
                        r".*_API_KEY$|.*_API_BASE$|.*_BASE_URL$)")


class SessionFailed(RuntimeError):
    """A session's process ended without finishing the episode (Ray retries the task)."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", text).strip("_") or "x"


def is_api_agent(agent: str) -> bool:
    """Whether ``agent`` calls a model provider (its sessions share the spec's ``api_concurrency``)."""
    from curbench_env.agents.cli_agents import is_cli_agent

    return agent.startswith("litellm:") or (is_cli_agent(agent) and not agent.startswith("mcp-cmd"))


@dataclass(frozen=True)
class Session:
    """One curation session of a sweep; its name is stable, so re-running the sweep finds it again."""

    env: str
    agent: str
    scaffolds: tuple[str, ...]
    seed: int
    iterations: int
    task_args: dict[str, Any] = field(default_factory=dict)
    backend: str = "auto"

    @property
    def scaffold_label(self) -> str:
        return "+".join(self.scaffolds) or "none"

    @property
    def task_label(self) -> str:
        return ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                        for k, v in sorted(self.task_args.items()))

    @property
    def name(self) -> str:
        env = self.env.removeprefix("Curation-")
        task = _slug(self.task_label)
        if len(task) > 40:
            task = hashlib.sha1(self.task_label.encode()).hexdigest()[:10]
        parts = [env, _slug(self.agent), _slug(self.scaffold_label), f"it{self.iterations}", f"s{self.seed}"]
        return "__".join([*parts, *([task] if task != "x" else [])])

    @property
    def cell(self) -> tuple[str, str, str, int, str]:
        """What sessions that differ only by seed share: (env, agent, scaffold, budget, task args)."""
        return self.env, self.agent, self.scaffold_label, self.iterations, self.task_label

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "scaffolds": list(self.scaffolds), "name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(env=data["env"], agent=data["agent"], scaffolds=tuple(data.get("scaffolds") or ()),
                   seed=int(data["seed"]), iterations=int(data["iterations"]),
                   task_args=dict(data.get("task_args") or {}), backend=data.get("backend", "auto"))

    def run_argv(self, run_dir: Path) -> list[str]:
        """The `curbench run` command line that starts this session in ``run_dir`` (an agent written
        ``claude-code --native`` or ``codex:MODEL --native`` runs in native mode)."""
        from curbench_env.agents.cli_agents import split_native

        agent, native = split_native(self.agent)
        argv = [sys.executable, "-m", "curbench_env.cli", "run", "--env", self.env, "--agent", agent,
                "--seed", str(self.seed), "--iterations", str(self.iterations), "--backend", self.backend,
                "--run-dir", str(run_dir), *(["--native"] if native else [])]
        for name in self.scaffolds:
            argv += ["--scaffold", name]
        for key, value in sorted(self.task_args.items()):
            argv += ["--task-arg", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
        return argv


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: its sessions and how they run (resources per session, retries, API concurrency)."""

    name: str
    sessions: tuple[Session, ...]
    cpus: float = 1.0
    gpus: float = 0.0
    max_retries: int = 2
    api_concurrency: int = 4

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "resources": {"cpus": self.cpus, "gpus": self.gpus},
                "max_retries": self.max_retries, "api_concurrency": self.api_concurrency,
                "sessions": [s.to_dict() for s in self.sessions]}


def _axis(data: dict[str, Any], plural: str, singular: str, default: Any) -> list[Any]:
    value = data.get(plural, data.get(singular, default))
    return list(value) if isinstance(value, list | tuple) else [value]


def _scaffolds(value: Any) -> tuple[str, ...]:
    if value in (None, "", "none"):
        return ()
    names = value if isinstance(value, list | tuple) else str(value).split("+")
    return tuple(n.strip() for n in names if n.strip() and n.strip() != "none")


def _check_session(s: Session) -> None:
    from curbench_env.agents.cli_agents import is_cli_agent
    from curbench_env.registry import env_entry
    from curbench_env.wrappers import SCAFFOLDS

    env_entry(s.env)
    for name in s.scaffolds:
        if name not in SCAFFOLDS:
            raise CurbenchError(f"unknown scaffold {name!r} in the sweep spec; choose {', '.join(SCAFFOLDS)} or none")
    if s.iterations < 1:
        raise CurbenchError(f"iteration budgets must be at least 1, not {s.iterations}")
    if not is_cli_agent(s.agent) and not s.agent.startswith("litellm:"):
        from curbench_env.agents import load_policy

        load_policy(s.agent, seed=s.seed)  # an unknown agent is one clear error before anything starts


def parse_spec(data: dict[str, Any], default_name: str = "sweep") -> SweepSpec:
    """A sweep from plain data (a parsed YAML/TOML file): the cross product of its axes, or its
    explicit ``sessions`` list (whose entries default to the first value of each axis)."""
    if not isinstance(data, dict):
        raise CurbenchError("a sweep spec is a mapping (keys: envs, agents, scaffolds, seeds, iterations, ...)")
    unknown = set(data) - SPEC_KEYS
    if unknown:
        raise CurbenchError(f"unknown sweep spec key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SPEC_KEYS))}")
    envs = _axis(data, "envs", "env", "Curation-MiniVQA-v0")
    agents = _axis(data, "agents", "agent", "curator")
    scaffolds = [_scaffolds(v) for v in _axis(data, "scaffolds", "scaffold", "none")]
    seeds = [int(v) for v in _axis(data, "seeds", "seed", 0)]
    budgets = [int(v) for v in _axis(data, "iterations", "iterations", 10)]
    task_args = _axis(data, "task_args", "task_args", {})
    if not all(isinstance(t, dict) for t in task_args):
        raise CurbenchError("task_args is a mapping (KEY: VALUE) or a list of them (one per sweep axis value)")
    backend = str(data.get("backend", "auto"))
    if data.get("sessions"):
        sessions = []
        for k, entry in enumerate(data["sessions"], 1):
            if not isinstance(entry, dict) or set(entry) - SESSION_KEYS:
                raise CurbenchError(f"sessions[{k}]: a mapping with keys among {', '.join(sorted(SESSION_KEYS))}")
            sessions.append(Session(
                env=entry.get("env", envs[0]), agent=entry.get("agent", agents[0]),
                scaffolds=_scaffolds(entry.get("scaffolds", entry.get("scaffold", "+".join(scaffolds[0]) or "none"))),
                seed=int(entry.get("seed", seeds[0])), iterations=int(entry.get("iterations", budgets[0])),
                task_args=dict(entry.get("task_args", task_args[0])), backend=str(entry.get("backend", backend))))
    else:
        sessions = [Session(env=e, agent=a, scaffolds=sc, seed=sd, iterations=it, task_args=dict(ta), backend=backend)
                    for e in envs for ta in task_args for a in agents for sc in scaffolds for it in budgets
                    for sd in seeds]
    seen: set[str] = set()
    for s in sessions:
        if s.name in seen:
            raise CurbenchError(f"the sweep lists session {s.name} twice")
        seen.add(s.name)
    for s in {(s.env, s.agent, s.scaffolds, s.iterations): s for s in sessions}.values():
        _check_session(s)
    res = data.get("resources") or {}
    if set(res) - {"cpus", "gpus"}:
        raise CurbenchError("resources: takes cpus and gpus (per session)")
    spec = SweepSpec(name=str(data.get("name", default_name)), sessions=tuple(sessions),
                     cpus=float(res.get("cpus", 1)), gpus=float(res.get("gpus", 0)),
                     max_retries=int(data.get("max_retries", 2)), api_concurrency=int(data.get("api_concurrency", 4)))
    if spec.cpus <= 0 or spec.gpus < 0 or spec.max_retries < 0 or spec.api_concurrency < 1:
        raise CurbenchError("resources.cpus must be > 0, gpus >= 0, max_retries >= 0 and api_concurrency >= 1")
    return spec


def load_spec(path: Path) -> SweepSpec:
    """Read a sweep spec from a YAML (.yaml/.yml) or TOML (.toml) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no sweep spec at {path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise CurbenchError(f"{path}: a sweep spec is a .yaml, .yml or .toml file")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise CurbenchError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        if type(exc).__module__.startswith("yaml"):
            raise CurbenchError(f"{path} is not valid YAML: {exc}") from None
        raise
    return parse_spec(data or {}, default_name=path.stem)


# -- session state ---------------------------------------------------------------------------

def run_dir_of(sweep_dir: Path, session: Session | str) -> Path:
    return Path(sweep_dir) / "sessions" / (session if isinstance(session, str) else session.name)


def read_attempts(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every recorded attempt of the sweep's sessions (attempts.jsonl), in order."""
    from curbench_env.trajectory import read_records

    return read_records(Path(sweep_dir) / "attempts.jsonl")


def session_state(sweep_dir: Path, session: Session) -> str:
    """``finished`` (summary.json: the episode ended; for a CLI agent also: its last attempt exited 0),
    ``interrupted`` (a journal with a reset record, no summary), ``new`` (nothing usable yet)."""
    root = run_dir_of(sweep_dir, session)
    if (root / "summary.json").exists():
        return "finished"
    from curbench_env.agents.cli_agents import is_cli_agent

    if is_cli_agent(session.agent):
        mine = [a for a in read_attempts(sweep_dir) if a.get("name") == session.name]
        if mine and mine[-1].get("returncode") == 0 and (root / "config.json").exists():
            return "finished"
    steps = root / "steps.jsonl"
    if (root / "config.json").exists() and steps.exists() and '"kind": "reset"' in steps.read_text(errors="replace"):
        return "interrupted"
    return "new"


def in_use(run_dir: Path) -> bool:
    """Whether a harness holds the run directory now (its ``.lock``; see RunDirectory.acquire)."""
    import fcntl

    lock = Path(run_dir) / ".lock"
    if not lock.exists():
        return False
    with open(lock) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """The session's process ends when its Ray worker does (a cancelled sweep leaves no orphan)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:  # one short O_APPEND write per line
        fh.write(json.dumps(record) + "\n")


def execute_session(session_data: dict[str, Any], sweep_dir: str, env_vars: dict[str, str]) -> dict[str, Any]:
    """Run (or resume) one session to its end in a subprocess; the body of the sweep's Ray task.

    Raises :class:`SessionFailed` when the process ends without finishing the episode (a crash or a
    kill), so Ray retries the task, and the retry resumes the run directory.
    """
    from curbench_env.agents.cli_agents import is_cli_agent

    session = Session.from_dict(session_data)
    sweep = Path(sweep_dir)
    root = run_dir_of(sweep, session)
    state = session_state(sweep, session)
    if state == "finished":
        return {"name": session.name, "status": "finished", "action": "skip"}
    attempt = 1 + sum(a.get("name") == session.name for a in read_attempts(sweep))
    if state == "interrupted" and is_cli_agent(session.agent):
        # A coding agent's conversation cannot be resumed: set the partial run aside, start again.
        aside = sweep / "restarted" / f"{session.name}-{attempt}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(root), aside)
        state = "new"
    if state == "new" and root.exists():
        shutil.rmtree(root)  # killed before its first step: nothing to keep
    root.parent.mkdir(parents=True, exist_ok=True)
    action = "resume" if state == "interrupted" else "run"
    argv = ([sys.executable, "-m", "curbench_env.cli", "resume", str(root)] if action == "resume"
            else session.run_argv(root))
    log = sweep / "logs" / f"{session.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n=== attempt {attempt} ({action}) on {socket.gethostname()} at "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(argv[1:])}\n")
        fh.flush()
        env = {**os.environ, **env_vars, "COLUMNS": "160"}
        proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                              preexec_fn=_die_with_parent)
    wall = time.time() - started
    usage_path = root / "usage.json"
    usage = None
    if usage_path.exists() and usage_path.stat().st_mtime >= started:  # this attempt's own counts
        try:
            usage = json.loads(usage_path.read_text())
        except ValueError:
            usage = None
    finished = (root / "summary.json").exists() or (is_cli_agent(session.agent) and proc.returncode == 0)
    _append_jsonl(sweep / "attempts.jsonl", {
        "name": session.name, "attempt": attempt, "action": action, "returncode": proc.returncode,
        "finished": finished, "started": started, "wall_s": round(wall, 2), "host": socket.gethostname(),
        "usage": usage})
    if not finished:
        how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited {proc.returncode}"
        raise SessionFailed(f"{session.name}: `curbench {action}` {how} before the episode ended (log: {log})")
    return {"name": session.name, "status": "finished", "action": action, "wall_s": round(wall, 2)}


def passed_env() -> dict[str, str]:
    """The driver's variables a session needs wherever it runs (caches, offline flags, API keys)."""
    return {k: v for k, v in os.environ.items() if PASSED_ENV.match(k)}


def write_manifest(spec: SweepSpec, sweep_dir: Path) -> None:
    """sweep.json: the spec's sessions, merged with those of earlier runs of the sweep (none is forgotten)."""
    path = Path(sweep_dir) / "sweep.json"
    earlier = json.loads(path.read_text()).get("sessions", []) if path.exists() else []
    names = {s.name for s in spec.sessions}
    data = spec.to_dict()
    data["sessions"] = [s for s in earlier if s.get("name") not in names] + data["sessions"]
    data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
