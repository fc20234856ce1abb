"""The grading phase's estimate and the auto grading batch (harness/memory/grading.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness import memory as M
from harness.backends.scoring import SCORE_CHUNK_BYTES
from harness.suite import load_suite, parse_suite

REPO = Path(__file__).resolve().parents[1]
SETUPS = ["qwen3-0.6b-full-4x1024", "qwen3-4b-qlora-1x2048", "llama-3.2-1b-lora-4x1024", "gemma-3-270m-full-8x512"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path_factory.getbasetemp() / "harness-cache"))


def test_the_estimate_uses_the_backends_chunk():
    assert M.SCORE_CHUNK_BYTES == SCORE_CHUNK_BYTES


@pytest.mark.parametrize("name", SETUPS)
def test_auto_grading_never_exceeds_training_in_the_issue_setups(name):
    """Issue 14's four setups, default grading settings: grading is at most the training phase, at the
    largest batch that keeps it so (one more item would exceed it, or the batch is at its bound)."""
    suite = load_suite(REPO / "suites" / "memory" / f"{name}.yaml")
    assert all(t.generation.batch_size == "auto" for t in suite.tasks)
    r = M.preflight(suite, suite.models[0], tokenizer=None)
    e, p = r.estimate, r.plan
    assert 1 <= p.eval_batch_size <= 100 and p.eval_batch_auto
    assert 0 < e.phases["eval"] <= e.phases["train"]
    assert e.peak_phase == "train"
    if p.eval_batch_size < 100:
        assert M.grading_bytes(p, p.eval_batch_size + 1)["phase"] > e.phases["train"]
    assert e.grading["batch"] == p.eval_batch_size and e.grading["scoring"] and e.grading["generation"]


def _grade_only(batch: str = "auto", n: int = 200) -> str:
    return f"""
name: g
models: [{{name: q, path: Qwen/Qwen3-0.6B, dtype: bfloat16}}]
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: {n}}}}}
    generation: {{batch_size: {batch}}}
