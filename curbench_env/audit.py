"""Contamination control: an index of the evaluation sets, checked before training.

Texts are compared after a normalisation that defeats cosmetic edits (Unicode NFKC, case,
accents, zero-width and other format characters, common Cyrillic/Greek look-alikes, punctuation,
whitespace), exactly and as near-duplicates: an evaluation text counts as contained in a record
when 60% of its word 4-grams occur in the record's turns read together, so splitting a question
across turns or editing a word does not hide it. Pictures are compared by content hash and, where
the index has them, by a perceptual hash within a small Hamming distance (a changed pixel, a
re-encode or a resize does not hide a picture).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curbench_env.errors import CurbenchError, LeakageError

INDEX_VERSION = 2
SHINGLE_WORDS = 4
#: An evaluation text is contained in a record when this share of its word 4-grams are there.
CONTAINMENT = 0.6
#: Perceptual hashes (64 bits) at most this many bits apart are the same picture.
PHASH_MAX_DISTANCE = 6
MIN_PHASH_SIDE = 64

# Letters that render like Latin ones (Cyrillic, Greek, a few IPA), after case folding.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ԛ": "q",
    "ԝ": "w", "ɡ": "g", "ɑ": "a", "ι": "i", "α": "a", "β": "b", "ε": "e", "η": "n", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
})
_WS = re.compile(r"\s+")


def normalise_for_audit(text: str) -> str:
    """The comparable form of a text: no ``<image>`` token, formatting, case, accents, look-alike
    letters or punctuation; words separated by single spaces."""
    text = unicodedata.normalize("NFKD", text.replace("<image>", " ").casefold())
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Mn", "Cf", "Cc") and ch not in "\n\t":  # accents, zero-width and control characters
            continue
        kept.append(" " if cat[0] in "PSZ" or ch in "\n\t" else ch)
    text = unicodedata.normalize("NFKC", "".join(kept)).casefold().translate(_CONFUSABLES)
    return _WS.sub(" ", text).strip()


def _digest(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def text_hash(text: str) -> str:
    """Hash of the normalised text."""
    return _digest(normalise_for_audit(text))


def _shingles(words: list[str]) -> set[str]:
    return {hashlib.sha1(" ".join(words[k:k + SHINGLE_WORDS]).encode()).hexdigest()[:16]
            for k in range(len(words) - SHINGLE_WORDS + 1)}


def image_hash(data: bytes | np.ndarray) -> str:
    """Hash of an image's content: its decoded pixels (an array) where the caller has them, else file bytes."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(data).hexdigest()[:32]


def perceptual_hash(image: Any) -> int:
    """A 64-bit perceptual hash (imagehash's pHash) of a PIL image or an HxWx3 uint8 array."""
    import imagehash
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    return int(str(imagehash.phash(image.convert("RGB"))), 16)


@dataclass(frozen=True)
class PictureKey:
    """What the audit compares of a picture: its content hash and, optionally, its perceptual hash."""

    exact: str
    perceptual: int | None = None

    @classmethod
    def of(cls, pixels: np.ndarray, perceptual: bool = True) -> PictureKey:
        """The key of decoded RGB pixels (HxWx3 uint8). Pictures smaller than
        :data:`MIN_PHASH_SIDE` get no perceptual hash: scaled up to pHash's 32x32 grid, small flat
        synthetic pictures collide (in MiniVQA's 32x32 world, 2,715 of 15,961 pool pictures share a
        pHash with some evaluation picture they are not a copy of)."""
        small = min(pixels.shape[:2]) < MIN_PHASH_SIDE
        return cls(image_hash(pixels), perceptual_hash(pixels) if perceptual and not small else None)


