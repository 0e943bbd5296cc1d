"""MiniCLIP's model and training: a tiny open_clip ViT trained from scratch with a fixed
number of samples seen (DataComp's rule: the subset changes, the compute does not)."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_NAME = "curbench-miniclip-vit"


@dataclass(frozen=True)
class ClipRecipe:
    """Fixed hyper-parameters (DataComp small's shape at toy scale: AdamW, cosine, warmup)."""

    samples_seen: int = 40_000
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    embed_dim: int = 64
    vision_width: int = 64
    vision_layers: int = 2
    text_width: int = 64
    text_layers: int = 2
    context_length: int = 32
    threads: int = 2


def model_config(r: ClipRecipe) -> dict:
    return {"embed_dim": r.embed_dim,
            "vision_cfg": {"image_size": 32, "patch_size": 8, "width": r.vision_width, "layers": r.vision_layers,
                           "head_width": 32, "mlp_ratio": 2.0},
            "text_cfg": {"context_length": r.context_length, "vocab_size": 49408, "width": r.text_width,
                         "heads": 2, "layers": r.text_layers}}


def create(recipe: ClipRecipe, seed: int):
    """A random-init tiny CLIP and its tokenizer (open_clip's BPE, shipped with the package)."""
    import open_clip
    import torch

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / f"{MODEL_NAME}.json").write_text(json.dumps(model_config(recipe)))
        open_clip.add_model_config(d)
    torch.manual_seed(seed)
    return quiet_create(MODEL_NAME), open_clip.get_tokenizer(MODEL_NAME)


def quiet_create(name: str):
    """A random-init open_clip model, without its "No pretrained weights loaded" warning (training
    from scratch is the point)."""
    import open_clip

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return open_clip.create_model(name, pretrained=None, output_dict=True)
    finally:
        root.setLevel(level)


def pixels(images: np.ndarray):
    """uint8 (N, 32, 32, 3) → normalised float tensors (CLIP mean/std)."""
    import torch

    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean) / std


def train(images: np.ndarray, texts: list[str], recipe: ClipRecipe, seed: int,
          log: Callable[[str], None] = lambda m: None):
    """Contrastive training from scratch on (images, texts) for ``recipe.samples_seen`` samples."""
    import torch
    from open_clip.loss import ClipLoss

    model, tok = create(recipe, seed)
    tokens = tok(texts)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    loss_fn = ClipLoss()
    steps = max(1, recipe.samples_seen // recipe.batch_size)
    rng = np.random.default_rng(seed)
    order: list[int] = []
    t0 = time.monotonic()
    model.train()
    for step in range(steps):
        if len(order) < recipe.batch_size:
            order += list(rng.permutation(len(texts)))
        idx, order = order[: recipe.batch_size], order[recipe.batch_size:]
        scale = (step + 1) / recipe.warmup_steps if step < recipe.warmup_steps else \
            0.5 * (1 + math.cos(math.pi * (step - recipe.warmup_steps) / max(1, steps - recipe.warmup_steps)))
        for g in opt.param_groups:
            g["lr"] = recipe.learning_rate * scale
        out = model(pixels(images[idx]), tokens[idx])
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % max(1, steps // 5) == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps} loss {loss.item():.4f} ({time.monotonic() - t0:.1f}s)")
    model.eval()
    return model, tok


def embed(model, tok, images: np.ndarray, texts: list[str], batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image and text embeddings of (image, text) pairs; their row-wise dot product
    is the CLIP score."""
    import torch

    with torch.no_grad():
        img = np.concatenate([model.encode_image(pixels(images[s:s + batch]), normalize=True).numpy()
                              for s in range(0, len(texts), batch)])
        txt = np.concatenate([model.encode_text(tok(texts[s:s + batch]), normalize=True).numpy()
                              for s in range(0, len(texts), batch)])
    return img.astype(np.float32), txt.astype(np.float32)