"""


def test_auto_batch_fits_a_stated_budget():
    suite = parse_suite(_grade_only())
    spec = suite.models[0]
    static = M.estimate(M.plan_from_suite(suite, spec)).terms["weights"]
    for budget in (2 * M.GiB, 3 * M.GiB, 6 * M.GiB):
        plan = M.plan_from_suite(suite, spec)
        plan.budget_bytes = budget
        e = M.estimate(plan)
        b = e.plan.eval_batch_size
        assert e.total <= budget, (budget, b)
        one_more = dataclasses.replace(plan, eval_batch_auto=False, eval_batch_size=b + 1)
        assert b == M.AUTO_GRADING_BATCH_MAX or M.estimate(one_more).total > budget
    assert static < 2 * M.GiB
    # a budget below the weights still grades, one item at a time
    plan = M.plan_from_suite(suite, spec)
    plan.budget_bytes = static // 2
    assert M.estimate(plan).plan.eval_batch_size == 1


def test_auto_batch_on_cpu_or_without_budget_is_the_bound_capped_by_the_rows():
    suite = parse_suite(_grade_only())
    plan = M.plan_from_suite(suite, suite.models[0])            # grading-only, no budget
    assert M.estimate(plan).plan.eval_batch_size == 32
    small = parse_suite(_grade_only(n=10))
    assert M.estimate(M.plan_from_suite(small, small.models[0], device="cpu")).plan.eval_batch_size == 10
    fixed = parse_suite(_grade_only(batch="48"))
    p = M.plan_from_suite(fixed, fixed.models[0])
    assert not p.eval_batch_auto and M.estimate(p).plan.eval_batch_size == 48


def test_grading_terms_grow_with_the_batch_and_scoring_has_no_full_logits():
    plan = M.make_plan("google/gemma-3-270m", train=False, weight_dtype="bf16", eval_dtype="bf16",
                       eval_prompt_len=200, eval_new_tokens=64, eval_score_len=300, eval_answer_len=100)
    small, big = M.grading_bytes(plan, 8), M.grading_bytes(plan, 64)
    assert big["generation"] > small["generation"] and big["scoring"] > small["scoring"]
    full_logits = 64 * 300 * 262_144 * 4
    assert big["scoring"] < full_logits / 10
    chunk = SCORE_CHUNK_BYTES // (4 * 262_144)
    assert f"one LM-head chunk {chunk:,} × vocab 262,144" in big["formulas"]["scoring"]


def test_remedies_do_not_lower_an_auto_grading_batch():
    suite = load_suite(REPO / "suites" / "memory" / "qwen3-0.6b-full-4x1024.yaml")
    r = M.preflight(suite, suite.models[0], tokenizer=None)
    assert r.fits is False and r.fix and r.fix[0].fits
    assert "eval batch" not in [s.knob for s in r.fix]
    plan = M.plan_from_suite(suite, suite.models[0])
    plan.eval_batch_auto, plan.eval_batch_size = False, 512             # a fixed, huge grading batch
    steps = M.suggest_fix(plan, 12 * M.GiB)
    order = ["max_seq_len", "batch", "gradient_checkpointing", "optimizer", "lora_r", "eval batch", "method"]
    assert [order.index(s.knob) for s in steps] == sorted(order.index(s.knob) for s in steps)


@pytest.mark.parametrize("generation, sampling", [("{batch_size: 64}", "greedy"),
                                                  ("{batch_size: 64, do_sample: true, temperature: 0.7}", "sample"),
                                                  ("{batch_size: 64, do_sample: true, top_p: 0.9}", "sample_top_p")])
def test_sampling_at_grading_is_in_the_estimate(generation, sampling):
    """Sampling's logits processors hold several vocabulary-wide fp32 rows per item: with Qwen3's
    152k vocabulary the generation term of a 64-item batch grows by that much."""
    suite = parse_suite(_grade_only().replace("{batch_size: auto}", generation))
    assert M.preflight(suite, suite.models[0], tokenizer=None).plan.eval_sampling == sampling
    # short prompts: the last-position buffers, not the prefill, set the generation term
    plan = M.make_plan("Qwen/Qwen3-0.6B", train=False, weight_dtype="bf16", eval_dtype="bf16",
                       eval_prompt_len=8, eval_new_tokens=8, eval_sampling=sampling)
    greedy = dataclasses.replace(plan, eval_sampling="greedy")
    extra = M.grading_bytes(plan, 64)["generation"] - M.grading_bytes(greedy, 64)["generation"]
    assert extra == 64 * 151_936 * (M.GENERATION_ROW_BYTES[sampling] - M.GENERATION_ROW_BYTES["greedy"])


def test_the_drift_probe_is_a_grading_term_and_auto_still_stays_under_training():
    """diagnostics.probe: the probe's scoring joins the grading phase, the base's stored
    distributions are counted (host memory), and the auto batch still keeps grading ≤ training."""
    from harness.drift.spec import ProbeSpec

    suite = load_suite(REPO / "suites" / "memory" / f"{SETUPS[0]}.yaml")
    without = M.preflight(suite, suite.models[0], tokenizer=None)
    suite.diagnostics.probe = ProbeSpec(data={"builtin": "translation"}, n=256, top_k=32)
    r = M.preflight(suite, suite.models[0], tokenizer=None)
    e, p = r.estimate, r.plan
    assert e.grading["probe"] > 0 and without.estimate.grading.get("probe") == 0
    assert p.probe_top_k == 32 and e.grading["probe_base"] == p.probe_positions * 32 * (4 + 4)   # vocab > 65,536
    assert 0 < e.phases["eval"] <= e.phases["train"]
    assert M.grading_bytes(p, p.eval_batch_size)["phase"] >= e.grading["probe"]
    assert p.eval_batch_size <= without.plan.eval_batch_size
    assert "probe:" in e.grading["formula"] and "host memory" in e.grading["formula"]