@dataclass
class LeakageIndex:
    """Hashes of every evaluation item's picture and text. Tasks fill it; it never enters the workspace."""

    image_hashes: set[str] = field(default_factory=set)
    text_hashes: set[str] = field(default_factory=set)
    image_phashes: list[int] = field(default_factory=list)
    #: 4-gram hash → indices of the evaluation texts that contain it; and each text's 4-gram count.
    shingles: dict[str, list[int]] = field(default_factory=dict)
    shingle_counts: list[int] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        """Index one evaluation text (a question, or a question and its answer)."""
        norm = normalise_for_audit(text)
        self.text_hashes.add(_digest(norm))
        grams = _shingles(norm.split())
        if grams:
            item = len(self.shingle_counts)
            self.shingle_counts.append(len(grams))
            for g in grams:
                self.shingles.setdefault(g, []).append(item)

    def add_image(self, key: PictureKey | str) -> None:
        """Index one evaluation picture (a :class:`PictureKey`, or a bare content hash)."""
        key = PictureKey(key) if isinstance(key, str) else key
        self.image_hashes.add(key.exact)
        if key.perceptual is not None:
            self.image_phashes.append(key.perceptual)

    def __len__(self) -> int:
        return len(self.image_hashes) + len(self.text_hashes)

    def save(self, path: Path) -> None:
        """Write the index as JSON."""
        path.write_text(json.dumps({
            "version": INDEX_VERSION, "image_hashes": sorted(self.image_hashes),
            "text_hashes": sorted(self.text_hashes), "image_phashes": [f"{h:016x}" for h in self.image_phashes],
            "shingles": self.shingles, "shingle_counts": self.shingle_counts}))

    @classmethod
    def load(cls, path: Path) -> LeakageIndex:
        """Read an index written by :meth:`save`; an index from an older curbench is refused when its
        text hashes would no longer match (rebuild it)."""
        data = json.loads(path.read_text())
        if data.get("version", 1) < INDEX_VERSION and data.get("text_hashes"):
            raise CurbenchError(f"{path} was built by an older curbench (its text hashes use another "
                                "normalisation); rebuild it: curbench build-leakage-index")
        return cls(set(data["image_hashes"]), set(data["text_hashes"]),
                   [int(h, 16) for h in data.get("image_phashes", [])], dict(data.get("shingles", {})),
                   list(data.get("shingle_counts", [])))


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

    def check(self, items: Iterable[tuple[str, PictureKey | str | None, Iterable[str]]]) -> AuditReport:
        """``items`` yields (id, picture key or content hash or None, texts); returns the report."""
        report = AuditReport(checked=0)
        phashes = np.array(self.index.image_phashes, dtype=np.uint64)
        for id_, img, texts in items:
            report.checked += 1
            reasons = self._picture_reasons(PictureKey(img) if isinstance(img, str) else img, phashes)
            reasons += self._text_reasons([t for t in texts if t])
            if reasons:
                report.leaked[id_] = reasons
        return report

    def _picture_reasons(self, key: PictureKey | None, phashes: np.ndarray) -> list[str]:
        if key is None:
            return []
        if key.exact in self.index.image_hashes:
            return ["image is in an evaluation set"]
        if key.perceptual is not None and len(phashes):
            bits = np.unpackbits((phashes ^ np.uint64(key.perceptual)).view(np.uint8)).reshape(len(phashes), 64)
            if int(bits.sum(axis=1).min()) <= PHASH_MAX_DISTANCE:
                return ["image is a near copy of an evaluation picture"]
        return []

    def _text_reasons(self, texts: list[str]) -> list[str]:
        norms = [normalise_for_audit(t) for t in texts]
        together = " ".join(norms)  # across turn boundaries
        for norm in [*norms, together]:
            if _digest(norm) in self.index.text_hashes:
                return ["text is in an evaluation set"]
        if not self.index.shingles:
            return []
        hits: Counter[int] = Counter()
        for g in _shingles(together.split()):
            hits.update(self.index.shingles.get(g, ()))
        for item, n in hits.items():
            if n >= math.ceil(CONTAINMENT * self.index.shingle_counts[item]):
                return ["text nearly contains an evaluation item"]
        return []

    def enforce(self, report: AuditReport) -> None:
        """Raise :class:`LeakageError` naming the offending ids when the report is not clean."""
        if report.clean:
            return
        ids = sorted(report.leaked)
        # Counts only: naming the ids would make the audit an oracle for which pool records are eval items.
        raise LeakageError(
            f"refused: {len(ids)} of {report.checked} example(s) overlap the held-out evaluation data "
            "(contamination: the same or nearly the same picture or text as an evaluation item).",
            leaked_ids=ids,
        )


def conversation_texts(record: Mapping[str, Any]) -> list[str]:
    """The texts of a LLaVA-format record that the audit checks: each human turn with its answer
    (the audit also reads them together, across turn boundaries)."""
    conv = record.get("conversations") or []
    out = []
    for k in range(0, len(conv) - 1, 2):
        out.append(f"{conv[k].get('value', '')}\n{conv[k + 1].get('value', '')}")
    return out
