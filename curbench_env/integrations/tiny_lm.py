"""A tiny tool-calling chat LM built offline: what the TRL example and tests train at toy scale.

No hub download: a byte-level BPE tokenizer is trained on the texts given (the episode's brief, the
tool schemas, example commands), wrapped with Qwen3's chat template as TRL ships it (so TRL's tool-call
parser recognises it), and a Qwen3-shaped causal LM of a few hundred thousand parameters is built
from a config. On a GPU, pass a real model path to the example instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Special tokens of the Qwen3 chat format (and its tool-call markers).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>",
                  "</tool_response>", "<think>", "</think>"]


def qwen3_chat_template() -> str:
    """Qwen3's chat template exactly as TRL ships it (TRL matches templates by their text)."""
    from trl.chat_template_utils import qwen3_chat_template as template

    return template


def build_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> Any:
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` with the Qwen3 chat template (left padding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left")
    fast.chat_template = qwen3_chat_template()
    return fast


def build_model(tokenizer: Any, *, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0) -> Any:
    """A randomly initialised Qwen3-shaped causal LM for ``tokenizer``."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         head_dim=hidden // heads, max_position_embeddings=4096, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=None)
    return Qwen3ForCausalLM(config)


def build_tiny_chat_lm(texts: Iterable[str], out_dir: str | Path | None = None, *, vocab_size: int = 2048,
                       hidden: int = 64, layers: int = 2, seed: int = 0) -> tuple[Any, Any]:
    """Tokenizer and model; saved to ``out_dir`` (``from_pretrained``-loadable) when given."""
    tokenizer = build_tokenizer(texts, vocab_size)
    model = build_model(tokenizer, hidden=hidden, layers=layers, seed=seed)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if out_dir is not None:
        tokenizer.save_pretrained(out_dir)
        model.save_pretrained(out_dir)
    return model, tokenizer
