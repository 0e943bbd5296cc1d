"""The MiniVQA model: a tiny ``LlavaForConditionalGeneration`` (CLIP vision tower + Llama LM),
random-init from configs, with a word-level tokenizer built from the world's own text, and
its stage-1 alignment (caption pretraining) done once and cached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from curbench_env.envs.llava_pipeline import ChatFormat, ConversationEncoder, Encoded

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
#: Splits numbers like 0.5, single capital letters (sign words are read letter by letter),
#: lower-case words and punctuation.
SPLIT_PATTERN = r"\d+\.\d+|[A-Z](?=[A-Z])|[A-Z](?![a-z])|[A-Za-z][a-z]*|\d|[^\sA-Za-z\d]"
CHAT = ChatFormat(system="", user="USER:", assistant="ASSISTANT:", eos="</s>")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the tiny LLaVA."""

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 96
    vision_layers: int = 3
    text_hidden: int = 192
    text_layers: int = 3
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 384
    max_length: int = 160

    @property
    def image_seq_length(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def vocabulary() -> list[str]:
    """The frozen word list of every MiniVQA world (``vocab.txt``: the words the world's templates
    can write, in id order after the special tokens). Frozen so that the base model does not depend
    on which pool a world draws; a world that wrote a word outside it would get ``<unk>``, and a
    test checks none does."""
    from importlib import resources

    return (resources.files("curbench_env.envs.minivqa") / "vocab.txt").read_text().split()


def vocabulary_sha256() -> str:
    """sha256 of the frozen vocabulary (part of the base model's fingerprint)."""
    import hashlib

    return hashlib.sha256("\n".join(vocabulary()).encode()).hexdigest()


def build_tokenizer(texts: Iterable[str]):
    """A word-level fast tokenizer over ``texts``' words (ids in order of first appearance)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    vocab: dict[str, int] = {t: i for i, t in enumerate(SPECIALS)}
    for text in texts:
        for piece, _ in split.pre_tokenize_str(text):
            piece = piece.strip()
            if piece and piece not in vocab:
                vocab[piece] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), split])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})


def build_model(cfg: ModelConfig, vocab_size: int, image_token_id: int, pad_id: int, seed: int):
    """A random-init tiny LLaVA (CLIP vision tower, mlp2x_gelu projector, Llama LM)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_hidden * 2,
                              num_hidden_layers=cfg.vision_layers, num_attention_heads=2,
                              image_size=cfg.image_size, patch_size=cfg.patch_size, projection_dim=cfg.vision_hidden)
    text = LlamaConfig(vocab_size=vocab_size, hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
                       num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
                       num_key_value_heads=cfg.text_kv_heads, max_position_embeddings=cfg.max_length + 64,
                       pad_token_id=pad_id, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id,
                         image_seq_length=cfg.image_seq_length, vision_feature_select_strategy="default",
                         vision_feature_layer=-1, projector_hidden_act="gelu")
    config.pad_token_id = pad_id
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = 2
    return model


def pixel_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, H, W) normalised to [-1, 1] (CLIP-style)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


def image_loader(images: np.ndarray) -> Callable[[list[int]], torch.Tensor]:
    """Rows of an image array → pixel values."""
    return lambda rows: pixel_tensor(images[rows])


def one_question(encoder: ConversationEncoder, question: str, answer: str, image_row: int) -> Encoded:
    """One question about one picture (row ``image_row``) and its answer, encoded for training."""
    return encoder.encode([{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}],
                          image_row)


def stage1_align(model, encoder: ConversationEncoder, images: np.ndarray, pairs: list[list[str]], *,
                 steps: int, batch_size: int, lr: float, seed: int, log: Callable[[str], None]) -> None:
    """LLaVA stage 1, scaled down: teach the random-init model to see and describe (all weights train)."""
    from curbench_env.envs.llava_pipeline import _collate, cosine_scale, optimise

    torch.manual_seed(seed)
    examples = [one_question(encoder, q, a, i) for i, (q, a) in enumerate(pairs)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    load = image_loader(images)
    model.train()
    t0 = time.monotonic()
    warmup = max(1, steps // 20)
    for step in range(steps):
        idx = rng.integers(len(examples), size=batch_size)
        batch = _collate([examples[i] for i in idx], encoder.tok.pad_token_id, load)
        loss = optimise(model, batch, opt, [lr], cosine_scale(step, warmup, steps))
        if step % max(1, steps // 20) == 0 or step == steps - 1:
            log(f"stage1 step {step + 1}/{steps} loss {loss:.4f} ({time.monotonic() - t0:.0f}s)")
    model.eval()


def save_base(model, tokenizer, cfg: ModelConfig, path: Path) -> None:
    """Write the aligned base model in llava-hf format (loadable with from_pretrained)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one tiny shard: a "Writing model shards" bar is noise in `curbench setup`
    try:
        model.save_pretrained(path)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(path)
    (path / "minivqa_model.json").write_text(json.dumps(asdict(cfg)))


def load_base(path: Path):
    """Load (model, tokenizer, cfg) written by :func:`save_base`."""
    from transformers import LlavaForConditionalGeneration, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    cfg = ModelConfig(**json.loads((path / "minivqa_model.json").read_text()))
    hf_logging.disable_progress_bar()  # a progress bar per submission is noise in the agent's terminal
    model = LlavaForConditionalGeneration.from_pretrained(path)
    model.eval()
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    return model, tok, cfg


def make_encoder(tok, cfg: ModelConfig) -> ConversationEncoder:
    """The conversation encoder matching this model's tokenizer and image tokens."""
    return ConversationEncoder(tok, tok.convert_tokens_to_ids("<image>"), cfg.image_seq_length, CHAT, cfg.max_length)


def answer_tokens(tok, text: str) -> tuple[str, ...]:
    """Normalised answer for exact-match scoring: the token sequence, lower-cased, no trailing period."""
    pieces = [t for t in tok.tokenize(text.strip())]
    while pieces and pieces[-1] in (".", "</s>"):
        pieces.pop()
    return tuple(p.lower() for p in pieces)

