"""DataComp small's pipeline: subset uids → resharded webdataset → open_clip training with the
fixed hyper-parameters (``configs/datacomp_small.json``) → DataComp's 38-task evaluation.

- Pool: DataComp's download directory: ``metadata/*.parquet`` (``uid``, ``text``,
  ``clip_b32_similarity_score``, ``clip_l14_similarity_score``, ...) and ``shards/*.tar``.
- Subsets: DataComp's ``.npy`` of (uint64, uint64) uid halves, sorted (what ``resharder.py`` reads).
- Resharding keeps a sample when its uid is in the subset; one process per input shard.
- Training: ``torchrun -m curbench_env.envs.datacomp.openclip_main`` (``open_clip_train.main``),
  as DataComp's ``train.py`` calls it.
- Evaluation (``evaluator``): ``clip_benchmark`` (default; ``clip_eval.py``: clip-benchmark's
  zero-shot classification and retrieval on DataComp's webdataset evaluation sets, 34 of its 38
  tasks, or a chosen subset) or ``datacomp`` (the ``evaluate.py`` of a DataComp checkout, all 38).
  Both write DataComp's ``eval_results.jsonl``; the average is the plain mean of the tasks' main
  metrics, as its ``aggregate_scores.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from curbench_env.envs.datacomp.tasklist import LIBRARY_TASKS, MAIN_TASKS, EvalTask, resolve
from curbench_env.envs.llava665k.pipeline import OFFLINE_ENV, config_path, run_logged

from curbench_env.errors import PipelineError
from curbench_env.pipeline import EvalResult
from curbench_env.submission import PoolIndex, Selection

UID_DTYPE = np.dtype("u8,u8")


def uid_pairs(uids: list[str]) -> np.ndarray:
    """32-hex uids → DataComp's sorted (uint64, uint64) array."""
    arr = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], dtype=UID_DTYPE)
    arr.sort()
    return arr


class UidIndex(PoolIndex):
    """Pool membership for millions of uids: a sorted uint64-pair array, not a set of strings."""

    def __init__(self, pairs: np.ndarray) -> None:
        self.pairs = np.sort(pairs)
        self._record = None

    def __contains__(self, item: str) -> bool:
        if not isinstance(item, str) or len(item) != 32:
            return False
        try:
            key = np.array([(int(item[:16], 16), int(item[16:], 16))], dtype=UID_DTYPE)
        except ValueError:
            return False
        k = np.searchsorted(self.pairs, key)[0]
        return bool(k < len(self.pairs) and self.pairs[k] == key[0])

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def ids(self) -> list[str]:  # type: ignore[override]
        return [f"{int(a):016x}{int(b):016x}" for a, b in self.pairs.tolist()]


def load_uids(metadata_dir: Path) -> np.ndarray:
    """Every uid of the pool's metadata parquets (only the ``uid`` column is read)."""
    import pyarrow.parquet as pq

    files = sorted(Path(metadata_dir).glob("*.parquet"))
    if not files:
        raise PipelineError(f"no metadata parquet files in {metadata_dir}")
    return np.concatenate([uid_pairs(pq.read_table(f, columns=["uid"]).column("uid").to_pylist()) for f in files])


def _uid_of(meta: bytes) -> str | None:
    try:
        return json.loads(meta).get("uid")
    except (ValueError, AttributeError):
        return None


def _filter_shard(job: tuple[str, str, bytes]) -> int:
    src, dst, subset_bytes = job
    keep = UidIndex(np.frombuffer(subset_bytes, dtype=UID_DTYPE))
    groups: dict[str, list[tuple[tarfile.TarInfo, bytes]]] = {}
    with tarfile.open(src) as tin:
        for m in tin:
            if m.isfile():
                key = m.name.split(".", 1)[0]
                groups.setdefault(key, []).append((m, tin.extractfile(m).read()))  # type: ignore[union-attr]
    kept = 0
    with tarfile.open(dst, "w") as tout:
        for members in groups.values():
            meta = next((data for m, data in members if m.name.endswith(".json")), None)
            uid = _uid_of(meta) if meta is not None else None
            if uid is None or uid not in keep:
                continue
            for m, data in members:
                tout.addfile(m, io.BytesIO(data))
            kept += 1
    return kept


