"""Leakage audit: evaluation items in a submission are refused with the offending ids."""

from __future__ import annotations

import pytest

from curbench_env.audit import LeakageAudit, LeakageIndex, image_hash, normalise_for_audit
from curbench_env.errors import LeakageError


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


def test_enforce_raises_with_ids():
    index = LeakageIndex()
    index.add_image("h")
    audit = LeakageAudit(index)
    with pytest.raises(LeakageError) as exc:
        audit.enforce(audit.check([("x1", "h", [])]))
    assert exc.value.leaked_ids == ["x1"] and "x1" in str(exc.value)


def test_index_round_trips_through_json(tmp_path):
    index = LeakageIndex()
    index.add_text("q")
    index.add_image("h")
    index.save(tmp_path / "i.json")
    assert LeakageIndex.load(tmp_path / "i.json") == index
