"""The default world's stage-1-aligned base model, shipped with the package.

Stage-1 alignment is the slow part of building ``Curation-MiniVQA-v0`` (4,000 steps, about 23
minutes on 2 cores) and it is deterministic, so its result ships as package data: a fresh install
gets the first reward in minutes, and every machine (CPU or GPU) scores the same base model. The
files live inside the installed package, which no sandbox mounts. Their hashes are pinned here;
``curbench setup --rebuild Curation-MiniVQA-v0`` regenerates the model from the seed and compares.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

#: The base model that ships (``MiniVQAPreset.base_fingerprint()`` of the default preset: model sizes,
#: alignment recipe, stage-1 corpus, vocabulary; every world seed or secret of the preset uses it).
SHIPPED_BASE = "672b900e4440"
#: sha256 of the files that define the model: the weights, the tokenizer, the model sizes. (The
#: others, config.json among them, name the transformers version that wrote them.)
SHIPPED_SHA256 = {
    "model.safetensors": "f8236b7203aa078700bc0a1b9c66319ad3912ca3f61c6a0458b0102530f8c331",
    "tokenizer.json": "f03a782cedfec45b0e5b96aa7681fb1077fe19a74327bf47ca4eb630b36608aa",
    "minivqa_model.json": "a3fe7a0d8d2ea908661d79e9687a8857cf659480674c58262a9866abd18d5c63",
}


#: The default world's early-training loss signal (two proxy fine-tunes and a pass over the pool, about
#: 100 s on 2 cores): by ``signal_key`` of what it is computed from, the sha256 of the shipped file. A
#: world whose inputs match (the public reference world of the default preset) copies it; any other
#: world (another seed, a secret, a preset, another recipe) computes its own.
SHIPPED_LOSS = {
    # Curation-MiniVQA-v0, world seed 0, no secret (world v7), MiniRecipe's LoRA recipe, PROXY_SHARE 0.05
    "c77d3567a79b21cd60d1f696cf8411a2c3d476b9c4ad65e5b35468021912d530":
        "4ea56340e00d90de43eff889f75f02b222c6e488b1ef712f8365b5564b52f91b",
}
#: Bumped when the loss signal's computation changes in a way its inputs (``signal_key``) do not show: the
#: code of ``setup.early_training_loss`` (folds, seeds), ``llava_pipeline.finetune_lora`` /
#: ``example_losses`` and the conversation encoder. A stale key keeps serving the old signal silently;
#: ``curbench setup --rebuild Curation-MiniVQA-v0`` recomputes it and says whether it still matches.
SIGNAL_VERSION = 2


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_dir() -> Path:
    """Where the shipped files are in the installed package."""
    return Path(str(resources.files("curbench_env.envs.minivqa") / "base_model"))


def signals_dir() -> Path:
    """Where the shipped loss signals are in the installed package."""
    return Path(str(resources.files("curbench_env.envs.minivqa") / "signals"))


def ships(base_fingerprint: str) -> bool:
    """Whether this base model ships (and the package holds it)."""
    return (base_fingerprint == SHIPPED_BASE and all(SHIPPED_SHA256.values())
            and (shipped_dir() / "model.safetensors").exists())


def compare(base_dir: Path) -> dict[str, bool]:
    """For each pinned file: whether ``base_dir`` holds it byte for byte."""
    return {name: (base_dir / name).exists() and sha256_file(base_dir / name) == digest
            for name, digest in SHIPPED_SHA256.items()}


def install(target: Path) -> None:
    """Copy the shipped base model to ``target`` and verify it (an error names a corrupted file)."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(shipped_dir(), tmp, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    bad = [name for name, ok in compare(tmp).items() if not ok]
    if bad:
        shutil.rmtree(tmp)
        raise RuntimeError(f"the shipped MiniVQA base model is damaged ({', '.join(bad)} do not match their "
                           "sha256); reinstall curbench-env or run `curbench setup --rebuild Curation-MiniVQA-v0`")
    tmp.rename(target)


def signal_key(root: Path, recipe: dict, proxy_share: float) -> str:
    """What a world's loss signal is computed from: its pool (records, pictures), its base model, the
    proxies' recipe and share of the pool."""
    h = hashlib.sha256()
    for rel in ("pool/pool.json", "pool/image_index.json", "pool/images.npy",
                *(f"base_model/{name}" for name in SHIPPED_SHA256)):
        h.update(sha256_file(root / rel).encode())
    h.update(json.dumps({"recipe": recipe, "proxy_share": proxy_share, "version": SIGNAL_VERSION},
                        sort_keys=True).encode())
    return h.hexdigest()


def shipped_loss(key: str) -> Path | None:
    """The shipped loss signal for a world with this ``signal_key``, verified; None when none ships."""
    digest = SHIPPED_LOSS.get(key)
    path = signals_dir() / f"loss-{key[:16]}.npy"
    if not digest or not path.exists():
        return None
    if sha256_file(path) != digest:
        raise RuntimeError(f"the shipped MiniVQA loss signal {path.name} is damaged (its sha256 does not match); "
                           "reinstall curbench-env")
    return path
