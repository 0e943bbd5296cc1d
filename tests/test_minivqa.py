"""The MiniVQA world: generator, defects, benchmarks, model, pipeline, tools and the env id.

Uses the ``tiny`` preset (small pool, short alignment), built once per test session.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from curbench_env.envs.minivqa.scenes import random_scene, render  # noqa: E402
from curbench_env.envs.minivqa.world import WorldConfig, build_world  # noqa: E402


def test_world_is_deterministic_for_a_seed(tmp_path):
    cfg = WorldConfig(pool_size=300, eval_items_per_benchmark=5, stage1_captions=10)
    build_world(cfg, tmp_path / "a")
    build_world(cfg, tmp_path / "b")
    for rel in ("pool/pool.json", "hidden/ground_truth.jsonl", "hidden/benchmarks.jsonl"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert np.array_equal(np.load(tmp_path / "a/pool/images.npy"), np.load(tmp_path / "b/pool/images.npy"))


def test_each_pool_record_gets_its_own_picture(tmp_path):
    """A clean colour question's picture shows that colour in the cell it names (records and
    pictures must not be shuffled apart: then nothing in the pool teaches the model to look)."""
    import re

    from curbench_env.envs.minivqa.scenes import COLOURS

    build_world(WorldConfig(pool_size=1_500, eval_items_per_benchmark=5, stage1_captions=10), tmp_path)
    records = json.loads((tmp_path / "pool/pool.json").read_text())
    index = json.loads((tmp_path / "pool/image_index.json").read_text())
    images = np.load(tmp_path / "pool/images.npy")
    truth = {t["id"]: t for t in map(json.loads, (tmp_path / "hidden/ground_truth.jsonl").read_text().splitlines())}
    assert len(images) == len(index) == len({r["image"] for r in records if "image" in r})
    cells = {"top left": (0, 0), "top right": (0, 16), "bottom left": (16, 0), "bottom right": (16, 16)}
    rgb = np.array(list(COLOURS.values()))
    checked = 0
    for r in records:
        m = re.match(r"<image>\nWhat color is the \w+ at the (\w+ \w+)\?", r["conversations"][0]["value"])
        answer = r["conversations"][1]["value"]
        if not m or answer not in COLOURS or truth[r["id"]]["defects"]:
            continue
        y, x = cells[m.group(1)]
        cell = images[index[r["image"]]][y:y + 16, x:x + 16].reshape(-1, 1, 3).astype(int)
        nearest = np.abs(cell - rgb).sum(-1).min(0)  # per colour: its closest pixel in the cell
        assert list(COLOURS)[int(nearest.argmin())] == answer, r["id"]
        checked += 1
    assert checked >= 20


def test_records_are_in_llava_665k_format(tiny_world):
    records = json.loads((tiny_world / "pool" / "pool.json").read_text())
    prefixes = {r["image"].split("/")[0] for r in records if "image" in r}
    assert prefixes == {"coco", "gqa", "ocr_vqa", "textvqa", "vg"}
    assert any("image" not in r for r in records)  # text-only (ShareGPT-like)
    for r in records[:200]:
        conv = r["conversations"]
        assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2)
        if "image" in r:
            assert conv[0]["value"].startswith("<image>\n")
            assert (tiny_world / "pool" / "images" / r["image"]).exists()


def test_ground_truth_records_every_defect_kind_and_stays_hidden(tiny_world):
    truth = [json.loads(line) for line in (tiny_world / "hidden" / "ground_truth.jsonl").read_text().splitlines()]
    kinds = {d for t in truth for d in t["defects"]}
    assert kinds >= {"wrong_answer", "image_mismatch", "exact_duplicate", "near_duplicate", "corrupt_image",
                     "bad_format", "off_task", "length_outlier"}
    assert not any(p.name.startswith(("ground_truth", "benchmarks")) for p in (tiny_world / "pool").rglob("*"))


def test_benchmarks_are_eight_and_not_in_the_pool(tiny_world):
    from curbench_env.audit import LeakageIndex, image_hash

    bench = [json.loads(line) for line in (tiny_world / "hidden" / "benchmarks.jsonl").read_text().splitlines()]
    assert len({b["benchmark"] for b in bench}) == 8
    index = LeakageIndex.load(tiny_world / "hidden" / "leakage_index.json")
    pool_images = np.load(tiny_world / "pool" / "images.npy")
    assert not {image_hash(img) for img in pool_images} & index.image_hashes


def test_no_pool_picture_shows_a_benchmark_scene(tmp_path):
    """Benchmark scenes come from a held-out slice of scene space that the pool never draws from
    (world v5 pictured an eval scene in 3,583 of 20,000 pool records)."""
    build_world(WorldConfig(pool_size=3_000, eval_items_per_benchmark=100, stage1_captions=10), tmp_path)
    truth = [json.loads(line) for line in (tmp_path / "hidden/ground_truth.jsonl").read_text().splitlines()]
    bench = [json.loads(line) for line in (tmp_path / "hidden/benchmarks.jsonl").read_text().splitlines()]
    pool_scenes = {t["caption"] for t in truth if t["caption"]}
    bench_scenes = {b["caption"] for b in bench}
    assert len(pool_scenes) > 1_000 and len(bench_scenes) > 300
    assert not pool_scenes & bench_scenes
    # Simple scenes too: one-object scenes are few (96 contents), and each side keeps some of them.
    assert any(c.count(" at the ") == 1 for c in pool_scenes) and any(c.count(" at the ") == 1 for c in bench_scenes)


def test_every_text_of_the_world_is_in_the_frozen_vocabulary(tiny_world):
    """The tokenizer is frozen (so every world shares one base model): no pool or benchmark text may
    fall outside it."""
    from curbench_env.envs.minivqa import model as M

    tok = M.build_tokenizer(M.vocabulary())
    records = json.loads((tiny_world / "pool" / "pool.json").read_text())
    bench = [json.loads(line) for line in (tiny_world / "hidden" / "benchmarks.jsonl").read_text().splitlines()]
    texts = [t["value"].replace("<image>", "") for r in records for t in r["conversations"]]
    texts += [b["question"] for b in bench] + [b["answer"] for b in bench]
    unknown = {t for t in texts if tok.unk_token_id in tok(t, add_special_tokens=False)["input_ids"]}
    assert not unknown, sorted(unknown)[:5]


def test_scene_rendering_shows_the_caption():
    rng = np.random.default_rng(0)
    scene = random_scene(rng)
    img = render(scene, rng)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert len({tuple(p) for p in img.reshape(-1, 3)}) > 1  # not blank


def test_pipeline_is_deterministic_and_scores_eight_benchmarks(tiny_world):
    from curbench_env.envs.minivqa.pipeline import MiniVQAPipeline

    from curbench_env.submission import Selection

    p = MiniVQAPipeline(tiny_world)
    ids = [r["id"] for r in json.loads((tiny_world / "pool" / "pool.json").read_text())][:64]
    a = p.run(Selection(ids=ids), tiny_world / "w1", seed=1)
    b = p.run(Selection(ids=ids), tiny_world / "w2", seed=1)
    assert a.scores == b.scores and len(a.scores) == 8
    assert all(0 <= v <= 100 for v in a.scores.values())
    assert "step" in a.train_log and a.eval_log.count("\n") == sum(1 for _ in (tiny_world / "hidden" / "benchmarks.jsonl").open())


def test_submissions_scored_at_once_score_what_they_score_one_after_another(tiny_world, monkeypatch):
    """device=cuda trains several submissions at once on one GPU (threads of one process share its
    pipeline); the same code runs on CPU when the machine's scoring slots allow it."""
    import re
    import threading

    from curbench_env.envs.minivqa import pipeline as P

    from curbench_env.submission import Selection

    ids = [r["id"] for r in json.loads((tiny_world / "pool" / "pool.json").read_text())]
    jobs = [(Selection(ids=ids[k * 48:(k + 1) * 48]), seed) for k, seed in ((0, 0), (1, 1), (2, 0))]

    def steps(result):  # the training log without its timings
        return re.sub(r"\([0-9.]+s\)", "", result.train_log)

    serial = [P.MiniVQAPipeline(tiny_world).run(sel, tiny_world / f"serial{k}", seed) for k, (sel, seed) in enumerate(jobs)]
    monkeypatch.setenv("CURBENCH_SCORING_SLOTS", "3")
    together = threading.Barrier(3, timeout=120)  # breaks unless all three fine-tunes run at the same time
    finetune = P.finetune_lora

    def finetune_together(*args, **kwargs):
        together.wait()
        return finetune(*args, **kwargs)

    monkeypatch.setattr(P, "finetune_lora", finetune_together)
    shared = P.MiniVQAPipeline(tiny_world)
    results: dict[int, object] = {}
    threads = [threading.Thread(target=lambda k=k, sel=sel, seed=seed: results.__setitem__(
        k, shared.run(sel, tiny_world / f"together{k}", seed))) for k, (sel, seed) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2]
    for k, one in enumerate(serial):
        assert results[k].scores == one.scores and steps(results[k]) == steps(one), k
    assert len({steps(r) for r in serial}) == 3  # three different fine-tunes, not one


