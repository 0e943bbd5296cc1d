"""Submission parsing and validation: every bad input yields a precise message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curbench_env.errors import SubmissionError
from curbench_env.submission import PoolIndex, SubmissionRules, parse_submission

RECORDS = {
    f"id{k}": {"id": f"id{k}", "image": f"coco/{k}.jpg",
               "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]}
    for k in range(10)
}
POOL = PoolIndex(list(RECORDS), RECORDS.get)
RULES = SubmissionRules(budget=5, formats=("jsonl", "json", "txt", "npy"))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


def refused(path: Path, rules: SubmissionRules = RULES) -> str:
    with pytest.raises(SubmissionError) as exc:
        parse_submission(path, rules, POOL)
    return str(exc.value)


def test_jsonl_of_ids_is_accepted(tmp_path):
    sel = parse_submission(write(tmp_path, "a.jsonl", '{"id": "id1"}\n{"id": "id2"}\n'), RULES, POOL)
    assert sel.ids == ["id1", "id2"]


def test_text_file_of_ids_with_comments_is_accepted(tmp_path):
    sel = parse_submission(write(tmp_path, "a.txt", "# picks\nid3\n\nid4\n"), RULES, POOL)
    assert sel.ids == ["id3", "id4"]


def test_npy_of_uids_is_accepted(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.array(["id1", "id5"]))
    assert parse_submission(p, RULES, POOL).ids == ["id1", "id5"]


def test_unchanged_full_records_are_accepted_without_rewrite(tmp_path):
    p = write(tmp_path, "a.jsonl", json.dumps(RECORDS["id1"]) + "\n")
    sel = parse_submission(p, RULES, POOL)
    assert sel.ids == ["id1"] and sel.rewrites == {}


def test_malformed_json_names_the_line(tmp_path):
    msg = refused(write(tmp_path, "a.jsonl", '{"id": "id1"}\n{"id": \n'))
    assert "line 2: malformed JSON" in msg


def test_unknown_id_names_line_and_id(tmp_path):
    msg = refused(write(tmp_path, "a.jsonl", '{"id": "id1"}\n{"id": "ghost"}\n'))
    assert "line 2: unknown id 'ghost'" in msg


def test_duplicate_id_is_refused(tmp_path):
    msg = refused(write(tmp_path, "a.txt", "id1\nid1\n"))
    assert "line 2: duplicate id 'id1'" in msg


def test_duplicates_allowed_up_to_max_copies(tmp_path):
    rules = SubmissionRules(budget=5, max_copies=2)
    assert parse_submission(write(tmp_path, "a.txt", "id1\nid1\n"), rules, POOL).ids == ["id1", "id1"]
    assert "duplicate" in refused(write(tmp_path, "b.txt", "id1\nid1\nid1\n"), rules)


def test_over_budget_says_count_and_budget(tmp_path):
    msg = refused(write(tmp_path, "a.txt", "\n".join(f"id{k}" for k in range(7))))
    assert "7 examples selected; the budget is 5" in msg


def test_wrong_schema_missing_id(tmp_path):
    assert 'line 1: missing field "id"' in refused(write(tmp_path, "a.jsonl", '{"uid": "id1"}\n'))


def test_wrong_schema_unexpected_field(tmp_path):
    rec = dict(RECORDS["id1"], score=3)
    assert "unexpected field(s) score" in refused(write(tmp_path, "a.jsonl", json.dumps(rec) + "\n"))


def test_rewrite_refused_when_task_forbids_it(tmp_path):
    rec = json.loads(json.dumps(RECORDS["id1"]))
    rec["conversations"][1]["value"] = "better answer"
    assert "does not allow rewriting" in refused(write(tmp_path, "a.jsonl", json.dumps(rec) + "\n"))


def test_rewrite_kept_when_task_allows_it(tmp_path):
    rules = SubmissionRules(budget=5, allow_rewrite=True)
    rec = json.loads(json.dumps(RECORDS["id1"]))
    rec["conversations"][1]["value"] = "better answer"
    sel = parse_submission(write(tmp_path, "a.jsonl", json.dumps(rec) + "\n"), rules, POOL)
    assert sel.rewrites["id1"]["conversations"][1]["value"] == "better answer"


def test_new_image_path_is_refused(tmp_path):
    rules = SubmissionRules(budget=5, allow_rewrite=True)
    rec = dict(RECORDS["id1"], image="coco/elsewhere.jpg")
    assert "new image paths are not allowed" in refused(write(tmp_path, "a.jsonl", json.dumps(rec) + "\n"), rules)


def test_empty_file_is_refused(tmp_path):
    assert "empty" in refused(write(tmp_path, "a.jsonl", ""))


def test_binary_garbage_is_refused(tmp_path):
    assert "binary" in refused(write(tmp_path, "a.jsonl", bytes(range(256)) * 4))


def test_oversize_file_is_refused_without_reading_it(tmp_path):
    p = tmp_path / "big.jsonl"
    with open(p, "wb") as fh:
        fh.truncate(1 << 30)  # a sparse 1 GB file
    assert "limited to" in refused(p)


def test_unsupported_extension_lists_formats(tmp_path):
    assert "unsupported format '.csv'" in refused(write(tmp_path, "a.csv", "id1\n"))


def test_many_problems_are_summarised(tmp_path):
    msg = refused(write(tmp_path, "a.txt", "\n".join(f"ghost{k}" for k in range(30))))
    assert "30 problem(s)" in msg and "and 20 more" in msg


def test_content_hash_ignores_order(tmp_path):
    a = parse_submission(write(tmp_path, "a.txt", "id1\nid2\n"), RULES, POOL)
    b = parse_submission(write(tmp_path, "b.txt", "id2\nid1\n"), RULES, POOL)
    assert a.content_hash == b.content_hash
