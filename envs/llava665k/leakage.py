"""The contamination index of the real suite: every evaluation item's picture (decoded-pixel
hash) and question text, read through lmms-eval's own task definitions.

    curbench build-leakage-index Curation-LLaVA10k-v0 [--suite FILE] [--out FILE]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from curbench_env.audit import LeakageIndex, PictureKey
from curbench_env.errors import TaskUnavailable

#: Questions shorter than this are not indexed: "What color is the bus?" is in VQAv2's train
#: and val splits alike, so short questions would refuse clean data; pictures carry the check.
MIN_TEXT_WORDS = 12


def picture_key(image) -> PictureKey:
    """Content hash of a picture's decoded RGB pixels (the same for a JPEG and a PNG of the same pixels)
    and its perceptual hash (the same after a changed pixel, a re-encode or a resize)."""
    return PictureKey.of(np.asarray(image.convert("RGB")))


def build_index(suite_path: Path, out: Path, log: Callable[[str], None] = print) -> LeakageIndex:
    """Hash every test document of every suite task; write the index to ``out``."""
    from curbench_env.envs.llava665k.evaluate import Suite
    from lmms_eval.tasks import TaskManager, get_task_dict

    suite = Suite.load(suite_path)
    manager = TaskManager(include_path=suite.include_path) if suite.include_path else TaskManager()
    index = LeakageIndex()
    for t in suite.tasks:
        try:
            task = get_task_dict([t.task], manager)[t.task]
        except Exception as exc:  # lmms-eval raises many kinds for a dataset it cannot reach
            raise TaskUnavailable(f"cannot load lmms-eval task {t.task!r} ({type(exc).__name__}: {exc}); its "
                                  "data must be available offline (download it once with network, or point the "
                                  "suite's include_path at local copies)") from None
        docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
        n = 0
        for doc in docs:
            for image in task.doc_to_visual(doc) or []:
                if hasattr(image, "convert"):
                    index.add_image(picture_key(image))
            question = doc.get("question") if isinstance(doc, dict) else None
            if isinstance(question, str) and len(question.split()) >= MIN_TEXT_WORDS:
                index.add_text(question)
            n += 1
        log(f"{t.name} ({t.task}): {n} items indexed")
    out.parent.mkdir(parents=True, exist_ok=True)
    index.save(out)
    return index
