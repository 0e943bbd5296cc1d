"""Shared LLaVA fine-tune and evaluation code: the same classes run the tiny MiniVQA model
in-process and (issue: real settings) the llava-hf LLaVA-1.5 model at full size.

- :class:`ChatFormat` / :class:`ConversationEncoder`: LLaVA records → input ids and labels
  (loss on assistant tokens only, ``<image>`` expanded to the model's image tokens).
- :func:`finetune_lora`: the fixed LoRA recipe (peft) with a cosine schedule.
- :func:`greedy_answers`: batched greedy decoding for evaluation.
- :func:`example_losses`: per-example loss on assistant tokens (EL2N/top-loss signals).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

IGNORE_INDEX = -100


@dataclass(frozen=True)
class ChatFormat:
    """How a conversation is laid out as text (LLaVA's ``conv_vicuna_v1`` at full size)."""

    system: str = ""
    user: str = "USER:"
    assistant: str = "ASSISTANT:"
    eos: str = "</s>"
    #: Image tokens after the user tag ("USER: <image>\n..."), as llava-hf's chat template puts
    #: them; MiniVQA's model was aligned with them first.
    image_after_user: bool = False


@dataclass(frozen=True)
class LoraRecipe:
    """The fixed fine-tune recipe. LLaVA-1.5's finetune_lora.sh at full size; scaled for MiniVQA."""

    epochs: float = 1.0
    batch_size: int = 128
    learning_rate: float = 2e-4
    projector_lr: float = 2e-5
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_length: int = 2048
    min_steps: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Encoded:
    """One tokenised training example."""

    input_ids: list[int]
    labels: list[int]
    image: int | None  # row in the image store, or None for text-only


class ConversationEncoder:
    """Tokenises LLaVA-format conversations for a given tokenizer and chat format."""

    def __init__(self, tokenizer: Any, image_token_id: int, image_seq_length: int,
                 chat: ChatFormat = ChatFormat(), max_length: int = 2048) -> None:
        self.tok = tokenizer
        self.image_token_id = image_token_id
        self.image_seq_length = image_seq_length
        self.chat = chat
        self.max_length = max_length
        self._cache: dict[str, list[int]] = {}

    def _ids(self, text: str) -> list[int]:
        hit = self._cache.get(text)
        if hit is None:
            hit = self.tok.encode(text, add_special_tokens=False)
            if len(self._cache) < 200_000:
                self._cache[text] = hit
        return hit

    def _human(self, text: str, with_image: bool) -> list[int]:
        if not with_image:
            return self._ids(f"{self.chat.user} {text} {self.chat.assistant}")
        text = text.replace("<image>", "").strip()
        image = [self.image_token_id] * self.image_seq_length
        if self.chat.image_after_user:
            return self._ids(self.chat.user) + image + self._ids(f"\n{text} {self.chat.assistant}")
        return image + self._ids(f"{self.chat.user} {text} {self.chat.assistant}")

    def encode(self, conversations: Sequence[dict[str, str]], image: int | None) -> Encoded:
        """Ids and labels of a whole conversation; labels mask everything but the answers."""
        ids: list[int] = list(self._ids(self.chat.system)) if self.chat.system else []
        labels: list[int] = [IGNORE_INDEX] * len(ids)
        image_pending = image is not None
        for k in range(0, len(conversations) - 1, 2):
            h = self._human(conversations[k]["value"], image_pending)
            image_pending = False
            a = self._ids(f"{conversations[k + 1]['value']} {self.chat.eos}")
            ids += h + a
            labels += [IGNORE_INDEX] * len(h) + a
        if len(ids) > self.max_length:
            ids, labels = ids[: self.max_length], labels[: self.max_length]
            if image is not None and ids.count(self.image_token_id) < self.image_seq_length:
                image = None  # truncated into the image: drop it rather than feed a broken image
                ids = [t for t in ids if t != self.image_token_id]
                labels = labels[: len(ids)]
        return Encoded(ids, labels, image)

    def prompt(self, question: str, with_image: bool) -> list[int]:
        """Ids of a single-turn prompt ending at the assistant tag (for generation)."""
        ids = self._ids(self.chat.system) if self.chat.system else []
        return ids + self._human(question, with_image)


def pad_batch(input_ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_id: int) -> dict:
    """Right-padded ``input_ids``, ``labels`` (padding ignored by the loss) and ``attention_mask`` tensors."""
    width = max(len(ids) for ids in input_ids)
    ids_t = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    labels_t = torch.full((len(input_ids), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(zip(input_ids, labels, strict=True)):
        ids_t[i, :len(ids)] = torch.tensor(ids)
        labels_t[i, :len(lab)] = torch.tensor(lab)
        mask[i, :len(ids)] = 1
    return {"input_ids": ids_t, "attention_mask": mask, "labels": labels_t}


def _collate(batch: Sequence[Encoded], pad_id: int, images: Callable[[list[int]], torch.Tensor]) -> dict:
    out = pad_batch([e.input_ids for e in batch], [e.labels for e in batch], pad_id)
    rows = [e.image for e in batch if e.image is not None]
    if rows:
        out["pixel_values"] = images(rows)
    return out


def lora_config(recipe: LoraRecipe, projector_name: str = "multi_modal_projector", **extra: Any) -> Any:
    """peft's LoraConfig of the recipe: LoRA on ``target_modules``, the projector trained in full."""
    from peft import LoraConfig

    return LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                      target_modules=recipe.target_modules, modules_to_save=[projector_name], bias="none", **extra)


def recipe_optimizer(model: torch.nn.Module, recipe: LoraRecipe,
                     projector_name: str = "multi_modal_projector") -> torch.optim.Optimizer:
    """AdamW with LLaVA's two learning rates: ``learning_rate`` for LoRA, ``projector_lr`` for the projector."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    proj = [p for n, p in named if projector_name in n]
    lora = [p for n, p in named if projector_name not in n]
    return torch.optim.AdamW([{"params": lora, "lr": recipe.learning_rate}, {"params": proj, "lr": recipe.projector_lr}],
                             lr=recipe.learning_rate, weight_decay=recipe.weight_decay)


def cosine_scale(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier: linear warmup, then cosine decay to zero (LLaVA's schedule)."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s weights live (batches are built on the CPU and moved there)."""
    return next(model.parameters()).device


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def optimise(model: torch.nn.Module, batch: dict, opt: torch.optim.Optimizer, base_lrs: Sequence[float],
             scale: float) -> float:
    """One optimiser step at ``base_lrs * scale`` with gradient clipping at 1.0; returns the loss."""
    for g, lr in zip(opt.param_groups, base_lrs, strict=True):
        g["lr"] = lr * scale
    loss = model(**to_device(batch, model_device(model))).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.item())


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """One epoch of batches of similar length (less padding), in random order.

    Like LLaVA's ``group_by_length``: shuffle, sort inside mega-batches of 16 batches, split.
    """
    order = rng.permutation(len(lengths))
    mega = batch_size * 16
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: lengths[i])
        batches += [list(map(int, chunk[k:k + batch_size])) for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


#: The LoRA init is the only draw from torch's global RNG in a fine-tune (the recipes use no dropout), so
#: holding this lock around the seeding and the init keeps concurrent fine-tunes deterministic.
_SEEDED_INIT = threading.Lock()


def finetune_lora(base: torch.nn.Module, examples: Sequence[Encoded], images: Callable[[list[int]], torch.Tensor],
                  recipe: LoraRecipe, *, seed: int, pad_id: int, log: Callable[[str], None] = print,
                  projector_name: str = "multi_modal_projector") -> torch.nn.Module:
    """LoRA fine-tune a copy of ``base`` on ``examples`` with the fixed recipe; returns the peft model."""
    import warnings

    from peft import get_peft_model

    # peft calls a transformers API deprecated in v5; the warning says nothing to our users.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    with _SEEDED_INIT:  # fine-tunes running at once (threads on one GPU) must not interleave on torch's global RNG
        torch.manual_seed(seed)
        model = get_peft_model(copy.deepcopy(base), lora_config(recipe, projector_name))
    opt = recipe_optimizer(model, recipe, projector_name)
    rng = np.random.default_rng(seed)
    per_epoch = max(1, math.ceil(len(examples) / recipe.batch_size))
    total = max(recipe.min_steps, int(round(per_epoch * recipe.epochs)))
    warmup = max(1, int(total * recipe.warmup_ratio))
    base_lrs = [g["lr"] for g in opt.param_groups]
    model.train()
    batches: list[list[int]] = []
    t0 = time.monotonic()
    for step in range(total):
        if not batches:
            batches = length_grouped_batches([len(e.input_ids) for e in examples], recipe.batch_size, rng)
        batch = _collate([examples[i] for i in batches.pop()], pad_id, images)
        loss = optimise(model, batch, opt, base_lrs, cosine_scale(step, warmup, total))
        if step % max(1, total // 10) == 0 or step == total - 1:
            log(f"step {step + 1}/{total} loss {loss:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"({time.monotonic() - t0:.1f}s)")
    model.eval()
    return model


@torch.no_grad()
def greedy_answers(model: torch.nn.Module, prompts: Sequence[list[int]], pixel_values: torch.Tensor | None,
                   *, pad_id: int, eos_id: int, max_new_tokens: int, batch_size: int = 128) -> list[list[int]]:
    """Greedy continuation of each prompt (one image per prompt), batched with left padding."""
    model.eval()
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, p in enumerate(chunk):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if pixel_values is not None:
            kwargs["pixel_values"] = pixel_values[start:start + len(chunk)]
        kwargs = to_device(kwargs, model_device(model))
        gen = model.generate(**kwargs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id,
                             eos_token_id=eos_id)
        for row in gen[:, width:].tolist():
            out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


@torch.no_grad()
def example_losses(model: torch.nn.Module, examples: Sequence[Encoded], images: Callable[[list[int]], torch.Tensor],
                   *, pad_id: int, batch_size: int = 256) -> np.ndarray:
    """Mean loss on assistant tokens of each example under ``model`` (no training)."""
    model.eval()
    out = np.zeros(len(examples), dtype=np.float32)
    order = sorted(range(len(examples)), key=lambda k: len(examples[k].input_ids))  # batches of similar length
    for start in range(0, len(examples), batch_size):
        rows = order[start:start + batch_size]
        chunk = [examples[k] for k in rows]
        batch = to_device(_collate(chunk, pad_id, images), model_device(model))
        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
        valid = (target != IGNORE_INDEX).float()
        out[rows] = ((loss * valid).sum(1) / valid.sum(1).clamp(min=1)).cpu().numpy()
    return out
