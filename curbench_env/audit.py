"""Contamination control: an exact-hash index of the evaluation sets, checked before training."""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curbench_env.errors import LeakageError

_PUNCT = str.maketrans("", "", string.punctuation)
_WS = re.compile(r"\s+")


def normalise_for_audit(text: str) -> str:
    """Lower-case, drop the ``<image>`` token, punctuation and repeated whitespace."""
    text = text.replace("<image>", " ").lower().translate(_PUNCT)
    return _WS.sub(" ", text).strip()


def text_hash(text: str) -> str:
    """Hash of the normalised text."""
    return hashlib.sha256(normalise_for_audit(text).encode()).hexdigest()[:32]


def image_hash(data: bytes | np.ndarray) -> str:
    """Hash of an image's content: its decoded pixels (an array) where the caller has them, else file bytes."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class LeakageIndex:
    """Hashes of every evaluation item's image and text. Tasks fill it; it never enters the workspace."""

    image_hashes: set[str] = field(default_factory=set)
    text_hashes: set[str] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        """Index one evaluation text (a question, or a question and its answer)."""
        self.text_hashes.add(text_hash(text))

    def add_image(self, content_hash: str) -> None:
        """Index one evaluation image by its :func:`image_hash`."""
        self.image_hashes.add(content_hash)

    def __len__(self) -> int:
        return len(self.image_hashes) + len(self.text_hashes)

    def save(self, path: Path) -> None:
        """Write the index as JSON."""
        path.write_text(json.dumps({"image_hashes": sorted(self.image_hashes),
                                    "text_hashes": sorted(self.text_hashes)}))

    @classmethod
    def load(cls, path: Path) -> LeakageIndex:
        """Read an index written by :meth:`save`."""
        data = json.loads(path.read_text())
        return cls(set(data["image_hashes"]), set(data["text_hashes"]))


@dataclass
class AuditReport:
    """What the audit found for one submission."""

    checked: int
    leaked: dict[str, list[str]] = field(default_factory=dict)  # id -> reasons

    @property
    def clean(self) -> bool:
        return not self.leaked

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "clean": self.clean, "leaked": self.leaked}


class LeakageAudit:
    """Checks a selection's images and texts against a :class:`LeakageIndex`."""

    def __init__(self, index: LeakageIndex) -> None:
        self.index = index

    def check(self, items: Iterable[tuple[str, str | None, Iterable[str]]]) -> AuditReport:
        """``items`` yields (id, image content hash or None, texts); returns the report."""
        report = AuditReport(checked=0)
        for id_, img, texts in items:
            report.checked += 1
            reasons = []
            if img is not None and img in self.index.image_hashes:
                reasons.append("image is in an evaluation set")
            for t in texts:
                if text_hash(t) in self.index.text_hashes:
                    reasons.append(f"text is in an evaluation set: {t[:60]!r}")
            if reasons:
                report.leaked[id_] = reasons
        return report

    def enforce(self, report: AuditReport) -> None:
        """Raise :class:`LeakageError` naming the offending ids when the report is not clean."""
        if report.clean:
            return
        ids = sorted(report.leaked)
        shown = ", ".join(ids[:10]) + (f" ... and {len(ids) - 10} more" if len(ids) > 10 else "")
        raise LeakageError(
            f"refused: {len(ids)} example(s) overlap the held-out evaluation data (contamination): {shown}. "
            "Remove them and submit again.",
            leaked_ids=ids,
        )


def conversation_texts(record: Mapping[str, Any]) -> list[str]:
    """The texts of a LLaVA-format record that the audit checks: each human turn with its answer."""
    conv = record.get("conversations") or []
    out = []
    for k in range(0, len(conv) - 1, 2):
        out.append(f"{conv[k].get('value', '')}\n{conv[k + 1].get('value', '')}")
    return out
