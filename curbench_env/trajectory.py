"""The run directory of an episode: config, steps.jsonl, iterations/NN/, git history of the workspace.

Layout::

    RUN_DIR/
      config.json          env id, task, episode config, seed, agent
      steps.jsonl          one line per step, flushed and fsync'ed as it happens
      workspace/           the agent's workspace (what /workspace shows)
      workspace.git/       git history of the workspace: one commit per scored iteration
      iterations/NN/       manifest.json, selection.txt, policy/, audit.json, train.log, eval.log, scores.json
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from curbench_env.errors import CurbenchError

#: Workspace files copied into an iteration's policy snapshot (the agent's scripts and notes).
POLICY_SUFFIXES = (".py", ".sh", ".md", ".txt", ".json", ".yaml", ".yml", ".toml", ".cfg", ".ipynb")
POLICY_MAX_BYTES = 256_000
#: Per iteration, at most this many files and bytes are snapshotted and committed.
SNAPSHOT_MAX_FILES = 2_000
SNAPSHOT_MAX_BYTES = 8_000_000


def _is_binary(path: Path) -> bool:
    with open(path, "rb") as fh:
        return b"\0" in fh.read(8192)


class RunDirectory:
    """Reads and writes one episode's run directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.workspace = self.root / "workspace"
        self.git_dir = self.root / "workspace.git"
        self.steps_path = self.root / "steps.jsonl"
        self._steps_fh: Any = None
        self._lock_fh: Any = None

    @classmethod
    def existing(cls, root: Path) -> RunDirectory:
        """An existing run directory, or a clear error when ``root`` is not one."""
        if not (Path(root) / "config.json").exists():
            raise CurbenchError(f"{root} is not a curbench run directory (no config.json)")
        return cls(root)

    # -- creation -----------------------------------------------------------------------
    def create(self, config: dict[str, Any]) -> None:
        """Create the directory and write config.json (refuses to overwrite a run)."""
        if self.steps_path.exists():
            raise FileExistsError(f"{self.root} already holds a run; use `curbench resume {self.root}`")
        self.root.mkdir(parents=True, exist_ok=True)
        self.acquire()
        self.workspace.mkdir(exist_ok=True)
        (self.root / "iterations").mkdir(exist_ok=True)
        self.write_json("config.json", config)
        self._git("init", "-q")
        self._git("config", "user.name", "curbench")
        self._git("config", "user.email", "curbench@localhost")

    def write_json(self, rel: str, data: Any) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")

    @property
    def config(self) -> dict[str, Any]:
        return json.loads((self.root / "config.json").read_text())

    # -- steps --------------------------------------------------------------------------
    def append_step(self, record: dict[str, Any]) -> None:
        """Append one step and make it durable: a kill -9 right after leaves it readable."""
        if self._steps_fh is None:
            self._steps_fh = open(self.steps_path, "a", encoding="utf-8")
        self._steps_fh.write(json.dumps(record, default=str) + "\n")
        self._steps_fh.flush()
        os.fsync(self._steps_fh.fileno())

    def steps(self) -> list[dict[str, Any]]:
        """All recorded steps. A line that is not a JSON object (a torn write, garbage) is skipped
        with a warning naming its line number."""
        if not self.steps_path.exists():
            return []
        out, bad = [], []
        for n, line in enumerate(self.steps_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if isinstance(record, dict):
                out.append(record)
            elif line.strip():
                bad.append(n)
        if bad:
            warnings.warn(f"{self.steps_path}: skipped {len(bad)} unreadable line(s): "
                          f"{', '.join(map(str, bad[:10]))}", RuntimeWarning, stacklevel=2)
        return out

    def repair_tail(self) -> str | None:
        """Cut a torn last line (a crash mid-write) so the next step starts on a line of its own;
        returns what was done, or None when the journal was whole."""
        if not self.steps_path.exists():
            return None
        with open(self.steps_path, "rb+") as fh:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return None
            keep = data.rfind(b"\n") + 1
            fh.truncate(keep)
        return f"steps.jsonl ended in a torn line ({len(data) - keep} bytes after the last complete record); cut it"

    # -- ownership ----------------------------------------------------------------------
    def acquire(self) -> None:
        """Own the run directory: a second harness on the same run gets a clear error, not a mixed journal.

        The lock is an ``flock`` on ``.lock``; the kernel releases it when this process exits, even by kill -9.
        """
        if self._lock_fh is not None:
            return
        fh = open(self.root / ".lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise CurbenchError(f"{self.root} is in use by another harness (pid {holder}); "
                                "wait for it to end or stop it before resuming") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def close(self) -> None:
        """Close the journal and give up ownership."""
        if self._steps_fh is not None:
            self._steps_fh.close()
            self._steps_fh = None
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    # -- iterations ---------------------------------------------------------------------
    def iteration_dir(self, index: int) -> Path:
        path = self.root / "iterations" / f"{index:02d}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def policy_files(self, suffixes: tuple[str, ...] | None = POLICY_SUFFIXES) -> tuple[list[Path], dict[str, int]]:
        """Workspace files to keep with an iteration: small text files outside dot folders (with one
        of ``suffixes``; None: any), at most :data:`SNAPSHOT_MAX_FILES` of them and
        :data:`SNAPSHOT_MAX_BYTES` in all. Also returns what was left out, by reason."""
        kept: list[Path] = []
        skipped = {"large": 0, "binary": 0, "other_type": 0, "over_budget": 0}
        total = 0
        for src in sorted(self.workspace.rglob("*")):
            rel = src.relative_to(self.workspace)
            if any(part.startswith(".") for part in rel.parts) or src.is_symlink() or not src.is_file():
                continue
            size = src.stat().st_size
            reason = ("other_type" if suffixes is not None and src.suffix not in suffixes else "large" if size > POLICY_MAX_BYTES
                      else "over_budget" if len(kept) >= SNAPSHOT_MAX_FILES or total + size > SNAPSHOT_MAX_BYTES
                      else "binary" if _is_binary(src) else None)
            if reason:
                skipped[reason] += 1
                continue
            kept.append(rel)
            total += size
        return kept, {k: v for k, v in skipped.items() if v}

    def snapshot_policy(self, index: int, files: list[Path]) -> list[str]:
        """Copy ``files`` (from :meth:`policy_files`) into iterations/NN/policy/."""
        dest = self.iteration_dir(index) / "policy"
        for rel in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.workspace / rel, target, follow_symlinks=False)
        return [str(rel) for rel in files]

    def commit(self, message: str) -> str | None:
        """Commit the workspace's small text files (bounded as :meth:`policy_files`) to workspace.git."""
        names = [str(p) for p in self.policy_files(suffixes=None)[0]]
        for start in range(0, len(names), 500):
            self._git("add", "-f", "--", *names[start:start + 500])
        ok = self._git("commit", "-q", "--allow-empty", "-m", message)
        if not ok:
            return None
        out = subprocess.run(self._git_argv("rev-parse", "HEAD"), capture_output=True, text=True)
        return out.stdout.strip() or None

    def iterations(self) -> list[dict[str, Any]]:
        """Manifests of every iteration (scored or refused), in order."""
        out = []
        for d in sorted((self.root / "iterations").glob("[0-9]*")):
            m = d / "manifest.json"
            if m.exists():
                out.append(json.loads(m.read_text()))
        return out

    # -- git ----------------------------------------------------------------------------
    def _git_argv(self, *args: str) -> list[str]:
        return ["git", "-c", "safe.directory=*", f"--git-dir={self.git_dir}", f"--work-tree={self.workspace}", *args]

    def _git(self, *args: str) -> bool:
        if shutil.which("git") is None:
            return False
        proc = subprocess.run(self._git_argv(*args), capture_output=True, text=True,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        return proc.returncode == 0


def default_run_dir(env_id: str, seed: int | None, root: Path | None = None) -> Path:
    """A new, empty ``runs/<env>-<UTC time>-s<seed>[-N]`` under ``root`` ($CURBENCH_RUNS or ./runs)."""
    root = Path(root or os.environ.get("CURBENCH_RUNS", "runs"))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = root / f"{env_id}-{stamp}-s{seed if seed is not None else 'x'}"
    root.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:  # claimed with mkdir, so concurrent episodes started in the same second get their own
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = Path(f"{base}-{n}")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of an append-only side file (``[]`` when absent), skipping a torn line that a
    killed writer left."""
    if not Path(path).exists():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