def test_saving_the_base_model_prints_no_third_party_noise(tiny_world, tmp_path):
    """`curbench setup` on a CPU machine: no DeepSpeed accelerator notice, no shard progress bar."""
    import subprocess
    import sys

    code = ("import sys, pathlib, curbench_env\n"
            "from curbench_env.envs.minivqa.model import load_base, save_base\n"
            "m, tok, cfg = load_base(pathlib.Path(sys.argv[1]))\n"
            "import transformers.utils.logging as l; l.enable_progress_bar()\n"
            "save_base(m, tok, cfg, pathlib.Path(sys.argv[2]))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_world / "base_model"), str(tmp_path / "saved")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "saved" / "model.safetensors").exists()
    assert "Setting accelerator to CPU" not in out.stdout + out.stderr
    assert "Writing model shards" not in out.stdout + out.stderr


def test_signals_cover_the_pool(tiny_world):
    sig = tiny_world / "pool" / "signals"
    ids = json.loads((sig / "ids.json").read_text())
    assert len(np.load(sig / "loss.npy")) == len(ids) == len(np.load(sig / "image_emb.npy"))
    assert np.isfinite(np.load(sig / "loss.npy")).all()


@pytest.fixture
def tiny_env(tiny_world, tmp_path, monkeypatch):
    import curbench_env  # noqa: F401

    env = gym.make("Curation-MiniVQA-v0", task_kwargs={"preset": "tiny"}, run_root=tmp_path / "runs",
                   iteration_budget=2)
    yield env
    env.close()


def test_env_id_runs_a_scripted_submission(tiny_env):
    from curbench_env.agents.scripted import SinglePolicyAgent

    from curbench_env.runner import run_episode

    summary = run_episode(tiny_env, SinglePolicyAgent("top_loss"), seed=0, progress=False)
    assert summary["iterations"] == 1
    it = tiny_env.unwrapped.history[0]
    assert it["n_examples"] == 200 and len(it["scores"]) == 8


def test_workspace_tools_run_inside_the_sandbox(tiny_env):
    obs, _ = tiny_env.reset(seed=0)
    assert "pool-stats" in obs["output"]
    obs, *_ = tiny_env.step("pool-stats")
    assert "image path prefix" in obs["output"] and obs["exit_code"] == 0
    obs, *_ = tiny_env.step("pool-show $(python3 -c \"import json;print(json.load(open('$POOL/pool.json'))[0]['id'])\")")
    assert '"conversations"' in obs["output"]
    obs, *_ = tiny_env.step("python3 -c \"import numpy as np; print(np.load('$POOL/signals/loss.npy').shape)\"")
    assert obs["output"].strip().startswith("(")
    obs, *_ = tiny_env.step("cat $POOL/../hidden/ground_truth.jsonl")
    assert obs["exit_code"] != 0 and '"defects"' not in obs["output"]


def test_check_env_passes_through_gym_make(tiny_world, tmp_path):
    from gymnasium.utils.env_checker import check_env

    import curbench_env  # noqa: F401

    env = gym.make("Curation-MiniVQA-v0", task_kwargs={"preset": "tiny"}, run_root=tmp_path / "runs",
                   render_mode="ansi")
    env.unwrapped.action_space.sample = lambda mask=None: "echo checked; ls"  # see test_env.py
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


@pytest.mark.slow
def test_main_job_cli_runs_a_session_and_prints_the_table(tiny_world, tmp_path):
    """`curbench run` (the README's first command) with the default scripted agent, at tiny scale."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "CURBENCH_HOME": str(tiny_world.parent.parent), "COLUMNS": "250"}
    out = subprocess.run([sys.executable, "-m", "curbench_env.cli", "run", "--env", "Curation-MiniVQA-v0",
                          "--preset", "tiny", "--iterations", "2", "--run-dir", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "run directory" in out.stdout and "average" in out.stdout
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["agent"] == "curator"
    assert len(list((tmp_path / "run" / "iterations").iterdir())) == 2
    listing = subprocess.run([sys.executable, "-m", "curbench_env.cli", "inspect", str(tmp_path / "run")],
                             capture_output=True, text=True, timeout=120, env=env)
    assert listing.returncode == 0 and "picks_random" in listing.stdout


@pytest.mark.parametrize("policy", ["random", "source_balanced", "format_filter", "dedup_diversity", "top_loss",
                                    "quality_mix", "ards_like", "icons_like"])
def test_every_scripted_policy_writes_a_valid_submission(tiny_world, tmp_path, policy):
    import os
    import subprocess
    import sys

    from curbench_env.agents.scripted import POLICIES, SCRIPTS, script_text

    from curbench_env.submission import PoolIndex, SubmissionRules, parse_submission

    for name in SCRIPTS:
        (tmp_path / name).write_text(script_text(name))
    out = subprocess.run([sys.executable, str(tmp_path / POLICIES[policy].script), "--budget", "200", "--out", str(tmp_path / "p.txt")],
                         env={**os.environ, "POOL": str(tiny_world / "pool")}, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = json.loads((tiny_world / "pool" / "pool.json").read_text())
    sel = parse_submission(tmp_path / "p.txt", SubmissionRules(budget=200), PoolIndex([r["id"] for r in records]))
    assert 0 < len(sel) <= 200


def _ship(monkeypatch, base_dir, base_fingerprint):
    """Make ``base_dir`` the shipped base model ``base_fingerprint`` (as the package ships the default's)."""
    from curbench_env.envs.minivqa import shipped

    monkeypatch.setattr(shipped, "SHIPPED_BASE", base_fingerprint)
    monkeypatch.setattr(shipped, "SHIPPED_SHA256", {f: shipped.sha256_file(base_dir / f) for f in shipped.SHIPPED_SHA256})
    monkeypatch.setattr(shipped, "shipped_dir", lambda: base_dir)


def test_a_shipped_base_model_skips_stage1_and_is_verified(tiny_world, tmp_path, monkeypatch):
    from curbench_env.envs.minivqa.setup import PRESETS, ensure_world

    _ship(monkeypatch, tiny_world / "base_model", PRESETS["tiny"].base_fingerprint())
    monkeypatch.setenv("CURBENCH_HOME", str(tmp_path / "fresh-home"))
    said: list[str] = []
    root = ensure_world(PRESETS["tiny"], log=said.append)
    assert any("shipped stage-1 weights" in m for m in said) and not any("alignment" in m for m in said)
    assert (root / "base_model" / "model.safetensors").read_bytes() == (
        tiny_world / "base_model" / "model.safetensors").read_bytes()
    assert (root / "pool" / "signals" / "loss.npy").exists() and (root / "READY").exists()


def test_a_gpu_scores_the_shipped_base_model_too(tiny_world, tmp_path, monkeypatch):
    """device=cuda installs the same shipped weights (the base model's fingerprint leaves the device out);
    its world lives apart (its embeddings are computed on the GPU) and a non-shipped alignment is cached
    per device."""
    from dataclasses import replace

    from curbench_env.envs.minivqa.setup import PRESETS, install_base_model

    cpu = PRESETS["tiny"]
    gpu = replace(cpu, stage1=replace(cpu.stage1, device="cuda"))
    assert gpu.base_fingerprint() == cpu.base_fingerprint() and gpu.fingerprint() != cpu.fingerprint()
    _ship(monkeypatch, tiny_world / "base_model", cpu.base_fingerprint())
    said: list[str] = []
    install_base_model(gpu, tmp_path / "base_model", log=said.append)
    assert any("shipped stage-1 weights" in m for m in said) and not any("alignment" in m for m in said)
    assert (tmp_path / "base_model" / "model.safetensors").read_bytes() == (
        tiny_world / "base_model" / "model.safetensors").read_bytes()


def test_a_damaged_shipped_base_model_is_refused_with_the_fix(tiny_world, tmp_path, monkeypatch):
    import shutil

    from curbench_env.envs.minivqa.setup import PRESETS, ensure_world

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_world / "base_model", damaged)
    _ship(monkeypatch, damaged, PRESETS["tiny"].base_fingerprint())
    with open(damaged / "model.safetensors", "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\0" * 8)
    monkeypatch.setenv("CURBENCH_HOME", str(tmp_path / "fresh-home"))
    with pytest.raises(RuntimeError, match="damaged.*model.safetensors.*--rebuild"):
        ensure_world(PRESETS["tiny"], log=lambda m: None)


def _ship_loss(monkeypatch, world, folder):
    """Make ``world``'s loss signal the one the package ships for its inputs (as it ships the default's)."""
    import shutil

    from curbench_env.envs.minivqa import shipped
    from curbench_env.envs.minivqa.pipeline import MiniRecipe
    from curbench_env.envs.minivqa.setup import loss_signal_key

    key = loss_signal_key(world, MiniRecipe())
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(world / "pool" / "signals" / "loss.npy", folder / f"loss-{key[:16]}.npy")
    monkeypatch.setattr(shipped, "SHIPPED_LOSS", {key: shipped.sha256_file(world / "pool" / "signals" / "loss.npy")})
    monkeypatch.setattr(shipped, "signals_dir", lambda: folder)
    return folder / f"loss-{key[:16]}.npy"


def test_a_shipped_loss_signal_skips_the_proxy_fine_tunes(tiny_world, tmp_path, monkeypatch):
    from curbench_env.envs.minivqa.setup import PRESETS, ensure_world

    _ship(monkeypatch, tiny_world / "base_model", PRESETS["tiny"].base_fingerprint())
    _ship_loss(monkeypatch, tiny_world, tmp_path / "signals")
    monkeypatch.setenv("CURBENCH_HOME", str(tmp_path / "fresh-home"))
    said: list[str] = []
    root = ensure_world(PRESETS["tiny"], log=said.append)
    assert any("shipped early-training loss" in m for m in said) and not any("proxy model" in m for m in said)
    for name in ("loss.npy", "image_emb.npy", "n_tokens.npy"):  # the same signals as a world that computed them
        assert (root / "pool" / "signals" / name).read_bytes() == (tiny_world / "pool" / "signals" / name).read_bytes()


def test_a_damaged_shipped_loss_signal_is_refused(tiny_world, tmp_path, monkeypatch):
    from curbench_env.envs.minivqa.setup import PRESETS, ensure_world

    _ship(monkeypatch, tiny_world / "base_model", PRESETS["tiny"].base_fingerprint())
    path = _ship_loss(monkeypatch, tiny_world, tmp_path / "signals")
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    monkeypatch.setenv("CURBENCH_HOME", str(tmp_path / "fresh-home"))
    with pytest.raises(RuntimeError, match="loss signal.*damaged.*reinstall"):
        ensure_world(PRESETS["tiny"], log=lambda m: None)


def test_the_default_world_ships_its_loss_signal(tmp_path):
    """The pool, pictures and base model the default world is built from still give the shipped signal's key
    (a change to the world's code that moves it costs every fresh install the proxy fine-tunes)."""
    from curbench_env.envs.minivqa import shipped
    from curbench_env.envs.minivqa.pipeline import MiniRecipe
    from curbench_env.envs.minivqa.setup import PRESETS, loss_signal_key

    build_world(PRESETS["default"].world, tmp_path, None)
    shipped.install(tmp_path / "base_model")
    path = shipped.shipped_loss(loss_signal_key(tmp_path, MiniRecipe()))
    assert path is not None and len(np.load(path)) == PRESETS["default"].world.pool_size


def test_setup_rebuild_compares_the_base_model_and_the_loss_signal_with_the_shipped_files(tiny_world, tmp_path,
                                                                                         monkeypatch):
    import shutil

    from curbench_env.envs.minivqa.setup import PRESETS, rebuild_base_model

    _ship(monkeypatch, tiny_world / "base_model", PRESETS["tiny"].base_fingerprint())
    _ship_loss(monkeypatch, tiny_world, tmp_path / "signals")
    home = tmp_path / "home"
    shutil.copytree(tiny_world, home / "minivqa" / tiny_world.name)
    monkeypatch.setenv("CURBENCH_HOME", str(home))
    world = home / "minivqa" / tiny_world.name
    before = (world / "base_model" / "model.safetensors").stat().st_mtime_ns
    said: list[str] = []
    report = rebuild_base_model(PRESETS["tiny"], log=said.append)
    assert report == {"model.safetensors": True, "tokenizer.json": True, "minivqa_model.json": True,
                      "signals/loss.npy": True}, said
    assert any("recomputing the loss signal" in m for m in said) and any("proxy model 2/2" in m for m in said)
    # Compared, not installed: the world keeps its model; the rebuilt one waits beside it for inspection.
    assert (world / "base_model" / "model.safetensors").stat().st_mtime_ns == before
    assert (world.parent / f"{world.name}.rebuild" / "base_model" / "model.safetensors").exists()
    assert any("the world keeps its own" in m for m in said)
    said.clear()
    assert rebuild_base_model(PRESETS["tiny"], log=said.append, install=True)["model.safetensors"]
    assert any("installed the rebuilt model for this world (the same bytes)" in m for m in said), said
    assert (world / "base_model" / "model.safetensors").stat().st_mtime_ns != before
    # A world whose model differs from the rebuild (here: damaged) keeps it unless told to install.
    with open(world / "base_model" / "model.safetensors", "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\0" * 8)
    damaged = (world / "base_model" / "model.safetensors").read_bytes()
    said.clear()
    rebuild_base_model(PRESETS["tiny"], log=said.append)
    assert any("not identical to the world's model" in m for m in said), said
    assert (world / "base_model" / "model.safetensors").read_bytes() == damaged
    said.clear()
    rebuild_base_model(PRESETS["tiny"], log=said.append, install=True)
    assert any("recomputing its pool signals" in m for m in said), said
    assert (world / "base_model" / "model.safetensors").read_bytes() == (
        tiny_world / "base_model" / "model.safetensors").read_bytes()
    assert (world / "READY").exists() and (world / "pool" / "signals" / "loss.npy").exists()
    assert not (world / "base_model.old").exists() and not (world / "base_model.new").exists()
