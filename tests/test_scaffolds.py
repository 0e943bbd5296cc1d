"""Scaffold wrappers, diagnostics and reports, driven by scripted agents that obey and break the rules."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from curbench_env.scaffolds import method_library
from curbench_env.wrappers import (
    AdaptPapersWrapper,
    HypothesisLedgerWrapper,
    IterationBudget,
    SkillCardsWrapper,
    StrategyGuideWrapper,
    parse_declaration,
)

from curbench_env.diagnostics import label_run, session_summary
from curbench_env.report import write_report

PICK = ("python3 -c \"import json,os; rs=[json.loads(l) for l in open(os.environ['POOL']+'/pool.jsonl')]; "
        "open('{f}','w').write('\\n'.join([r['id'] for r in rs if r['quality_hint']=='good' "
        "and r['id']!='leak01'][:{n}]))\"")


def pick(n: int, f: str = "p.txt") -> str:
    return PICK.format(n=n, f=f)


def test_method_library_has_the_required_cards():
    lib = method_library()
    assert len(lib) >= 15
    for needed in ("random", "length_filter", "perplexity_filter", "source_balancing", "exact_dedup", "near_dedup",
                   "semdedup", "kcenter", "coincide", "d2_pruning", "el2n", "forgetting", "top_loss", "less",
                   "tracin", "icons", "ards", "self_filter", "clip_score", "tmars", "dfn", "template_rewrite"):
        assert needed in lib, needed
    assert all(c.instantiate and c.reference for c in lib.values())


def test_declaration_parsing():
    d = parse_declaration("cite: el2n | instantiate: rank by loss.npy | adapt: p95 cut per source")
    assert d == {"cite": "el2n", "instantiate": "rank by loss.npy", "adapt": "p95 cut per source"}
    assert parse_declaration("just a note") == {}


def test_light_scaffolds_add_text_and_compose(make_env):
    env = StrategyGuideWrapper(SkillCardsWrapper(make_env(), cards=["el2n", "semdedup"]))
    obs, info = env.reset(seed=0)
    assert "Strategy guide" in obs["output"] and "[el2n]" in obs["output"]
    assert env.observation_space.contains(obs)
    config = json.loads((env.unwrapped.run_dir / "config.json").read_text())
    assert config["scaffolds"] == ["skill-cards", "strategy-guide"]


def test_each_scaffold_block_reaches_the_policy_exactly_once_however_many_resets(make_env):
    from curbench_env.agents.llm import LiteLLMPolicy

    inner = make_env()
    before = dict(vars(inner))
    cards = SkillCardsWrapper(inner)
    env = AdaptPapersWrapper(cards)
    assert vars(inner).keys() == before.keys()  # wrapping sets no attribute of the inner env
    blocks = {"skill-cards": cards.block().strip(), "adapt-papers": env.block().strip()}
    for _ in range(3):
        obs, info = env.reset(seed=0)
        policy = LiteLLMPolicy(model="openai/never-called")
        policy.reset(obs, info)
        prompt = "\n".join(str(m["content"]) for m in policy.messages)
        for name, block in blocks.items():
            assert prompt.count(block) == 1, name
            assert obs["output"].count(block) == 1, name
    assert "scaffold_prompt" not in info


def test_adapt_papers_refuses_a_missing_declaration_and_trains_nothing(make_env, tiny_task):
    env = AdaptPapersWrapper(make_env())
    env.reset(seed=0)
    runs = tiny_task.pipeline.runs
    obs, _, _, _, info = env.step(pick(5) + " && submit p.txt --note 'my best guess'")
    assert info["submission"]["status"] == "refused" and "declares no method" in obs["output"]
    obs, _, _, _, info = env.step("submit p.txt --note 'cite: el2n'")
    assert info["submission"]["status"] == "refused" and "lacks instantiate and adapt" in obs["output"]
    obs, _, _, _, info = env.step("submit p.txt --note 'cite: magic | instantiate: xxxxxxxxx | adapt: yyyyyyyyy'")
    assert "unknown card 'magic'" in obs["output"]
    assert tiny_task.pipeline.runs == runs and info["iteration"] == 0


def test_adapt_papers_accepts_baseline_and_full_declarations(make_env):
    env = AdaptPapersWrapper(make_env())
    env.reset(seed=0)
    _, _, _, _, info = env.step(pick(5) + " && submit p.txt --note 'cite: random'")
    assert info["submission"]["status"] == "scored"
    _, _, _, _, info = env.step(pick(8, "q.txt") + " && submit q.txt --note 'cite: el2n | instantiate: rank by "
                                "quality_hint as the error signal | adapt: keep only good hints'")
    assert info["submission"]["status"] == "scored" and info["iteration"] == 2


def test_hypothesis_ledger_checks_predictions(make_env):
    env = HypothesisLedgerWrapper(make_env())
    env.reset(seed=0)
    obs, *_ , info = env.step(pick(5) + " && submit p.txt --note 'no hypothesis'")
    assert info["submission"]["status"] == "refused"
    obs, _, _, _, info = env.step("submit p.txt --note 'hypothesis: good hints mean clean data | predict: alpha up'")
    assert info["submission"]["status"] == "scored" and info["ledger"][0]["verdict"].startswith("held")
    assert "prediction held" in obs["output"]


def test_iteration_budget_wrapper_ends_early_and_composes(make_env):
    env = IterationBudget(gym.wrappers.RecordEpisodeStatistics(make_env(iteration_budget=3)), budget=1)
    env.reset(seed=0)
    _, _, term, _, _ = env.step(pick(5) + " && submit p.txt")
    assert term


def test_diagnostics_label_new_family_grounded_effective_shallow(make_env):
    env = make_env(iteration_budget=4)
    env.reset(seed=0)
    env.step("mkdir -p pol && echo 'N = 5' > pol/sel.py && " + pick(5) + " && submit p.txt --note 'random baseline'")
    env.step("echo 'N = 8' > pol/sel.py && " + pick(8) + " && submit p.txt --note 'random baseline'")
    env.step(pick(12) + " && submit p.txt --note 'cite: el2n | instantiate: loss rank | adapt: per source'")
    labels = label_run(env.run_dir)
    assert [r["new_family"] for r in labels] == [True, False, True]
    assert [r["grounded"] for r in labels] == [False, False, True]
    assert labels[1]["shallow"] and not labels[2]["shallow"]
    assert labels[0]["effective"]
    s = session_summary(labels)
    assert s["iterations"] == 3 and s["new_family"] == pytest.approx(2 / 3)


def test_llm_judge_labels_with_a_mocked_model(make_env):
    pytest.importorskip("litellm")
    env = make_env()
    env.reset(seed=0)
    env.step(pick(5) + " && submit p.txt --note 'something'")
    reply = json.dumps({"new_family": True, "grounded": True, "shallow": False, "why": "cites EL2N"})
    labels = label_run(env.run_dir, judge_model="openai/judge", mock_response=reply)
    assert labels[0]["grounded"] and labels[0]["judge_why"] == "cites EL2N"


def test_report_writes_plots_and_tables(make_env, tmp_path):
    dirs = []
    for seed in (0, 1):
        env = make_env()
        env.reset(seed=seed)
        env.step(pick(5) + " && submit p.txt --note 'random'")
        env.step(pick(9, "q.txt") + " && submit q.txt --note 'cite: top_loss | instantiate: a | adapt: b'")
        dirs.append(env.run_dir)
        env.close()
    files = write_report(dirs, tmp_path / "rep")
    names = {f.name for f in files}
    assert {"score_per_iteration.png", "per_benchmark.png", "diagnostics.png", "report.md", "report.html"} <= names
    md = (tmp_path / "rep" / "report.md").read_text()
    assert dirs[0].name in md and "grounded" in md
    assert (tmp_path / "rep" / "score_per_iteration.png").stat().st_size > 1000
