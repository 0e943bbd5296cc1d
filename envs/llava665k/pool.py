"""LLaVA-665K pools: ``llava_v1_5_mix665k.json`` plus an image root, or a Hugging Face
``datasets`` Arrow directory (``save_to_disk``), the format of the public curation-bench
baselines.

Loading is lazy where it can be: the JSON array is decoded with msgspec into ids, image paths
and *raw* conversation bytes (parsed only for records that are used), so 665k records load in a
few seconds and the peak memory is about the file's size. Arrow datasets are memory-mapped.

Ids: the JSON's ``id`` values, except that LLaVA-665K repeats some (COCO rows of LLaVA-Instruct
and VQAv2 share an image id); the k-th repeat of an id gets the suffix ``-k``, in file order, so
every record has one stable id. Arrow datasets without an ``id`` column use the row number.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from curbench_env.errors import TaskUnavailable
from curbench_env.submission import PoolIndex

#: Image directories of LLaVA-665K (``image`` path prefixes) → source name.
SOURCES = ("coco", "gqa", "ocr_vqa", "textvqa", "vg")


def source_of(image: str | None) -> str:
    """The source of a record from its image path: coco, gqa, ocr_vqa, textvqa, vg, other, or
    ``text`` for text-only records (ShareGPT)."""
    if not image:
        return "text"
    head = image.replace("\\", "/").lstrip("./").split("/", 1)[0]
    return head if head in SOURCES else "other"


class _Row(msgspec.Struct):
    conversations: msgspec.Raw
    id: str | int | None = None
    image: str | None = None


def unique_ids(raw: Iterable[str]) -> list[str]:
    """The ids made unique: the k-th repeat of an id becomes ``id-k``."""
    seen: Counter[str] = Counter()
    taken = set()
    out = []
    for i in raw:
        k = seen[i]
        seen[i] += 1
        new = i if k == 0 else f"{i}-{k}"
        while new in taken:
            k += 1
            new = f"{i}-{k}"
        taken.add(new)
        out.append(new)
    return out


class LlavaPool:
    """A LLaVA-format candidate pool: ids, image paths, sources and lazily decoded records."""

    def __init__(self, ids: list[str], images: list[str | None], conversations: Callable[[int], list[dict[str, str]]],
                 *, origin: Path, image_root: Path | None = None,
                 picture: Callable[[int], Any] | None = None) -> None:
        self.ids = ids
        self.images = images
        self.origin = origin
        self.image_root = image_root
        self._conversations = conversations
        self._picture = picture
        self._row = {i: k for k, i in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, id_: str) -> int:
        return self._row[id_]

    def sources(self) -> Counter[str]:
        """How many records each source has."""
        return Counter(source_of(p) for p in self.images)

    def record(self, id_: str) -> dict[str, Any]:
        """The record in LLaVA-665K's format (``id``, ``image`` when it has one, ``conversations``)."""
        k = self._row[id_]
        rec: dict[str, Any] = {"id": id_}
        if self.images[k]:
            rec["image"] = self.images[k]
        rec["conversations"] = self._conversations(k)
        return rec

    def index(self) -> PoolIndex:
        """What submission validation needs."""
        return PoolIndex(self.ids, self.record)

    def image_path(self, id_: str) -> Path | None:
        """The picture's file under the image root (None for text-only records or Arrow images)."""
        rel = self.images[self._row[id_]]
        if not rel or self.image_root is None:
            return None
        return self.image_root / rel

    def load_image(self, id_: str):
        """The record's picture as an RGB PIL image (None for text-only records)."""
        from PIL import Image

        k = self._row[id_]
        if self._picture is not None:
            value = self._picture(k)
            if isinstance(value, bytes):
                return Image.open(io.BytesIO(value)).convert("RGB")
            if value is not None:
                return value.convert("RGB")
        path = self.image_path(id_)
        if path is None:
            return None
        if not path.exists():
            raise FileNotFoundError(f"image {self.images[k]!r} of record {id_!r} is not under the image root "
                                    f"{self.image_root} (expected {path})")
        return Image.open(path).convert("RGB")


