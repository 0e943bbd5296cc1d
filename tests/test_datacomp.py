"""Curation-DataCompSmall-v0's code path at tiny scale: uids, DataComp's subset format,
resharding webdataset tars, and open_clip_train launched by torchrun (CPU, a tiny local model).
DataComp's evaluate.py lives in its repository (not on PyPI): only its boundary is tested here."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

pytest.importorskip("open_clip_train")
pytest.importorskip("pyarrow")

from curbench_env.envs.datacomp.pipeline import (  # noqa: E402
    DataCompPipeline,
    DataCompSettings,
    UidIndex,
    aggregate,
    load_uids,
    reshard,
    uid_pairs,
)

from curbench_env.errors import TaskUnavailable  # noqa: E402
from curbench_env.submission import Selection  # noqa: E402


def _make_pool(root, n_shards=2, per_shard=48, seed=0):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from curbench_env.envs.minivqa.scenes import random_scene, render
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "shards").mkdir(parents=True)
    (root / "metadata").mkdir()
    rows = []
    for s in range(n_shards):
        with tarfile.open(root / "shards" / f"{s:08d}.tar", "w") as tar:
            for k in range(per_shard):
                uid = rng.bytes(16).hex()
                scene = random_scene(rng)
                buf = io.BytesIO()
                Image.fromarray(render(scene, rng)).save(buf, format="JPEG")
                key = f"{s:04d}{k:04d}"
                for ext, data in (("jpg", buf.getvalue()), ("txt", scene.caption().encode()),
                                  ("json", json.dumps({"uid": uid}).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rows.append({"uid": uid, "text": scene.caption(), "clip_b32_similarity_score": float(rng.random())})
    pq.write_table(pa.Table.from_pylist(rows), root / "metadata" / "0.parquet")
    return [r["uid"] for r in rows]


def test_uid_index_and_reshard_keep_exactly_the_subset(tmp_path):
    uids = _make_pool(tmp_path / "pool")
    index = UidIndex(load_uids(tmp_path / "pool" / "metadata"))
    assert len(index) == 96 and uids[5] in index and "0" * 32 not in index and "xyz" not in index
    assert sorted(index.ids) == sorted(uids)
    subset = uid_pairs(uids[::3])
    assert subset.tolist() == sorted(subset.tolist())
    kept = reshard(sorted((tmp_path / "pool" / "shards").glob("*.tar")), subset, tmp_path / "out", workers=2)
    assert kept == 32
    got = set()
    for shard in sorted((tmp_path / "out").glob("*.tar")):
        with tarfile.open(shard) as tar:
            got |= {json.loads(tar.extractfile(m).read())["uid"] for m in tar if m.name.endswith(".json")}
    assert got == set(uids[::3])


def test_aggregate_reads_datacomp_eval_results(tmp_path):
    p = tmp_path / "eval_results.jsonl"
    # The rows DataComp's evaluate.py appends (key, dataset, metrics with main_metric).
    p.write_text('{"key": "imagenet1k", "dataset": "ImageNet 1k", "metrics": {"acc1": 0.051, "main_metric": 0.051}}\n'
                 '{"key": "fairness/fairface", "dataset": "FairFace", "metrics": {"main_metric": null}}\n'
                 '{"key": "cars", "dataset": "Stanford Cars", "metrics": {"main_metric": 0.1}}\n')
    assert aggregate(p) == {"imagenet1k": 5.1, "cars": 10.0}


def test_reset_names_what_is_missing(monkeypatch):
    for var in ("CURBENCH_DATACOMP_DIR", "CURBENCH_DATACOMP_REPO", "CURBENCH_DATACOMP_EVALSETS"):
        monkeypatch.delenv(var, raising=False)
    from curbench_env.envs.datacomp.task import DataCompSmallTask

    with pytest.raises(TaskUnavailable) as err:
        DataCompSmallTask().prepare()
    for what in ("CURBENCH_DATACOMP_DIR", "CURBENCH_DATACOMP_EVALSETS",
                 "download_evalsets.py"):
        assert what in str(err.value)


@pytest.mark.slow
def test_open_clip_training_runs_through_torchrun_on_the_resharded_subset(tmp_path):
    uids = _make_pool(tmp_path / "pool")
    model = tmp_path / "tiny-clip"
    model.mkdir()
    (model / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1,
                                                      "head_width": 16},
                      "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
        "preprocess_cfg": {"mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28]}}))
    config = tmp_path / "tiny_datacomp.json"
    config.write_text(json.dumps({"model": f"local-dir:{model}", "samples_seen": 128, "num_checkpoints": 1,
                                  "global_batch_size": 16, "learning_rate": 5e-4, "warmup": 2, "precision": "fp32",
                                  "workers": 0, "device": "cpu", "extra_args": []}))
    pipe = DataCompPipeline(DataCompSettings(pool_dir=tmp_path / "pool", config=config, nproc_per_node=1,
                                             reshard_workers=1))
    experiment = pipe.train(Selection(ids=uids[:40]), tmp_path / "work", seed=0)
    log = (tmp_path / "work" / "train.log").read_text()
    assert "torch.distributed.run" in log and "open_clip" in log.lower()
    assert (experiment / "checkpoints" / "epoch_latest.pt").exists(), log[-2000:]
    import pickle

    info = pickle.loads((experiment / "info.pkl").read_bytes())  # what DataComp's evaluate.py reads
    assert info["scale_config"]["model"].startswith("local-dir:") and info["checkpoint"].endswith("epoch_latest.pt")
    # The base score evaluates a random-init checkpoint the same way; without evaluation sets it
    # stops at that boundary with the reason.
    from curbench_env.errors import PipelineError

    with pytest.raises(PipelineError, match="evaluation sets"):
        pipe.base_result(0)
    from curbench_env.pipeline import curbench_home

    base = curbench_home() / "datacomp" / "base" / f"{pipe.fingerprint()}-s0" / "run"
    assert (base / "checkpoints" / "epoch_latest.pt").exists() and (base / "info.pkl").exists()
    assert json.loads((tmp_path / "work" / "reshard.json").read_text())["kept"] == 40
