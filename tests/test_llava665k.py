"""The real LLaVA setting at tiny scale: LLaVA-665K loaders, the boundaries, and one episode
through the same code path as on GPUs (deepspeed launcher + ZeRO-3 on CPU, lmms-eval's own
pope and mme tasks on local data, the adapter merged for evaluation)."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import pytest

pytest.importorskip("msgspec")

from curbench_env.envs.llava665k.pool import load_pool, source_of, unique_ids  # noqa: E402

from curbench_env.errors import TaskUnavailable  # noqa: E402


def _records() -> list[dict]:
    return [
        {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
         "conversations": [{"from": "human", "value": "<image>\nWhat color is the bus?"},
                           {"from": "gpt", "value": "White and red."}]},
        {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
         "conversations": [{"from": "human", "value": "<image>\nIs it a bus?\nAnswer the question using a single "
                                                       "word or phrase."}, {"from": "gpt", "value": "Yes"}]},
        {"id": "VG_100K/2317533", "image": "vg/VG_100K/2317533.jpg",
         "conversations": [{"from": "human", "value": "<image>\nProvide a short description for this region."},
                           {"from": "gpt", "value": "a man"}]},
        {"id": "M9Nb6So_0", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"id": 1451670761, "image": "ocr_vqa/images/1451670761.jpg",
         "conversations": [{"from": "human", "value": "<image>\nWho is the author?"}, {"from": "gpt", "value": "X"}]},
    ]


def test_json_pool_ids_sources_and_lazy_records(tmp_path):
    path = tmp_path / "llava_v1_5_mix665k.json"
    path.write_text(json.dumps(_records()))
    pool = load_pool(path)
    assert pool.ids == ["000000033471", "000000033471-1", "VG_100K/2317533", "M9Nb6So_0", "1451670761"]
    assert pool.sources() == {"coco": 2, "vg": 1, "text": 1, "ocr_vqa": 1}
    rec = pool.record("000000033471-1")
    assert rec["image"] == "coco/train2017/000000033471.jpg" and rec["conversations"][1]["value"] == "Yes"
    assert "image" not in pool.record("M9Nb6So_0")
    assert "VG_100K/2317533" in pool.index() and len(pool.index()) == 5


def test_source_and_unique_id_rules():
    assert source_of("./gqa/images/1.jpg") == "gqa" and source_of(None) == "text" and source_of("x/1.png") == "other"
    assert unique_ids(["a", "a", "a-1", "a"]) == ["a", "a-1", "a-1-1", "a-2"]


def test_malformed_or_missing_pools_say_what_is_wrong(tmp_path):
    with pytest.raises(TaskUnavailable, match="does not exist"):
        load_pool(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "1", "conversations": [}]')
    with pytest.raises(TaskUnavailable, match="not valid JSON"):
        load_pool(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"id": "1"}')
    with pytest.raises(TaskUnavailable, match="LLaVA-format JSON array"):
        load_pool(wrong)
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(TaskUnavailable, match="image root"):
        load_pool(tmp_path / "x.json", tmp_path / "no-images")


def test_arrow_pools_llava_columns_and_the_cauldron_style(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    recs = _records()
    ds = datasets.Dataset.from_list([{"id": str(r["id"]), "image": r.get("image", ""),
                                      "conversations": r["conversations"]} for r in recs])
    ds.save_to_disk(str(tmp_path / "llava_ds"))
    pool = load_pool(tmp_path / "llava_ds")
    assert pool.ids[1] == "000000033471-1" and pool.record("VG_100K/2317533")["conversations"][1]["value"] == "a man"
    assert pool.sources()["coco"] == 2

    img = Image.new("RGB", (8, 6), (200, 10, 10))
    cauldron = datasets.Dataset.from_dict(
        {"texts": [[{"user": "What color?", "assistant": "Red."}]], "images": [[img]]},
        features=datasets.Features({"texts": [{"user": datasets.Value("string"),
                                               "assistant": datasets.Value("string")}],
                                    "images": [datasets.Image()]}))
    cauldron.save_to_disk(str(tmp_path / "cauldron"))
    pool = load_pool(tmp_path / "cauldron")
    assert pool.ids == ["0"]
    assert pool.record("0")["conversations"] == [{"from": "human", "value": "<image>\nWhat color?"},
                                                 {"from": "gpt", "value": "Red."}]
    assert pool.load_image("0").getpixel((0, 0)) == (200, 10, 10)


def test_reset_without_gpu_weights_or_data_names_everything_missing(monkeypatch, tmp_path):
    for var in ("CURBENCH_LLAVA_POOL", "CURBENCH_LLAVA_IMAGES", "CURBENCH_LLAVA_MODEL"):
        monkeypatch.delenv(var, raising=False)
    env = gym.make("Curation-LLaVA10k-v0", run_dir=str(tmp_path / "run"))
    with pytest.raises(TaskUnavailable) as err:
        env.reset(seed=0)
    msg = str(err.value)
    for what in ("CURBENCH_LLAVA_POOL", "CURBENCH_LLAVA_IMAGES", "CURBENCH_LLAVA_MODEL", "build-leakage-index"):
        assert what in msg
    monkeypatch.setenv("CURBENCH_LLAVA_MODEL", str(tmp_path / "no-model"))
    from curbench_env.envs.llava665k.task import Llava10kTask

    assert any("no-model" in m and "HF_HUB_OFFLINE" in m for m in Llava10kTask(require_gpu=False).missing())


# -- the whole code path, tiny -------------------------------------------------------------------
TINY_RECIPE = {"lora": {"epochs": 1.0, "batch_size": 8, "learning_rate": 2e-4, "projector_lr": 2e-5, "lora_r": 8,
                        "lora_alpha": 16, "lora_dropout": 0.05, "warmup_ratio": 0.03, "max_length": 192},
               "per_device_batch_size": 4, "bf16": False, "gradient_checkpointing": False,
               "dataloader_num_workers": 0, "system_prompt": "A chat between a curious user and an assistant."}


@pytest.fixture(scope="module")
def tiny_setting(tmp_path_factory):
    pytest.importorskip("deepspeed")
    pytest.importorskip("lmms_eval")
    pytest.importorskip("peft")
    import pandas as pd
    from curbench_env.envs.llava665k import tiny

    root = tmp_path_factory.mktemp("llava_tiny")
    pool_json, images = tiny.make_pool(root, 40)
    suite = tiny.make_tasks(root / "tasks", 6)
    # One pool record carries a picture of the pope evaluation set: the audit must refuse it.
    leak = pd.read_parquet(root / "tasks" / "pope.parquet")["image"][0]["bytes"]
    records = json.loads(pool_json.read_text())
    victim = next(r for r in records if r.get("image"))
    leak_path = images / "coco/train2017/leaked.png"
    leak_path.write_bytes(leak)
    records.append({**victim, "id": "leaked", "image": "coco/train2017/leaked.png"})
    pool_json.write_text(json.dumps(records))
    texts = [t["value"] for r in records for t in r["conversations"]]
    texts += [q for task in ("pope", "mme") for q in pd.read_parquet(root / "tasks" / f"{task}.parquet")["question"]]
    model = tiny.make_model(root / "model", texts)
    recipe = root / "recipe.json"
    recipe.write_text(json.dumps(TINY_RECIPE))
    return {"root": root, "pool": pool_json, "images": images, "model": model, "suite": suite, "recipe": recipe,
            "ids": [r["id"] for r in records]}


def _task(s, **kw):
    from curbench_env.envs.llava665k.task import Llava10kTask

    return Llava10kTask(pool=s["pool"], image_root=s["images"], model=str(s["model"]), budget=16, suite=s["suite"],
                        recipe=kw.pop("recipe", s["recipe"]), leakage_index=s["root"] / "leakage_index.json",
                        launcher_args=("--num_gpus", "1"), require_gpu=False, **kw)


@pytest.mark.slow
def test_tiny_episode_trains_through_deepspeed_and_scores_with_lmms_eval(tiny_setting, tmp_path):
    from typer.testing import CliRunner

    from curbench_env import CurationEnv
    from curbench_env.cli import app

    s = tiny_setting
    task = _task(s)
    res = CliRunner().invoke(app, ["build-leakage-index", "Curation-LLaVA10k-v0", "--suite", str(s["suite"]),
                                   "--out", str(task.leakage_index_path)])
    assert res.exit_code == 0, res.output
    assert "pope (tiny_pope): 6 items indexed" in res.output

    env = CurationEnv(task, backend="bwrap" if shutil.which("bwrap") else "local", workspace_kwargs={},
                      run_dir=tmp_path / "run", iteration_budget=3)
    obs, info = env.reset(seed=0)
    assert set(env.base.scores) == {"pope", "mme"} and info["base_score"] == env.base.average
    # The agent sees the original JSON and the pictures through the read-only links.
    obs, *_ = env.step('python3 -c "import json,os; p=json.load(open(os.environ[\'POOL\']+\'/pool.json\')); '
                       'print(len(p), os.path.exists(os.environ[\'POOL\']+\'/images/\'+p[0][\'image\']))"')
    assert "41 True" in obs["output"]

    obs, reward, terminated, truncated, info = env.step('printf "leaked\\n%s\\n" ' + s["ids"][0] + " > a.txt && submit a.txt")
    assert info["submission"]["status"] == "contaminated" and "evaluation" in obs["output"]
    assert env.state.iteration == 1 and "leaked" not in obs["output"].replace("printf", "")

    picks = "\n".join(i for i in s["ids"][:16] if i != "leaked")
    obs, reward, terminated, truncated, info = env.step(f"printf '{picks}\\n' > p.txt && submit p.txt --note tiny")
    assert info["submission"]["status"] == "scored", obs["output"]
    assert set(info["scores"]) == {"pope", "mme"} and all(0 <= v <= 100 for v in info["scores"].values())
    it = tmp_path / "run" / "iterations" / "02"
    train_log = next(it.rglob("train.log")).read_text() if list(it.rglob("train.log")) else ""
    assert "deepspeed.launcher.runner" in train_log and "trained 2 steps on 16 examples" in train_log
    env.close()


@pytest.mark.slow
def test_a_crashed_training_run_leaves_the_episode_intact(tiny_setting, tmp_path):
    from curbench_env import CurationEnv

    s = tiny_setting
    bad = tmp_path / "bad_recipe.json"
    bad.write_text(json.dumps({**TINY_RECIPE, "per_device_batchsize": 4}))
    index = s["root"] / "leakage_index.json"
    if not index.exists():
        from curbench_env.envs.llava665k.leakage import build_index

        build_index(s["suite"], index, log=lambda m: None)
    env = CurationEnv(_task(s, recipe=bad), backend="local", workspace_kwargs={"warn": False},
                      run_dir=tmp_path / "run", iteration_budget=2)
    env.reset(seed=0)
    picks = "\n".join(s["ids"][:8])
    obs, reward, terminated, truncated, info = env.step(f"printf '{picks}\\n' > p.txt && submit p.txt")
    assert info["submission"]["status"] == "crashed"
    assert "unknown recipe keys per_device_batchsize" in info["submission"]["error"]
    assert env.state.iteration == 0 and not terminated
    obs, *_ = env.step("ls p.txt")
    assert "p.txt" in obs["output"]
    env.close()
