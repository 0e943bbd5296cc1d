"""A tiny DataComp, generated: a pool in DataComp's download layout, evaluation sets in
clip-benchmark's webdataset layout, and a tiny open_clip model and training config. It runs
``Curation-DataCompSmall-v0``'s real code path (torchrun + open_clip_train, clip-benchmark)
on a CPU in about a minute.

    python -m curbench_env.envs.datacomp.tiny OUT     # prints the `curbench run` command

- ``OUT/pool``: ``shards/0000000{0,1}.tar`` (``jpg``, ``txt``, ``json`` with the ``uid``) and
  ``metadata/0.parquet`` (``uid``, ``text``, ``original_width``, ``original_height``, ``sha256``,
  ``clip_b32_similarity_score``, ``clip_l14_similarity_score``). Pictures are MiniVQA scenes; the
  captions carry web noise (a caption of another picture, alt-text spam, blank pictures with
  generic text). The CLIP-score-like columns are drawn from that hidden truth: well-matched pairs
  score about 0.30, noisy ones 0.10-0.17, with spread, so the score ranks pairs like a CLIP would,
  imperfectly. The truth is in ``OUT/truth.jsonl``, outside the pool.
- ``OUT/evalsets``: stand-ins under three DataComp task names, in the folders its
  ``download_evalsets.py`` uses: ``imagenet1k`` (12 colour-shape classes, accuracy),
  ``vtab/pets`` (3 shapes, mean per-class recall) and ``retrieval/flickr30k`` (scenes and their
  captions, mean recall@1). No picture of them is in the pool.
- ``OUT/model``: an ``open_clip_config.json`` (a ViT of 32x32 pictures) used as ``local-dir:``;
  ``OUT/train_config.json``: ``configs/datacomp_small.json``'s fields at tiny scale on the CPU.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The DataComp tasks the tiny evaluation sets stand in for.
TINY_TASKS = ("imagenet1k", "vtab/pets", "retrieval/flickr30k")
SPAM = [
    "buy cheap shapes online free shipping",
    "best price click here",
    "stock photo royalty free download",
    "sale sale sale limited offer",
    "wallpaper hd 4k free",
]
GENERIC = ["image", "untitled", "photo", "picture"]
TEMPLATES = ["a {c}.", "a photo of a {c}.", "a picture of a {c}."]
#: Mean CLIP-score-like value per kind of pair (DataComp's B/32 scores of good pairs are about 0.3).
SCORE_MEAN = {"clean": 0.30, "mismatch": 0.17, "spam": 0.13, "blank": 0.10}


@dataclass(frozen=True)
class TinyDataComp:
    """Sizes and seed of a tiny DataComp; :meth:`build` writes it."""

    pool_size: int = 400
    shards: int = 2
    noise: tuple[tuple[str, float], ...] = (("mismatch", 0.35), ("spam", 0.15), ("blank", 0.10))
    score_spread: float = 0.035
    eval_classification: int = 48
    eval_retrieval: int = 48
    samples_seen: int = 6144
    batch_size: int = 32
    seed: int = 0

    def build(self, out: Path) -> dict[str, Path]:
        """Write the pool, the evaluation sets, the model and the training config under ``out``."""
        out = Path(out)
        rng = np.random.default_rng(self.seed)
        eval_hashes = write_evalsets(out / "evalsets", rng, self.eval_classification, self.eval_retrieval)
        write_pool(out / "pool", out / "truth.jsonl", self, rng, eval_hashes)
        config = write_model_and_config(out, self)
        return {"pool_dir": out / "pool", "evalsets": out / "evalsets", "config": config}


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_wds(
    folder: Path, samples: list[dict[str, Any]], *, classes: list[str] | None = None, retrieval: bool = False
) -> None:
    """One shard in clip-benchmark's webdataset layout (what its ``export_wds`` writes)."""
    import webdataset as wds

    (folder / "test").mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(folder / "test" / "0.tar")) as sink:
        for k, s in enumerate(samples):
            sink.write({"__key__": f"s{k:07d}", **s})
    (folder / "test" / "nshards.txt").write_text("1\n")
    if retrieval:
        (folder / "dataset_type.txt").write_text("retrieval\n")
    if classes:
        (folder / "classnames.txt").write_text("\n".join(classes) + "\n")
        (folder / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES) + "\n")


def write_evalsets(root: Path, rng: np.random.Generator, n_cls: int, n_ret: int) -> set[str]:
    """The three stand-in evaluation sets; returns their pictures' hashes."""
    from curbench_env.envs.datacomp.tasklist import folder_name
    from curbench_env.envs.minivqa.scenes import COLOURS, POSITIONS, SHAPES, Obj, Scene, random_scene, render

    from curbench_env.audit import image_hash

    hashes: set[str] = set()

    def single(colour: str, shape: str) -> np.ndarray:
        scene = Scene(
            objects=(Obj(shape, colour, str(rng.choice(["small", "large"])), str(rng.choice(POSITIONS))),),
            background=int(rng.integers(3)),
        )
        img = render(scene, rng)
        hashes.add(image_hash(img))
        return img

    colour_shapes = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    samples = []
    for k in range(n_cls):
        colour, shape = colour_shapes[k % len(colour_shapes)].split()
        samples.append({"png": _png(single(colour, shape)), "cls": k % len(colour_shapes)})
    _write_wds(root / folder_name("imagenet1k"), samples, classes=colour_shapes)
    samples = []
    for k in range(n_cls):
        colour = str(rng.choice(list(COLOURS)))
        samples.append({"png": _png(single(colour, SHAPES[k % len(SHAPES)])), "cls": k % len(SHAPES)})
    _write_wds(root / folder_name("vtab/pets"), samples, classes=list(SHAPES))
    samples = []
    for _ in range(n_ret):
        scene = random_scene(rng)
        img = render(scene, rng)
        hashes.add(image_hash(img))
        samples.append({"png": _png(img), "txt": scene.caption()})
    _write_wds(root / folder_name("retrieval/flickr30k"), samples, retrieval=True)
    return hashes