def load_json_pool(path: Path, image_root: Path | None = None) -> LlavaPool:
    """``llava_v1_5_mix665k.json`` (one JSON array of records) and its image root."""
    path = Path(path)
    data = path.read_bytes()
    try:
        rows = msgspec.json.decode(data, type=list[_Row])
    except msgspec.ValidationError as exc:
        raise TaskUnavailable(f"{path} is not a LLaVA-format JSON array of records ({exc})") from None
    except msgspec.DecodeError as exc:
        raise TaskUnavailable(f"{path} is not valid JSON ({exc})") from None
    ids = unique_ids(str(r.id) if r.id is not None else str(k) for k, r in enumerate(rows))
    images = [r.image for r in rows]
    raw = [r.conversations for r in rows]
    del rows

    def conversations(k: int) -> list[dict[str, str]]:
        return msgspec.json.decode(raw[k])

    return LlavaPool(ids, images, conversations, origin=path, image_root=image_root)


def _cauldron_turns(texts: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for k, t in enumerate(texts):
        user = t.get("user", "")
        out.append({"from": "human", "value": f"<image>\n{user}" if k == 0 and "<image>" not in user else user})
        out.append({"from": "gpt", "value": t.get("assistant", "")})
    return out


def load_arrow_pool(path: Path, image_root: Path | None = None) -> LlavaPool:
    """A ``datasets`` Arrow directory: LLaVA columns (``id``, ``image``, ``conversations``) or
    the_cauldron's (``texts`` of user/assistant turns, ``images``)."""
    try:
        import datasets
    except ImportError:
        raise TaskUnavailable("reading an Arrow pool needs `datasets`: pip install 'curbench-env[llava]'") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    cols = set(ds.column_names)
    if not ({"conversations"} <= cols or {"texts"} <= cols):
        raise TaskUnavailable(f"{path}: an Arrow pool needs a `conversations` or a `texts` column; it has "
                              f"{', '.join(sorted(cols))}")
    ids = unique_ids(map(str, ds["id"])) if "id" in cols else [str(k) for k in range(len(ds))]
    path_col = "image" in cols and isinstance(ds.features["image"], datasets.Value)
    images: list[str | None] = list(ds["image"]) if path_col else [None] * len(ds)
    picture_col = "images" if "images" in cols else ("image" if "image" in cols and not path_col else None)
    if picture_col is not None:
        # An image-bearing row whose picture lives in the dataset: the path only names it.
        images = [p or f"arrow/{i}" for p, i in zip(images, ids, strict=True)]
    text_col = "conversations" if "conversations" in cols else "texts"
    # One column each, so reading a record's text never decodes its pictures.
    texts = ds.select_columns([text_col])
    pictures = ds.select_columns([picture_col]) if picture_col is not None else None

    def conversations(k: int) -> list[dict[str, str]]:
        value = texts[k][text_col]
        return value if text_col == "conversations" else _cauldron_turns(value)

    def picture(k: int):
        value = pictures[k][picture_col]  # type: ignore[index]
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):
            value = value.get("bytes")
        return value

    return LlavaPool(ids, images, conversations, origin=Path(path), image_root=image_root,
                     picture=picture if picture_col else None)


def load_pool(path: str | Path, image_root: str | Path | None = None) -> LlavaPool:
    """A pool from a JSON file or an Arrow directory (clear errors for anything else)."""
    path = Path(path).expanduser()
    root = Path(image_root).expanduser() if image_root else None
    if not path.exists():
        raise TaskUnavailable(f"the LLaVA-665K pool {path} does not exist; download llava_v1_5_mix665k.json "
                              "(huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K) and pass its path")
    if root is not None and not root.is_dir():
        raise TaskUnavailable(f"the image root {root} is not a directory (it should hold coco/, gqa/, ocr_vqa/, "
                              "textvqa/ and vg/)")
    if path.is_dir():
        return load_arrow_pool(path, root)
    return load_json_pool(path, root)
