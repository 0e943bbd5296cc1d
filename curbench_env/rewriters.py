"""Rewriter backends behind :class:`curbench_env.rewrite.Rewriter`: any litellm model (a hosted MLLM or a
local vLLM / OpenAI-compatible server serving e.g. Qwen-VL) and a local transformers model by path.

Both send the record's picture the way their API expects (litellm: an OpenAI-style ``image_url``
content part holding a base64 data URL, which litellm translates per provider; transformers: the
chat template's ``image`` part) and ask for the conversation back as a JSON array of turns
(:data:`~curbench_env.rewrite.OUTPUT_INSTRUCTION`).
"""

from __future__ import annotations

import base64
import mimetypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from curbench_env.errors import CurbenchError, TaskUnavailable
from curbench_env.rewrite import OUTPUT_INSTRUCTION, RewriteJob, RewriteOutput, Rewriter, parse_conversations

MAX_IMAGE_BYTES = 20 << 20


def image_part(path: Path) -> dict[str, Any]:
    """An OpenAI-style image content part: the picture as a base64 data URL."""
    data = path.read_bytes()[:MAX_IMAGE_BYTES]
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


class LiteLLMRewriter:
    """Rewrites through ``litellm.completion`` (``model``: any litellm model string, e.g.
    ``openai/Qwen/Qwen2.5-VL-7B-Instruct`` with ``api_base`` a local vLLM server)."""

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None,
                 max_tokens: int = 1024, temperature: float = 0.0, timeout_s: float = 120.0, workers: int = 4) -> None:
        self.model = model
        self.name = f"litellm:{model}"
        self.api_base, self.api_key = api_base, api_key
        self.max_tokens, self.temperature, self.timeout_s, self.workers = max_tokens, temperature, timeout_s, workers

    def messages(self, job: RewriteJob) -> list[dict[str, Any]]:
        """The chat messages for one record: the output contract, then the agent's prompt and the picture."""
        content: list[dict[str, Any]] = [{"type": "text", "text": job.prompt}]
        if job.image is not None and job.image.is_file():
            content.append(image_part(job.image))
        return [{"role": "system", "content": OUTPUT_INSTRUCTION}, {"role": "user", "content": content}]

    def rewrite(self, jobs: list[RewriteJob]) -> list[RewriteOutput]:
        """One completion per record (a few in parallel); a record whose call fails is an error output,
        but if every call fails to reach the model the whole request is refused (nothing spent)."""
        try:
            import litellm
        except ImportError:
            raise CurbenchError("the litellm rewriter needs litellm: pip install litellm") from None
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            outputs = list(pool.map(lambda job: self._one(litellm, job), jobs))
        if outputs and all(o.error and o.error.startswith("call failed") for o in outputs):
            raise CurbenchError(f"{self.name}: {outputs[0].error}")
        return outputs

    def _one(self, litellm: Any, job: RewriteJob) -> RewriteOutput:
        kwargs: dict[str, Any] = {"model": self.model, "messages": self.messages(job), "max_tokens": self.max_tokens,
                                  "temperature": self.temperature, "timeout": self.timeout_s, "num_retries": 1}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        try:
            resp = litellm.completion(**kwargs)
        except Exception as exc:  # provider errors come in many types; the message is what matters
            return RewriteOutput(id=job.id, error=f"call failed: {type(exc).__name__}: {str(exc)[:300]}")
        text = str(resp.choices[0].message.content or "")
        usage = getattr(resp, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=resp) or 0.0)
        except Exception:  # models without a price (local servers) cost nothing we can know
            cost = 0.0
        out = RewriteOutput(id=job.id, raw=text, cost_usd=cost,
                            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))
        try:
            out.conversations = parse_conversations(text, job.record)
        except ValueError as exc:
            out.error = str(exc)
        return out


class TransformersRewriter:
    """Rewrites with a local ``transformers`` image-text-to-text model (a directory or a cached hub id)."""

    def __init__(self, path: str, *, max_new_tokens: int = 512, device: str | None = None) -> None:
        self.path = path
        self.name = f"hf:{path}"
        self.max_new_tokens = max_new_tokens
        self.device = device

    def _pipeline(self) -> Any:
        if not hasattr(self, "_pipe"):
            try:
                from transformers import pipeline
            except ImportError:
                raise CurbenchError("the hf rewriter needs transformers: pip install transformers") from None
            try:
                self._pipe = pipeline("image-text-to-text", model=self.path, device=self.device)
            except Exception as exc:  # a missing path or an unsupported model: say which
                raise CurbenchError(f"cannot load the rewriter model {self.path!r}: {exc}") from None
        return self._pipe

    def rewrite(self, jobs: list[RewriteJob]) -> list[RewriteOutput]:
        """Generate one rewrite per record (greedy)."""
        pipe = self._pipeline()
        outputs = []
        for job in jobs:
            content: list[dict[str, Any]] = []
            if job.image is not None and job.image.is_file():
                from PIL import Image

                content.append({"type": "image", "image": Image.open(job.image).convert("RGB")})
            content.append({"type": "text", "text": f"{OUTPUT_INSTRUCTION}\n\n{job.prompt}"})
            try:
                got = pipe(text=[{"role": "user", "content": content}], max_new_tokens=self.max_new_tokens,
                           return_full_text=False)
                text = str(got[0]["generated_text"])
            except Exception as exc:
                outputs.append(RewriteOutput(id=job.id, error=f"generation failed: {type(exc).__name__}: {exc}"[:400]))
                continue
            out = RewriteOutput(id=job.id, raw=text, completion_tokens=len(text.split()))
            try:
                out.conversations = parse_conversations(text, job.record)
            except ValueError as exc:
                out.error = str(exc)
            outputs.append(out)
        return outputs


def rewriter_from_spec(spec: str, *, api_base: str | None = None) -> Rewriter:
    """A rewriter from a task argument: ``litellm:MODEL`` (or a bare litellm model string) or ``hf:PATH``."""
    kind, _, rest = spec.partition(":")
    if kind == "hf" and rest:
        return TransformersRewriter(rest)
    if kind == "litellm" and rest:
        return LiteLLMRewriter(rest, api_base=api_base)
    if not spec or spec == "sim":
        raise TaskUnavailable(f"rewriter {spec!r} is not a model: use litellm:MODEL or hf:PATH")
    return LiteLLMRewriter(spec, api_base=api_base)