def write_pool(
    pool: Path, truth_file: Path, cfg: TinyDataComp, rng: np.random.Generator, exclude: set[str]
) -> None:
    """Shards and metadata in DataComp's download layout; the noise truth beside, not inside, the pool."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from curbench_env.envs.minivqa.scenes import corrupt, random_scene, render

    from curbench_env.audit import image_hash

    (pool / "shards").mkdir(parents=True, exist_ok=True)
    (pool / "metadata").mkdir(parents=True, exist_ok=True)
    kinds, probs = zip(*cfg.noise, strict=True)
    rows, truth, samples = [], [], []
    while len(rows) < cfg.pool_size:
        scene = random_scene(rng)
        img = render(scene, rng)
        if image_hash(img) in exclude:  # DataComp removed its evaluation sets' pictures from its pool
            continue
        u, text, kind = rng.random(), scene.caption(), "clean"
        edges = np.cumsum(probs)
        if u < edges[0]:
            text, kind = random_scene(rng).caption(), kinds[0]
        elif u < edges[1]:
            text, kind = str(rng.choice(SPAM)), kinds[1]
        elif u < edges[2]:
            img, text, kind = corrupt("blank", rng), str(rng.choice(GENERIC)), kinds[2]
        uid = rng.bytes(16).hex()
        jpg = _jpg(img)
        b32, l14 = (SCORE_MEAN[kind] + cfg.score_spread * rng.standard_normal(2)).round(5).tolist()
        rows.append(
            {
                "uid": uid,
                "text": text,
                "original_width": 32,
                "original_height": 32,
                "sha256": hashlib.sha256(jpg).hexdigest(),
                "clip_b32_similarity_score": b32,
                "clip_l14_similarity_score": l14,
            }
        )
        truth.append({"uid": uid, "kind": kind})
        samples.append((jpg, text, uid))
    per = -(-len(samples) // cfg.shards)
    for s in range(cfg.shards):
        with tarfile.open(pool / "shards" / f"{s:08d}.tar", "w") as tar:
            for k, (jpg, text, uid) in enumerate(samples[s * per : (s + 1) * per]):
                key = f"{s:04d}{k:04d}"
                for ext, data in (
                    ("jpg", jpg),
                    ("txt", text.encode()),
                    ("json", json.dumps({"uid": uid}).encode()),
                ):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    pq.write_table(pa.Table.from_pylist(rows), pool / "metadata" / "0.parquet")
    truth_file.write_text("".join(json.dumps(t) + "\n" for t in truth))


def write_model_and_config(out: Path, cfg: TinyDataComp) -> Path:
    """A tiny ViT open_clip config (``local-dir:``) and ``datacomp_small.json``'s fields at tiny scale."""
    model = out / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": {
                    "embed_dim": 32,
                    "vision_cfg": {
                        "image_size": 32,
                        "patch_size": 8,
                        "width": 32,
                        "layers": 1,
                        "head_width": 16,
                    },
                    "text_cfg": {
                        "context_length": 24,
                        "vocab_size": 49408,
                        "width": 32,
                        "heads": 2,
                        "layers": 1,
                    },
                },
                "preprocess_cfg": {"mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28]},
            },
            indent=1,
        )
    )
    config = out / "train_config.json"
    config.write_text(
        json.dumps(
            {
                "_comment": "configs/datacomp_small.json at tiny scale: a CPU, a 32-pixel ViT, 6,144 samples seen",
                "model": f"local-dir:{model.resolve()}",
                "samples_seen": cfg.samples_seen,
                "num_checkpoints": 1,
                "global_batch_size": cfg.batch_size,
                "learning_rate": 2e-3,
                "warmup": 4,
                "precision": "fp32",
                "workers": 0,
                "cpu_threads": 1,
                "device": "cpu",
                "extra_args": ["--wd", "0.1"],
            },
            indent=1,
        )
    )
    return config


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m curbench_env.envs.datacomp.tiny OUT", file=sys.stderr)
        return 2
    paths = TinyDataComp().build(Path(args[0]))
    task_args = " ".join(
        [
            f"--task-arg pool_dir={paths['pool_dir'].resolve()}",
            f"--task-arg evalsets={paths['evalsets'].resolve()}",
            f"--task-arg config={paths['config'].resolve()}",
            "--task-arg require_gpu=false --task-arg nproc_per_node=1",
            f"--task-arg tasks={','.join(TINY_TASKS)}",
        ]
    )
    print(
        f"tiny DataComp written to {args[0]}; run an episode with:\n"
        f"  curbench run --env Curation-DataCompSmall-v0 --iterations 2 {task_args}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
