"""LoRA fine-tune of a llava-hf model on a selection: the process a launcher starts.

    deepspeed [--num_gpus N | --hostfile H] train.py --model DIR --data train.json \
        --recipe configs/llava15_lora.json --deepspeed configs/zero3.json --output DIR --seed S

(``accelerate launch ... train.py ...`` works the same way.) ``train.json`` is a list of
LLaVA-format records whose ``image`` is an absolute path. The recipe is LLaVA-1.5's
``finetune_lora.sh``: LoRA on every linear layer of the language model, the projector trained
at its own learning rate, cosine schedule with warmup, one epoch at a global batch of 128. The
conversation layout and loss masking are the shared :class:`ConversationEncoder`'s, with
llava-hf's chat template (Vicuna system prompt, ``USER: <image>\\n... ASSISTANT:``), so
lmms-eval's ``llava_hf`` model scores the adapter with the prompts it was trained on.
Writes the adapter (peft, with the projector) and ``train_summary.json`` to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """The recipe file (``configs/llava15_lora.json``): a :class:`LoraRecipe` plus how to run it."""

    lora: Any
    per_device_batch_size: int = 16
    lr_scheduler: str = "cosine"
    bf16: bool = True
    tf32: bool = True
    gradient_checkpointing: bool = True
    image_aspect_ratio: str = "pad"
    group_by_length: bool = True
    dataloader_num_workers: int = 4
    system_prompt: str = ""

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        from curbench_env.envs.llava_pipeline import LoraRecipe

        raw = {k: v for k, v in json.loads(Path(path).read_text()).items() if not k.startswith("_")}
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"{path}: unknown recipe keys {', '.join(sorted(unknown))}")
        return cls(**{**raw, "lora": LoraRecipe(**raw.get("lora", {}))})


def expand_to_square(image, background: tuple[int, int, int]):
    """LLaVA's ``image_aspect_ratio pad``: paste the picture centred on a square of the mean colour."""
    from PIL import Image

    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    out = Image.new(image.mode, (side, side), background)
    out.paste(image, ((side - w) // 2, (side - h) // 2))
    return out


class SelectionDataset:
    """Records → tokenised examples (labels on answers only) with their pixel values."""

    def __init__(self, records: list[dict[str, Any]], encoder: Any, image_processor: Any, pad: bool) -> None:
        self.records = records
        self.encoder = encoder
        self.image_processor = image_processor
        self.pad = pad
        mean = getattr(image_processor, "image_mean", [0.5, 0.5, 0.5])
        self.background = tuple(int(255 * m) for m in mean)

    def __len__(self) -> int:
        return len(self.records)

    def lengths(self) -> list[int]:
        """Word count + the image's tokens (LLaVA's ``modality_lengths``), for length grouping."""
        out = []
        for r in self.records:
            words = sum(len(t["value"].split()) for t in r["conversations"])
            out.append(words + (self.encoder.image_seq_length if r.get("image") else 0))
        return out

    def __getitem__(self, k: int) -> dict[str, Any]:
        from PIL import Image

        rec = self.records[k]
        enc = self.encoder.encode(rec["conversations"], 0 if rec.get("image") else None)
        item: dict[str, Any] = {"input_ids": enc.input_ids, "labels": enc.labels, "pixel_values": None}
        if enc.image is not None:
            img = Image.open(rec["image"]).convert("RGB")
            if self.pad:
                img = expand_to_square(img, self.background)
            item["pixel_values"] = self.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]
        return item


def collate(pad_id: int):
    import torch
    from curbench_env.envs.llava_pipeline import pad_batch

    def fn(batch: list[dict[str, Any]]) -> dict[str, Any]:
        out = pad_batch([b["input_ids"] for b in batch], [b["labels"] for b in batch], pad_id)
        pixels = [b["pixel_values"] for b in batch if b["pixel_values"] is not None]
        if pixels:
            out["pixel_values"] = torch.stack(pixels)
        return out

    return fn


def _skip_cpu_shm_build() -> None:
    """DeepSpeed's CPU backend compiles a shared-memory comm op (30-45 s of g++) at every fresh
    start; a single CPU process never uses it."""
    import torch

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    import deepspeed.comm.torch  # noqa: F401

    sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="llava-hf model directory (or hub id, resolved offline)")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--recipe", required=True, type=Path)
    ap.add_argument("--deepspeed", type=Path, default=None)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--local_rank", type=int, default=-1)  # passed by the deepspeed launcher
    a = ap.parse_args(argv)

    from curbench_env.compat import ensure_torchvision

    ensure_torchvision()
    import torch
    from curbench_env.envs.llava_pipeline import (
        ChatFormat,
        ConversationEncoder,
        lora_config,
        recipe_optimizer,
    )
    from peft import get_peft_model
    from transformers import AutoProcessor, LlavaForConditionalGeneration, Trainer, TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    cfg = TrainConfig.load(a.recipe)
    recipe = cfg.lora
    cuda = torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if a.deepspeed is not None:
        _skip_cpu_shm_build()
    bf16 = cfg.bf16 and cuda and torch.cuda.is_bf16_supported()
    if cfg.tf32 and cuda:
        torch.backends.cuda.matmul.allow_tf32 = True

    processor = AutoProcessor.from_pretrained(a.model)
    tok = processor.tokenizer
    model = LlavaForConditionalGeneration.from_pretrained(a.model, dtype=torch.bfloat16 if bf16 else torch.float32)
    model.config.use_cache = False
    image_token = getattr(model.config, "image_token_id", None) or model.config.image_token_index
    chat = ChatFormat(system=(tok.bos_token or "") + cfg.system_prompt, user="USER:", assistant="ASSISTANT:",
                      eos=tok.eos_token or "</s>", image_after_user=True)
    encoder = ConversationEncoder(tok, image_token, model.config.image_seq_length, chat, recipe.max_length)
    records = json.loads(a.data.read_text())
    data = SelectionDataset(records, encoder, processor.image_processor, cfg.image_aspect_ratio == "pad")

    lora = lora_config(recipe, task_type="CAUSAL_LM")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, lora)

    accum = max(1, recipe.batch_size // (cfg.per_device_batch_size * world))
    total_steps = math.ceil(math.ceil(len(data) / (cfg.per_device_batch_size * world)) / accum * recipe.epochs)
    args = TrainingArguments(
        output_dir=str(a.output), num_train_epochs=recipe.epochs, per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=accum, learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay,
        warmup_steps=math.ceil(recipe.warmup_ratio * total_steps), lr_scheduler_type=cfg.lr_scheduler, bf16=bf16, logging_steps=1,
        save_strategy="no", report_to=[], seed=a.seed, data_seed=a.seed, remove_unused_columns=False,
        dataloader_num_workers=cfg.dataloader_num_workers if cuda else 0, deepspeed=str(a.deepspeed) if a.deepspeed else None,
        use_cpu=not cuda, disable_tqdm=True)

    class RecipeTrainer(Trainer):
        """Two learning rates (LoRA, projector) as LLaVA's trainer, and length-grouped batches."""

        def create_optimizer(self):  # noqa: D102
            if self.optimizer is None:
                self.optimizer = recipe_optimizer(self.model, recipe)
            return self.optimizer

        def _get_train_sampler(self, *args, **kwargs):
            if not cfg.group_by_length:
                return super()._get_train_sampler(*args, **kwargs)
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        dataset=data, lengths=data.lengths())

    trainer = RecipeTrainer(model=model, args=args, train_dataset=data, data_collator=collate(tok.pad_token_id))
    t0 = time.monotonic()
    out = trainer.train()
    trainer.save_model(str(a.output))
    if trainer.is_world_process_zero():
        steps = out.global_step
        summary = {"examples": len(data), "steps": steps, "train_loss": out.training_loss,
                   "seconds": round(time.monotonic() - t0, 2), "world_size": world, "gradient_accumulation": accum,
                   "expected_steps": total_steps,
                   "log": [h for h in trainer.state.log_history if "loss" in h]}
        (a.output / "train_summary.json").write_text(json.dumps(summary, indent=1))
        print(f"trained {steps} steps on {len(data)} examples in {summary['seconds']} s, loss {out.training_loss:.4f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
