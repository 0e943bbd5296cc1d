"""A tiny stand-in for everything the real LLaVA setting needs, generated locally: a pool in
LLaVA-665K's JSON format with its image root, a random-init llava-hf model saved to disk, and
local copies of lmms-eval tasks. The tests (and ``curbench setup Curation-LLaVA10k-v0
--smoke``) run the real code path on them: loader, launcher, training, lmms-eval.

The records and pictures come from the MiniVQA generator (same sources, same image prefixes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

#: lmms-eval tasks the tiny suite copies locally (their YAML, utils and metrics; our data).
LOCAL_TASKS = ("pope", "mme")


def make_pool(out: Path, n: int = 64, seed: int = 0) -> tuple[Path, Path]:
    """``out/llava_v1_5_mix665k.json`` and ``out/images/<prefix>/<id>.png``; returns both paths."""
    from curbench_env.envs.minivqa import sources as S
    from curbench_env.envs.minivqa.scenes import random_scene, render
    from curbench_env.envs.minivqa.world import _record
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = out / "images"
    names = list(S.SOURCES)
    records = []
    while len(records) < n:
        spec = S.SOURCES[names[len(records) % len(names)]]
        scene = random_scene(rng, sign_prob=spec.sign_prob) if spec.image_dir else None
        d = S.draft(spec.name, scene, rng)
        if d is None:
            continue
        id_ = f"{len(records):012d}" if spec.image_dir else f"{len(records):x}_0"
        image = f"{spec.image_dir}/{id_}.png" if spec.image_dir else None
        if image:
            (root / image).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render(scene, rng)).save(root / image)  # type: ignore[arg-type]
        records.append(_record(id_, image, d.turns))
    # LLaVA-665K repeats ids (a COCO image's instruct and VQA rows): so does the tiny pool.
    if len(records) > 2:
        records[-1] = dict(records[-1], id=records[0]["id"])
    path = out / "llava_v1_5_mix665k.json"
    path.write_text(json.dumps(records))
    return path, root


def make_model(out: Path, texts: list[str], seed: int = 0) -> Path:
    """A random-init llava-hf model + processor (32 px pictures, 16 image tokens) in ``out``."""
    from curbench_env.envs.minivqa.model import ModelConfig, build_model, build_tokenizer
    from transformers import CLIPImageProcessor, LlavaProcessor

    cfg = ModelConfig(vision_hidden=32, text_hidden=64, text_intermediate=128, max_length=192)
    tok = build_tokenizer(texts + ["A chat between a curious user and an artificial intelligence assistant. The "
                                   "assistant gives helpful, detailed, and polite answers to the user's questions. "
                                   "USER: ASSISTANT: yes no Yes No"])
    model = build_model(cfg, len(tok), tok.convert_tokens_to_ids("<image>"), tok.pad_token_id, seed)
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": cfg.image_size},
                                                             crop_size={"height": cfg.image_size, "width": cfg.image_size}),
                          tokenizer=tok, patch_size=cfg.patch_size, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def _task_rows(task: str, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    from curbench_env.envs.minivqa import questions as Q
    from curbench_env.envs.minivqa.scenes import COLOURS, random_scene, render

    rows: list[dict[str, Any]] = []
    while len(rows) < n:
        scene = random_scene(rng)
        img = render(scene, rng)
        if task == "pope":
            qa = Q.exist_q(scene, rng)
            if qa is None:
                continue
            rows.append({"question_id": str(len(rows)), "question": qa[0], "answer": qa[1], "image_source": "tiny",
                         "category": "adversarial", "image": img})
            continue
        if not scene.objects:
            continue
        # MME scores pairs: one picture, a "Yes" and a "No" question with the same question_id.
        o = scene.objects[0]
        other = next(c for c in COLOURS if c != o.colour)
        for colour, answer in ((o.colour, "Yes"), (other, "No")):
            rows.append({"question_id": f"tiny/{len(rows) // 2}.png", "answer": answer, "category": "color",
                         "question": f"Is the {o.shape} at the {o.position} {colour}? Please answer yes or no.",
                         "image": img})
    return rows


def make_tasks(out: Path, n: int = 8, seed: int = 0) -> Path:
    """Local data for lmms-eval's own ``pope`` and ``mme`` tasks, and a suite file using them.

    Each task is a YAML that ``include``s lmms-eval's task definition (prompts, ``process_results``,
    aggregation) and only replaces ``dataset_path`` with a local parquet file. Returns the suite.
    """
    import datasets
    import lmms_eval

    tasks_root = Path(lmms_eval.__file__).parent / "tasks"
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    suite = []
    for task in LOCAL_TASKS:
        rows = _task_rows(task, n, rng)
        features = {k: datasets.Value("string") for k in rows[0] if k != "image"}
        ds = datasets.Dataset.from_dict(
            {k: [r[k] for r in rows] for k in rows[0] if k != "image"} | {"image": [r["image"] for r in rows]},
            features=datasets.Features({**features, "image": datasets.Image()}))
        ds.to_parquet(str(out / f"{task}.parquet"))
        name = f"tiny_{task}"
        (out / f"{name}.yaml").write_text(
            f"include: {tasks_root / task / (task + '.yaml')}\n"
            f"task: {name}\n"
            "dataset_path: parquet\n"
            f"dataset_kwargs:\n  data_files:\n    test: {out / (task + '.parquet')}\n")
        metric = "pope_accuracy" if task == "pope" else "mme_perception_score"
        suite.append({"name": task, "task": name, "metric": metric, "scale": 100 if task == "pope" else 0.05})
    path = out / "suite.json"
    path.write_text(json.dumps({"tasks": suite, "include_path": str(out), "batch_size": 1}, indent=1))
    return path
