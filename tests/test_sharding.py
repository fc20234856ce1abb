"""Which memory terms each multi-GPU strategy divides, by how much, and what preflight shows."""
from __future__ import annotations

import json

import pytest

from harness.sharding import ShardingPlan, describe, per_gpu_terms, sharding_plan, strategy_of
from harness.suite import DistributedSpec, SuiteError, parse_suite

TERMS = {"weights": 1000, "master_weights": 400, "gradients": 1000, "optimizer": 2000, "optimizer_step": 500,
         "activations": 700, "logits": 300, "generation": 900}


@pytest.mark.parametrize("strategy,divided", [
    ("ddp", set()),
    ("zero1", {"optimizer", "master_weights", "optimizer_step"}),
    ("zero2", {"optimizer", "master_weights", "optimizer_step", "gradients"}),
    ("zero3", {"optimizer", "master_weights", "optimizer_step", "gradients", "weights"}),
    ("fsdp_full_shard", {"optimizer", "master_weights", "optimizer_step", "gradients", "weights"}),
    ("fsdp_shard_grad_op", {"optimizer", "master_weights", "optimizer_step", "gradients"}),
    ("fsdp_no_shard", set()),
])
def test_each_strategy_divides_its_terms_and_nothing_else(strategy, divided):
    out, how = per_gpu_terms(TERMS, ShardingPlan(strategy, gpus=4))
    for k, v in TERMS.items():
        assert out[k] == (-(-v // 4) if k in divided else v), k
    assert set(how) == divided
    assert all("÷ 4" in h for h in how.values())


def test_division_rounds_up_and_one_gpu_divides_nothing():
    out, _ = per_gpu_terms({"weights": 10}, ShardingPlan("zero3", gpus=3))
    assert out["weights"] == 4
    out, how = per_gpu_terms(TERMS, ShardingPlan("zero3", gpus=1))
    assert out == TERMS and how == {}


def test_hybrid_shard_divides_by_gpus_per_node():
    out, _ = per_gpu_terms(TERMS, ShardingPlan("fsdp_hybrid_shard", gpus=16, gpus_per_node=8))
    assert out["weights"] == 125 and out["optimizer"] == 250


def test_offload_moves_terms_off_the_gpu_before_dividing():
    out, how = per_gpu_terms(TERMS, ShardingPlan("zero3", 2, offloaded=("optimizer", "master_weights",
                                                                        "optimizer_step")))
    assert out["optimizer"] == out["master_weights"] == out["optimizer_step"] == 0
    assert out["weights"] == 500 and how["optimizer"] == "offloaded to CPU memory"


def test_strategy_of_deepspeed_files_dicts_and_fsdp_strings(tmp_path):
    (tmp_path / "z2.json").write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert strategy_of("z2.json", None, tmp_path) == ("zero2", ())
    assert strategy_of({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}}, None) == \
        ("zero3", ("weights",))
    assert strategy_of({"zero_optimization": {"stage": 1, "offload_optimizer": {"device": "cpu"}}}, None)[1] == \
        ("optimizer", "master_weights", "optimizer_step")
    assert strategy_of({}, None) == ("ddp", ())
    assert strategy_of(None, "full_shard auto_wrap") == ("fsdp_full_shard", ())
    assert strategy_of(None, "shard_grad_op auto_wrap")[0] == "fsdp_shard_grad_op"
    assert strategy_of(None, "hybrid_shard_zero2")[0] == "fsdp_shard_grad_op"
    assert strategy_of(None, None) == ("ddp", ())


def test_sharding_plan_from_the_suite_section(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert sharding_plan(None) is None
    plan = sharding_plan(DistributedSpec(fsdp="full_shard", num_processes=8))
    assert (plan.strategy, plan.gpus, plan.weights_sharded) == ("fsdp_full_shard", 8, True)
    monkeypatch.setenv("WORLD_SIZE", "2")               # under a launcher, without a section: DDP
    assert sharding_plan(None) == ShardingPlan("ddp", 2)


def test_describe_names_the_divided_terms():
    text = describe(ShardingPlan("zero2", 4))
    assert "zero2 over 4 GPU(s)" in text and "gradients divided by 4" in text
    assert "kept whole on every GPU: weights;" in text
    assert "kept whole" not in describe(ShardingPlan("zero3", 4))


def test_suite_rejects_both_engines_and_missing_config(tmp_path):
    base = """
name: d
models: [{path: m}]
train:
  data: [{synthetic: {n: 4}}]
  distributed: %s
tasks: [{name: t, data: {synthetic: {n: 2}}}]
"""
    with pytest.raises(SuiteError, match="either deepspeed or fsdp"):
        parse_suite(base % "{deepspeed: {zero_optimization: {stage: 2}}, fsdp: full_shard}", base_dir=tmp_path)
    with pytest.raises(SuiteError, match=r"train.distributed.deepspeed.*file not found"):
        parse_suite(base % "{deepspeed: nope.json}", base_dir=tmp_path)
    (tmp_path / "ds.json").write_text("{}")
    suite = parse_suite(base % "{deepspeed: ds.json}", base_dir=tmp_path)
    assert suite.train.distributed.deepspeed == str(tmp_path / "ds.json")


def test_preflight_estimate_divides_per_gpu(tmp_path, monkeypatch):
    from harness.memory import estimate, plan_from_suite

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    text = """
name: d
models: [{path: Qwen/Qwen3-0.6B}]
train:
  data: [{synthetic: {n: 4}}]
  batch_size: 2
  max_seq_len: 128
  %s
tasks: [{name: t, data: {synthetic: {n: 2}}}]
"""
    single = parse_suite(text % "", base_dir=tmp_path)
    zero3 = parse_suite(text % "distributed: {deepspeed: {zero_optimization: {stage: 3}}, num_processes: 4}",
                        base_dir=tmp_path)
    a = estimate(plan_from_suite(single, single.models[0], data_aware=False))
    b = estimate(plan_from_suite(zero3, zero3.models[0], data_aware=False))
    for k in ("weights", "gradients", "optimizer"):
        assert b.terms[k] == -(-a.terms[k] // 4), k
    assert b.terms["activations"] == a.terms["activations"]
    assert "÷ 4 (zero3)" in b.formulas["weights"] and any("zero3 over 4" in n for n in b.notes)
