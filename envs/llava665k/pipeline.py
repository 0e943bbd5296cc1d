"""The real LLaVA pipeline: a launcher-started LoRA fine-tune of a llava-hf model on the
selection, then lmms-eval on the suite. Both run as subprocesses, so a crash, an out-of-memory
kill or a hang (time limits) is a :class:`PipelineError` with the log's last lines, and the
episode goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from curbench_env.envs.llava665k.evaluate import Suite

from curbench_env.errors import PipelineError
from curbench_env.pipeline import EvalResult
from curbench_env.submission import Selection

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}


def config_path(name: str) -> Path:
    """A file shipped in ``configs/``."""
    return Path(str(resources.files("curbench_env.configs") / name))


@dataclass(frozen=True)
class LlavaSettings:
    """Where the model, recipe and suite are, and how training is launched."""

    model: str
    recipe: Path = field(default_factory=lambda: config_path("llava15_lora.json"))
    deepspeed: Path | None = field(default_factory=lambda: config_path("zero3.json"))
    suite: Path = field(default_factory=lambda: config_path("llava_eval_suite.json"))
    launcher: str = "deepspeed"  # deepspeed | accelerate | torchrun
    launcher_args: tuple[str, ...] = ()
    train_timeout_s: float = 24 * 3600
    eval_timeout_s: float = 12 * 3600


def launch_command(settings: LlavaSettings, script: Path, script_args: list[str]) -> list[str]:
    """The launcher command line: one GPU, one node or many nodes, by ``launcher_args``."""
    args = list(settings.launcher_args)
    if settings.launcher == "deepspeed":
        return [sys.executable, "-m", "deepspeed.launcher.runner", *args, str(script), *script_args]
    if settings.launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", *args, str(script), *script_args]
    if settings.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *args, str(script), *script_args]
    raise PipelineError(f"unknown launcher {settings.launcher!r}; use deepspeed, accelerate or torchrun")


def run_logged(cmd: list[str], log: Path, timeout: float, what: str, env: dict[str, str]) -> None:
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise PipelineError(f"{what} ran past its {timeout:.0f} s limit and was stopped; log: {log}") from None
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise PipelineError(f"{what} failed (exit {rc}). Last lines:\n{tail}\nfull log: {log}")


class LlavaPipeline:
    """Fine-tunes the base llava-hf model on a selection and scores it with lmms-eval."""

    #: One training run at a time on this machine (it takes every GPU/process the settings give it).
    scoring_slots = 1

    def __init__(self, settings: LlavaSettings, records: Callable[[str], dict[str, Any]],
                 image_file: Callable[[str, Path], Path | None], pool_stamp: str = "") -> None:
        self.settings = settings
        self.records = records
        self.image_file = image_file
        self.pool_stamp = pool_stamp

    def fingerprint(self) -> str:
        s = self.settings
        model_cfg = Path(s.model) / "config.json"
        payload = {
            "model": s.model, "model_config": model_cfg.read_text() if model_cfg.exists() else "",
            "recipe": Path(s.recipe).read_text(), "deepspeed": Path(s.deepspeed).read_text() if s.deepspeed else "",
            "suite": Suite.load(s.suite).fingerprint(), "pool": self.pool_stamp,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **OFFLINE_ENV}
        try:
            import torch

            if not torch.cuda.is_available():
                env.setdefault("DS_ACCELERATOR", "cpu")
        except ImportError:
            pass
        return env

    def write_training_data(self, selection: Selection, workdir: Path) -> Path:
        """The selected records (rewrites applied) with absolute image paths: ``train.json``."""
        out = []
        for i in selection.ids:
            rec = dict(self.records(i))
            if i in selection.rewrites and "conversations" in selection.rewrites[i]:
                rec["conversations"] = selection.rewrites[i]["conversations"]
            if rec.get("image"):
                path = self.image_file(i, workdir / "images")
                if path is None:
                    raise PipelineError(f"record {i!r} names image {rec['image']!r}, which is not available")
                rec["image"] = str(path)
            out.append(rec)
        path = workdir / "train.json"
        path.write_text(json.dumps(out))
        return path

    def run(self, selection: Selection, workdir: Path, seed: int) -> EvalResult:
        workdir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        data = self.write_training_data(selection, workdir)
        adapter = workdir / "adapter"
        script = Path(__file__).with_name("train.py")
        args = ["--model", s.model, "--data", str(data), "--recipe", str(s.recipe), "--output", str(adapter),
                "--seed", str(seed)]
        if s.deepspeed:
            args += ["--deepspeed", str(s.deepspeed)]
        t0 = time.monotonic()
        run_logged(launch_command(s, script, args), workdir / "train.log", s.train_timeout_s, "training", self._env())
        train_s = time.monotonic() - t0
        summary = json.loads((adapter / "train_summary.json").read_text())
        result = self._evaluate(workdir, seed, adapter)
        result.timings["train_s"] = round(train_s, 2)
        result.train_log = (workdir / "train.log").read_text(errors="replace")[-20_000:]
        result.extra.update({"examples": len(selection.ids), "steps": summary["steps"],
                             "train_loss": summary["train_loss"]})
        return result

    def base_result(self, seed: int) -> EvalResult:
        from curbench_env.pipeline import curbench_home

        workdir = curbench_home() / "llava665k" / "base" / self.fingerprint()
        workdir.mkdir(parents=True, exist_ok=True)
        return self._evaluate(workdir, seed, None)

    def _evaluate(self, workdir: Path, seed: int, adapter: Path | None) -> EvalResult:
        s = self.settings
        out = workdir / "eval"
        cmd = [sys.executable, "-m", "curbench_env.envs.llava665k.evaluate", "--model", s.model, "--suite",
               str(s.suite), "--out", str(out), "--seed", str(seed)]
        if adapter is not None:
            cmd += ["--adapter", str(adapter)]
        t0 = time.monotonic()
        run_logged(cmd, workdir / "eval.log", s.eval_timeout_s, "evaluation", self._env())
        report = json.loads((out / "eval.json").read_text())
        return EvalResult(scores=report["scores"], average=float(report["average"]),
                          timings={"train_s": 0.0, "eval_s": round(time.monotonic() - t0, 2)},
                          eval_log=(workdir / "eval.log").read_text(errors="replace")[-20_000:])