def reshard(shards: list[Path], subset: np.ndarray, out: Path, workers: int = 8) -> int:
    """Copy the subset's samples out of ``shards`` into ``out/00000000.tar``...; returns the count."""
    out.mkdir(parents=True, exist_ok=True)
    subset_bytes = np.sort(subset).tobytes()
    jobs = [(str(s), str(out / f"{k:08d}.tar"), subset_bytes) for k, s in enumerate(shards)]
    if workers <= 1 or len(jobs) == 1:
        counts = [_filter_shard(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as ex:
            counts = list(ex.map(_filter_shard, jobs))
    (out / "sizes.json").write_text(json.dumps({Path(j[1]).name: c for j, c in zip(jobs, counts, strict=True)}))
    return sum(counts)


@dataclass(frozen=True)
class DataCompSettings:
    """Where the pool, the DataComp checkout and its evaluation sets are; how to launch."""

    pool_dir: Path
    datacomp_repo: Path | None = None
    evalsets: Path | None = None
    config: Path = field(default_factory=lambda: config_path("datacomp_small.json"))
    nproc_per_node: int = 1
    launcher_args: tuple[str, ...] = ()
    reshard_workers: int = 8
    train_timeout_s: float = 48 * 3600
    eval_timeout_s: float = 12 * 3600
    #: ``clip_benchmark`` (an installed library) or ``datacomp`` (``evaluate.py`` of ``datacomp_repo``).
    evaluator: str = "clip_benchmark"
    #: DataComp task keys scored and averaged; empty: every task the evaluator computes.
    tasks: tuple[str, ...] = ()

    def eval_tasks(self) -> tuple[EvalTask, ...]:
        """The tasks this pipeline scores."""
        return eval_tasks(self.evaluator, self.tasks)


def eval_tasks(evaluator: str, tasks: tuple[str, ...] | list[str] = ()) -> tuple[EvalTask, ...]:
    """The tasks scored: the chosen ``tasks``, else every task the evaluator computes."""
    if tasks:
        return resolve(list(tasks))
    return MAIN_TASKS if evaluator == "datacomp" else LIBRARY_TASKS


def training_args(cfg: dict[str, Any], data: str, logs: Path, name: str, seed: int, world: int) -> list[str]:
    """DataComp train.py's arguments for open_clip_train.main."""
    per_rank = max(1, cfg["global_batch_size"] // world)
    args = ["--save-frequency", "0", "--save-most-recent", "--dataset-type", "webdataset", "--dataset-resampled",
            "--train-data", data, "--train-num-samples", str(cfg["samples_seen"] // cfg["num_checkpoints"]),
            "--epochs", str(cfg["num_checkpoints"]), "--warmup", str(cfg["warmup"]), "--batch-size", str(per_rank),
            "--lr", str(cfg["learning_rate"]), "--model", cfg["model"], "--precision", cfg["precision"],
            "--workers", str(cfg["workers"]), "--seed", str(seed), "--logs", str(logs), "--name", name,
            "--report-to", "", "--zeroshot-frequency", "0", "--val-frequency", "0"]
    if cfg.get("device"):
        args += ["--device", cfg["device"]]
    return args + list(cfg.get("extra_args", []))


def thread_env(cfg: dict[str, Any]) -> dict[str, str]:
    """The config's ``cpu_threads`` as the subprocesses' thread caps: on a shared CPU a tiny model
    trains many times faster on one thread than on threads that spin against other work."""
    n = cfg.get("cpu_threads")
    return {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)} if n else {}


def write_info(experiment: Path, cfg: dict[str, Any], checkpoint: Path, seed: int) -> None:
    """What DataComp's train.py leaves for its evaluate.py: the scale, its config, the checkpoint."""
    import pickle

    with open(experiment / "info.pkl", "wb") as fh:
        pickle.dump({"scale": "small", "scale_config": {"model": cfg["model"], "batch_size": cfg["global_batch_size"],
                                                        "learning_rate": cfg["learning_rate"],
                                                        "train_num_samples": cfg["samples_seen"],
                                                        "warmup": cfg["warmup"]},
                     "checkpoint": str(checkpoint), "seed": seed}, fh)


def aggregate(results_jsonl: Path) -> dict[str, float]:
    """Per-task main metrics (0-100) from DataComp's ``eval_results.jsonl`` (rows of ``key``,
    ``dataset``, ``metrics`` with ``main_metric``; tasks without one, like FairFace, are skipped)."""
    scores = {}
    for line in results_jsonl.read_text().splitlines():
        row = json.loads(line)
        metric = (row.get("metrics") or {}).get("main_metric")
        if metric is not None:
            scores[row.get("key") or row["dataset"]] = round(100 * float(metric), 3)
    if not scores:
        raise PipelineError(f"{results_jsonl} holds no task results")
    return scores


class DataCompPipeline:
    """Subset → reshard → open_clip training → DataComp evaluation, as subprocesses."""

    #: One training run at a time on this machine (it takes every GPU/process the settings give it).
    scoring_slots = 1

    def __init__(self, settings: DataCompSettings) -> None:
        self.settings = settings

    def fingerprint(self) -> str:
        s = self.settings
        payload = {"pool": str(Path(s.pool_dir).resolve()), "config": Path(s.config).read_text(),
                   "repo": str(s.datacomp_repo), "evalsets": str(s.evalsets), "evaluator": s.evaluator,
                   "tasks": [t.key for t in s.eval_tasks()]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def train(self, selection: Selection, workdir: Path, seed: int) -> Path:
        """Reshard and train; returns the experiment directory (``logs/<name>``)."""
        s = self.settings
        cfg = self.config()
        workdir.mkdir(parents=True, exist_ok=True)
        subset = uid_pairs(selection.ids)
        np.save(workdir / "subset.npy", subset)
        shards = sorted((Path(s.pool_dir) / "shards").glob("*.tar"))
        if not shards:
            raise PipelineError(f"no webdataset shards in {Path(s.pool_dir) / 'shards'}")
        t0 = time.monotonic()
        kept = reshard(shards, subset, workdir / "shards", s.reshard_workers)
        if kept == 0:
            raise PipelineError("none of the subset's uids were found in the shards")
        (workdir / "reshard.json").write_text(json.dumps({"kept": kept, "requested": len(subset),
                                                          "seconds": round(time.monotonic() - t0, 1)}))
        n = len(shards)
        data = str(workdir / "shards" / (f"{{{0:08d}..{n - 1:08d}}}.tar" if n > 1 else "00000000.tar"))
        world = s.nproc_per_node * max(1, _nodes(s.launcher_args))
        args_file = workdir / "open_clip_args.json"
        args_file.write_text(json.dumps(training_args(cfg, data, workdir / "logs", "run", seed, world)))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(s.nproc_per_node),
               *s.launcher_args, str(Path(__file__).with_name("openclip_main.py")), str(args_file)]
        run_logged(cmd, workdir / "train.log", s.train_timeout_s, "open_clip training",
                   {**os.environ, **OFFLINE_ENV, **thread_env(cfg)})
        experiment = workdir / "logs" / "run"
        checkpoint = experiment / "checkpoints" / "epoch_latest.pt"
        if not checkpoint.exists():
            raise PipelineError(f"training wrote no checkpoint at {checkpoint}; log: {workdir / 'train.log'}")
        write_info(experiment, cfg, checkpoint, seed)
        return experiment

    def evaluate(self, experiment: Path, workdir: Path) -> dict[str, float]:
        """Score the experiment's checkpoint on the pipeline's tasks (main metrics, 0-100)."""
        s = self.settings
        tasks = s.eval_tasks()
        if s.evalsets is None:
            raise PipelineError("evaluation needs DataComp's evaluation sets (evalsets / CURBENCH_DATACOMP_EVALSETS)")
        results = experiment / "eval_results.jsonl"
        results.unlink(missing_ok=True)  # both evaluators append to it and skip tasks already in it
        if s.evaluator == "datacomp":
            if s.datacomp_repo is None or not (Path(s.datacomp_repo) / "evaluate.py").is_file():
                raise PipelineError("evaluator=datacomp needs a DataComp checkout (datacomp_repo / "
                                    f"CURBENCH_DATACOMP_REPO); none at {s.datacomp_repo}")
            cmd = [sys.executable, str(Path(s.datacomp_repo) / "evaluate.py"), "--train_output_dir", str(experiment),
                   "--data_dir", str(s.evalsets)]
            what = "DataComp evaluation (evaluate.py)"
        elif s.evaluator == "clip_benchmark":
            cmd = [sys.executable, "-m", "curbench_env.envs.datacomp.clip_eval", "--train_output_dir", str(experiment),
                   "--data_dir", str(s.evalsets), "--tasks", ",".join(t.key for t in tasks)]
            what = "DataComp evaluation (clip-benchmark)"
        else:
            raise PipelineError(f"unknown evaluator {s.evaluator!r}; choose clip_benchmark or datacomp")
        run_logged(cmd, workdir / "eval.log", s.eval_timeout_s, what, {**os.environ, **OFFLINE_ENV, **thread_env(self.config())})
        scored = aggregate(results)
        missing = [t.key for t in tasks if t.key not in scored]
        if missing:
            raise PipelineError(f"the evaluation wrote no score for {', '.join(missing)}; log: {workdir / 'eval.log'}")
        return {t.key: scored[t.key] for t in tasks}

    def coverage(self) -> str:
        """Which of DataComp's 38 averaged tasks the score covers, in words."""
        tasks = self.settings.eval_tasks()
        keys = {t.key for t in tasks}
        left = [t.name for t in MAIN_TASKS if t.key not in keys]
        line = f"score: mean main metric over {len(tasks)} of DataComp's {len(MAIN_TASKS)} tasks ({self.settings.evaluator})"
        return line + (f"; not evaluated: {', '.join(left)}" if left else "")

    def _result(self, scores: dict[str, float], workdir: Path, timings: dict[str, float], **extra: Any) -> EvalResult:
        tasks = self.settings.eval_tasks()
        log = (workdir / "eval.log").read_text(errors="replace")[-20_000:]
        return EvalResult(scores=scores, average=round(float(np.mean(list(scores.values()))), 4), timings=timings,
                          eval_log=self.coverage() + "\n" + log,
                          extra={"evaluator": self.settings.evaluator,
                                 "datacomp_tasks": f"{len(tasks)}/{len(MAIN_TASKS)}",
                                 "main_metrics": {t.key: t.main_metric for t in tasks}, **extra})

    def run(self, selection: Selection, workdir: Path, seed: int) -> EvalResult:
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        experiment = self.train(selection, workdir, seed)
        train_s = time.monotonic() - t0
        scores = self.evaluate(experiment, workdir)
        result = self._result(scores, workdir, {"train_s": round(train_s, 1),
                                                "eval_s": round(time.monotonic() - t0 - train_s, 1)},
                              examples=len(selection.ids))
        result.train_log = (workdir / "train.log").read_text(errors="replace")[-20_000:]
        return result

    def base_result(self, seed: int) -> EvalResult:
        """The untrained (random-init) model, scored by the same evaluation: DataComp trains from
        scratch, so this is the floor every subset starts from."""
        import torch
        from curbench_env.envs.miniclip.model import quiet_create

        from curbench_env.pipeline import curbench_home

        cfg = self.config()
        workdir = curbench_home() / "datacomp" / "base" / f"{self.fingerprint()}-s{seed}"
        experiment = workdir / "run"
        checkpoint = experiment / "checkpoints" / "epoch_latest.pt"
        if not checkpoint.exists():
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(seed)
            torch.save({"epoch": 0, "state_dict": quiet_create(cfg["model"]).state_dict()}, checkpoint)
        write_info(experiment, cfg, checkpoint, seed)
        t0 = time.monotonic()
        scores = self.evaluate(experiment, workdir)
        return self._result(scores, workdir, {"train_s": 0.0, "eval_s": round(time.monotonic() - t0, 1)})

    def config(self) -> dict[str, Any]:
        """The fixed training configuration (``configs/datacomp_small.json``)."""
        return {k: v for k, v in json.loads(Path(self.settings.config).read_text()).items() if not k.startswith("_")}


def _nodes(launcher_args: tuple[str, ...]) -> int:
    args = list(launcher_args)
    for k, a in enumerate(args):
        if a.startswith("--nnodes"):
            value = a.split("=", 1)[1] if "=" in a else (args[k + 1] if k + 1 < len(args) else "1")
            try:
                return int(str(value).split(":")[-1])
            except ValueError:
                return 1
    return 1
