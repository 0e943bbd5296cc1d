"""Leakage audit: evaluation items in a submission are refused, by count (never by id), however disguised."""

from __future__ import annotations

import numpy as np
import pytest

from curbench_env.audit import LeakageAudit, LeakageIndex, PictureKey, image_hash, normalise_for_audit
from curbench_env.errors import CurbenchError, LeakageError


def test_normalisation_ignores_case_punctuation_and_image_token():
    assert normalise_for_audit("<image>\nWhat  colour is IT?") == normalise_for_audit("what colour is it")


def test_text_leak_is_found_after_normalisation(tmp_path):
    index = LeakageIndex()
    index.add_text("How many circles are there?\n3")
    report = LeakageAudit(index).check([("a", None, ["<image>\nhow many circles are there\n3"]), ("b", None, ["x"])])
    assert list(report.leaked) == ["a"] and report.checked == 2


def test_image_leak_is_found_by_content_hash():
    index = LeakageIndex()
    index.add_image(image_hash(b"pixels"))
    report = LeakageAudit(index).check([("a", image_hash(b"pixels"), []), ("b", image_hash(b"other"), [])])
    assert list(report.leaked) == ["a"]


def test_enforce_reports_how_many_not_which():
    index = LeakageIndex()
    index.add_image("h")
    audit = LeakageAudit(index)
    with pytest.raises(LeakageError) as exc:
        audit.enforce(audit.check([("x1", "h", []), ("x2", "other", [])]))
    assert exc.value.leaked_ids == ["x1"]  # kept for the harness
    assert "x1" not in str(exc.value) and "1 of 2" in str(exc.value) and not exc.value.problems


QUESTION = "Which of the following statements best describes the relationship shown in the diagram above?"


@pytest.mark.parametrize("disguised", [
    [QUESTION.upper()],
    ["  which of the following   statements, best describes the relationship shown; in the diagram above "],
    [QUESTION.replace(" ", " \u200b", 5)],                                    # zero-width spaces
    [QUESTION.replace("o", "\u043e").replace("a", "\u0430")],                  # Cyrillic look-alikes
    ["\uff37hich of the following statements best describes the relationship shown in the diagram above?"],
    ["Which of the following statements", "best describes the relationship shown in the diagram above?"],  # turns
    [QUESTION.replace("best", "most accurately"), "Answer with the letter."],   # a word edited
    ["<image>\nLook closely. " + QUESTION + " Think step by step."],           # wrapped in other text
])
def test_a_disguised_evaluation_question_is_still_found(disguised):
    index = LeakageIndex()
    index.add_text(QUESTION)
    report = LeakageAudit(index).check([("a", None, disguised)])
    assert "a" in report.leaked


def test_an_unrelated_question_on_the_same_topic_passes():
    index = LeakageIndex()
    index.add_text(QUESTION)
    clean = ["Which statement describes the chart in the figure?", "What does the diagram show about rainfall?"]
    assert LeakageAudit(index).check([("b", None, clean)]).clean


def _photo(seed: int):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8, 3)).astype(np.float64)
    return np.kron(coarse, np.ones((16, 16, 1))).clip(0, 255).astype(np.uint8)  # 128x128, blocky like a photo


def test_a_picture_with_one_pixel_changed_or_recompressed_is_found():
    from PIL import Image

    eval_pic = _photo(0)
    index = LeakageIndex()
    index.add_image(PictureKey.of(eval_pic))
    one_pixel = eval_pic.copy()
    one_pixel[5, 7] = 255 - one_pixel[5, 7]
    resized = np.asarray(Image.fromarray(eval_pic).resize((96, 96)).resize((128, 128)))
    report = LeakageAudit(index).check([("px", PictureKey.of(one_pixel), []), ("rs", PictureKey.of(resized), []),
                                        ("other", PictureKey.of(_photo(1)), [])])
    assert set(report.leaked) == {"px", "rs"}


def test_an_index_from_an_older_curbench_is_refused_with_the_fix(tmp_path):
    (tmp_path / "old.json").write_text('{"image_hashes": [], "text_hashes": ["abc"]}')
    with pytest.raises(CurbenchError, match="build-leakage-index"):
        LeakageIndex.load(tmp_path / "old.json")


def test_index_round_trips_through_json(tmp_path):
    index = LeakageIndex()
    index.add_text("q")
    index.add_image("h")
    index.save(tmp_path / "i.json")
    assert LeakageIndex.load(tmp_path / "i.json") == index
