"""Build everything a MiniVQA world needs, once, under ``$CURBENCH_HOME/minivqa/<fingerprint>``:
the world (pool, benchmarks, ground truth), the stage-1-aligned base model, and the pool
signals the workspace tools serve (per-example loss, embeddings, lengths).

The base model depends only on the model sizes, the alignment recipe, the stage-1 corpus and the
frozen vocabulary (``vocab.txt``), not on the world's seed or secret: every world of a preset
shares it (the default's ships with the package; others are aligned once and cached under
``$CURBENCH_HOME/minivqa/base-<base fingerprint>``).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from curbench_env.envs.minivqa import model as M
from curbench_env.envs.minivqa import shipped
from curbench_env.envs.minivqa.world import WorldConfig, build_world, stage1_corpus

from curbench_env.pipeline import build_lock, curbench_home


@dataclass(frozen=True)
class Stage1Config:
    """Stage-1 alignment (caption pretraining of the random-init model)."""

    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    #: Where a preset whose base model does not ship is aligned ("cuda": on a GPU, which rounds differently,
    #: so that alignment is cached apart). Not part of the base model's fingerprint: the shipped model
    #: is every device's base model.
    device: str = "cpu"


@dataclass(frozen=True)
class MiniVQAPreset:
    """A world, a model and its alignment: everything that makes scores comparable."""

    world: WorldConfig = field(default_factory=WorldConfig)
    model: M.ModelConfig = field(default_factory=M.ModelConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)

    def fingerprint(self) -> str:
        import hashlib

        from curbench_env.envs.minivqa.pipeline import MiniRecipe

        # The recipe too: the world's loss signal is computed with it (a recipe change rebuilds the signals).
        # The device too (a GPU computes its world's embeddings itself, so its world is cached apart).
        blob = json.dumps({"world": self.world.fingerprint(), "base": self._base_hash(with_device=True),
                           "version": 7, "signal_recipe": asdict(MiniRecipe().lora)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def base_fingerprint(self) -> str:
        """What the base model depends on: sizes, alignment recipe, stage-1 corpus, vocabulary; not the
        device (the shipped model is every device's)."""
        return self._base_hash(with_device=False)

    def _base_hash(self, with_device: bool) -> str:
        stage1 = asdict(self.stage1)
        if not with_device:
            del stage1["device"]
        blob = json.dumps({"model": asdict(self.model), "stage1": stage1,
                           "stage1_captions": self.world.stage1_captions, "vocab": M.vocabulary_sha256()},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


PRESETS: dict[str, MiniVQAPreset] = {
    "default": MiniVQAPreset(),
    # The default's base model (shipped) on a fifth of its pool: checks of the world's ranking in minutes.
    "small": MiniVQAPreset(world=WorldConfig(pool_size=4_000, budget=400, eval_items_per_benchmark=50)),
    # For tests and quick looks: small pool, few benchmark items, short alignment.
    "tiny": MiniVQAPreset(world=WorldConfig(pool_size=2_000, budget=200, eval_items_per_benchmark=25,
                                            stage1_captions=4_000),
                          stage1=Stage1Config(steps=150, batch_size=32)),
}


def world_dir(preset: MiniVQAPreset) -> Path:
    """Where a preset's world lives."""
    return curbench_home() / "minivqa" / preset.fingerprint()


def ensure_world(preset: MiniVQAPreset, log: Callable[[str], None] = print, secret: str | None = None) -> Path:
    """Build what is missing (idempotent, safe across processes); return the world directory.
    ``secret``: the world secret a preset with a ``secret_id`` is drawn from."""
    root = world_dir(preset)
    if (root / "READY").exists():
        return root
    with build_lock(root.parent / f"{root.name}.lock"):
        if (root / "READY").exists():
            return root
        t0 = time.monotonic()
        if not (root / "hidden" / "summary.json").exists():
            log(f"building the MiniVQA world ({preset.world.pool_size} pool examples) in {root}")
            build_world(preset.world, root, secret)
            write_image_files(root / "pool")
        if not (root / "base_model" / "config.json").exists():
            install_base_model(preset, root / "base_model", log)
        if not (root / "pool" / "signals" / "loss.npy").exists():
            log("computing pool signals (early-training loss, base-model embeddings, lengths)")
            compute_signals(root, preset.stage1.device, log)
        (root / "READY").write_text(json.dumps({"preset": asdict(preset), "seconds": time.monotonic() - t0}))
        log(f"MiniVQA world ready in {time.monotonic() - t0:.0f}s")
    return root


def write_image_files(pool: Path) -> None:
    """Write each pool picture as a PNG at its record's path (what `ls $POOL/images` shows)."""
    from PIL import Image

    images = np.load(pool / "images.npy")
    index: dict[str, int] = json.loads((pool / "image_index.json").read_text())
    for rel, row in index.items():
        target = pool / "images" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[row]).save(target, optimize=False, compress_level=1)


def install_base_model(preset: MiniVQAPreset, target: Path, log: Callable[[str], None] = print) -> None:
    """Put the preset's base model at ``target``: the shipped weights when they are this preset's,
    else the machine's cached alignment (aligned now if missing)."""
    import shutil

    fp = preset.base_fingerprint()
    if shipped.ships(fp):
        shipped.install(target)
        log("base model: the shipped stage-1 weights (sha256 verified)")
        return
    device = preset.stage1.device
    cached = curbench_home() / "minivqa" / (f"base-{fp}" if device == "cpu" else f"base-{fp}-{device.replace(':', '')}")
    with build_lock(cached.parent / f"{cached.name}.lock"):
        if not (cached / "config.json").exists():
            log("stage-1 alignment of the base model (once per preset; cached)")
            build_base_model(preset, cached.parent, log, name=cached.name)
        else:
            log(f"base model: this preset's stage-1 alignment, cached in {cached}")
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(cached, tmp)
    tmp.rename(target)


def build_base_model(preset: MiniVQAPreset, root: Path, log: Callable[[str], None], name: str = "base_model") -> None:
    """Random-init the tiny LLaVA, run stage-1 alignment on the caption corpus, save it as ``root/name``."""
    import torch

    torch.set_num_threads(2)
    tok = M.build_tokenizer(M.vocabulary())
    model = M.build_model(preset.model, len(tok), tok.convert_tokens_to_ids("<image>"), tok.pad_token_id,
                          preset.stage1.seed).to(preset.stage1.device)
    encoder = M.make_encoder(tok, preset.model)
    images, pairs = stage1_corpus(preset.world.stage1_captions, preset.stage1.seed)
    M.stage1_align(model, encoder, images, pairs, steps=preset.stage1.steps, batch_size=preset.stage1.batch_size,
                   lr=preset.stage1.learning_rate, seed=preset.stage1.seed, log=log)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{name}.tmp"
    M.save_base(model, tok, preset.model, tmp)
    tmp.rename(root / name)


def rebuild_base_model(preset: MiniVQAPreset, log: Callable[[str], None] = print,
                       secret: str | None = None, install: bool = False) -> dict[str, bool] | None:
    """Regenerate the world's base model from its seed (stage-1 alignment) and return which pinned files
    match the shipped ones byte for byte (None when no model ships for the preset; the log says whether it
    matches the installed one). Where the world's loss signal ships, it is recomputed from the rebuilt
    model and compared too.

    The rebuilt model is compared, not used: it stays in ``<world>.rebuild/base_model`` for inspection,
    and the world keeps the model it had (for the default preset, the reference every machine scores).
    ``install=True`` replaces the world's model with the rebuilt one (and recomputes its signals when
    they differ)."""
    import shutil

    root = ensure_world(preset, log, secret)
    with build_lock(root.parent / f"{root.name}.lock"):
        # A view of the world with the rebuilt model in it: the loss signal is recomputed there.
        view = root.parent / f"{root.name}.rebuild"
        if view.exists():
            shutil.rmtree(view)
        view.mkdir()
        try:
            return _rebuild_in(view, root, preset, log, install)
        finally:
            for part in ("pool", "hidden"):
                (view / part).unlink(missing_ok=True)


def _rebuild_in(view: Path, root: Path, preset: MiniVQAPreset, log: Callable[[str], None],
                install: bool) -> dict[str, bool] | None:
    """:func:`rebuild_base_model` in ``view``, the world seen with the rebuilt model in it."""
    import shutil

    from curbench_env.envs.minivqa.pipeline import MiniRecipe

    for part in ("pool", "hidden"):
        (view / part).symlink_to(root / part, target_is_directory=True)
    log("stage-1 alignment of the base model from its seed")
    build_base_model(preset, view, log)
    fresh = view / "base_model"
    same = all((fresh / f).read_bytes() == (root / "base_model" / f).read_bytes()
               for f in shipped.SHIPPED_SHA256)
    log(f"the rebuilt model is {'byte-identical to' if same else 'not identical to'} the world's model")
    shipped_signal = shipped.SHIPPED_LOSS.get(loss_signal_key(root, MiniRecipe(device=preset.stage1.device)))
    if shipped_signal:
        log("recomputing the loss signal from the rebuilt model, to compare it with the shipped one")
        loss = early_training_loss(*_encoded_pool(view, preset.stage1.device), log)
        buf = io.BytesIO()
        np.save(buf, loss)
        recomputed = hashlib.sha256(buf.getvalue()).hexdigest()
    report = shipped.compare(fresh) if preset.base_fingerprint() == shipped.SHIPPED_BASE else None
    if report is not None and shipped_signal:
        report["signals/loss.npy"] = recomputed == shipped_signal
    if install:  # copied beside, then swapped: an interrupted install leaves the world's model whole
        ready = (root / "READY").read_text()
        if not same:  # until its signals are recomputed, the world is not ready (ensure_world would finish it)
            (root / "READY").unlink()
            (root / "pool" / "signals" / "loss.npy").unlink(missing_ok=True)
        new, old = root / "base_model.new", root / "base_model.old"
        for d in (new, old):
            if d.exists():
                shutil.rmtree(d)
        shutil.copytree(fresh, new)
        (root / "base_model").rename(old)
        new.rename(root / "base_model")
        shutil.rmtree(old)
        if not same:
            log("installed the rebuilt model for this world: recomputing its pool signals")
            compute_signals(root, preset.stage1.device, log)
            (root / "READY").write_text(ready)
        else:
            log("installed the rebuilt model for this world (the same bytes)")
    else:
        log(f"the rebuilt model is in {fresh}; the world keeps its own (install the rebuilt one with --install)")
    return report


#: The EL2N-style loss signal's proxy models: the base model fine-tuned with the task's recipe on a
#: random share of the pool (two disjoint halves of ``2 * PROXY_SHARE``, each scoring the other's
#: examples, so no example's loss comes from a model that trained on it).
PROXY_SHARE = 0.05


def compute_signals(root: Path, device: str = "cpu", log: Callable[[str], None] = print) -> None:
    """Per-example signals for the workspace tools: the early-training loss (EL2N-style), the base
    model's embeddings, lengths. The loss is copied from the package where this world's ships
    (``shipped.SHIPPED_LOSS``)."""
    import torch

    p, examples, images = _encoded_pool(root, device)
    ids = list(p.records)
    ready = shipped.shipped_loss(loss_signal_key(root, p.recipe))
    if ready is not None:
        log("loss signal: the shipped early-training loss of this world (sha256 verified)")
        loss = np.load(ready)
        if len(loss) != len(ids):
            raise RuntimeError(f"the shipped loss signal {ready.name} has {len(loss)} values for {len(ids)} pool "
                               "examples; reinstall curbench-env")
    else:
        loss = early_training_loss(p, examples, images, log)
    with torch.no_grad():
        img_emb = np.zeros((len(ids), p.cfg.vision_hidden), dtype=np.float32)
        rows = [(k, e.image) for k, e in enumerate(examples) if e.image is not None]
        vt = p.model.model.vision_tower
        for start in range(0, len(rows), 512):
            chunk = rows[start:start + 512]
            px = M.pixel_tensor(p.images[[r for _, r in chunk]]).to(device)
            feats = vt(pixel_values=px).last_hidden_state[:, 1:].mean(1).cpu().numpy()
            img_emb[[k for k, _ in chunk]] = feats
        emb = p.model.get_input_embeddings().weight.cpu()  # one copy, not one device round trip per example
        txt_emb = np.zeros((len(ids), emb.shape[1]), dtype=np.float32)
        for k, e in enumerate(examples):
            toks = [t for t in e.input_ids if t != p.encoder.image_token_id]
            txt_emb[k] = emb[toks].mean(0).numpy()
    sig = root / "pool" / "signals"
    sig.mkdir(exist_ok=True)
    (sig / "ids.json").write_text(json.dumps(ids))
    np.save(sig / "loss.npy", loss)
    np.save(sig / "image_emb.npy", img_emb)
    np.save(sig / "text_emb.npy", txt_emb)
    np.save(sig / "n_tokens.npy", np.array([len(e.input_ids) for e in examples], dtype=np.int32))


def _encoded_pool(root: Path, device: str) -> tuple[Any, list, Callable]:
    """The world's pipeline (task recipe, base model loaded, 2 threads), every pool example encoded, the
    picture loader: what the signals are computed from."""
    import torch
    from curbench_env.envs.minivqa.pipeline import MiniRecipe, MiniVQAPipeline

    torch.set_num_threads(2)
    p = MiniVQAPipeline(root, MiniRecipe(device=device))
    p.load()
    return p, [p.encode(i) for i in p.records], M.image_loader(p.images)


def loss_signal_key(root: Path, recipe: Any) -> str:
    """``shipped.signal_key`` of a built world under the task's recipe."""
    return shipped.signal_key(root, asdict(recipe.lora), PROXY_SHARE)


def early_training_loss(p: Any, examples: list, images: Callable, log: Callable[[str], None]) -> np.ndarray:
    """The EL2N-style loss of every pool example: two proxies (the base model fine-tuned with the task's
    recipe on disjoint random shares of the pool), each example scored by a proxy that did not train on it."""
    from curbench_env.envs.llava_pipeline import example_losses, finetune_lora

    n = max(1, round(len(examples) * PROXY_SHARE))
    drawn = np.random.default_rng(20_000).permutation(len(examples))
    folds = [np.sort(drawn[:n]), np.sort(drawn[n:2 * n])]
    proxies = []
    for k, rows in enumerate(folds):
        log(f"loss signal: proxy model {k + 1}/2 (the base model fine-tuned on {len(rows)} random pool examples)")
        model = finetune_lora(p.model, [examples[r] for r in rows], images, p.recipe.lora, seed=k, pad_id=p.pad_id,
                              log=lambda _m: None)
        proxies.append(model.merge_and_unload())
    log(f"loss signal: scoring {len(examples)} examples")
    loss = example_losses(proxies[0], examples, images, pad_id=p.pad_id)
    rows = folds[0].tolist()  # proxy 1 trained on these: proxy 2 scores them
    loss[rows] = example_losses(proxies[1], [examples[r] for r in rows], images, pad_id=p.pad_id)
    return loss
