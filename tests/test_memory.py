"""Memory preflight: config-only estimate vs what a training step really holds.

The core check (the issue's "done when"): on CPU, for a grid of tiny models (Qwen3, Llama and
more; full and LoRA; AdamW, SGD, Adafactor; with and without gradient checkpointing; several
batch sizes and lengths), the estimated weights + gradients + optimizer bytes equal the measured
bytes within 1%, and the estimated activations equal the bytes autograd saves for backward
within 10%. Every model is tiny and random (no hub), a step takes milliseconds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import memory as M

REPO = Path(__file__).resolve().parents[1]
GEMMA_SUITE = REPO / "suites" / "memory" / "gemma-3-270m-full.yaml"
QWEN_SUITE = REPO / "suites" / "memory" / "qwen3-4b-qlora.yaml"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Meta-device inventories are cached under HARNESS_CACHE: keep the tests' out of ~/.cache."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path_factory.getbasetemp() / "harness-cache"))


# ------------------------------------------------------------------------- sizes
def test_parse_size():
    assert M.parse_size("12GiB") == 12 * 2 ** 30
    assert M.parse_size("12G") == 12 * 2 ** 30
    assert M.parse_size("11.5 GiB") == int(11.5 * 2 ** 30)
    assert M.parse_size("80000MiB") == 80000 * 2 ** 20
    assert M.parse_size("16GB") == 16 * 10 ** 9
    assert M.parse_size(1024) == 1024
    with pytest.raises(M.UserError):
        M.parse_size("twelve gigs")


# ------------------------------------------------------------------- model configs
def test_shipped_configs_cover_the_common_small_models():
    index = M.shipped_configs()
    for hub_id in ("google/gemma-3-270m", "google/gemma-3-1b-it", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B",
                   "Qwen/Qwen3-4B", "Qwen/Qwen3-8B", "Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-3B",
                   "Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B",
                   "meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.3"):
        assert hub_id.lower() in index, hub_id


def test_shipped_inventories_match_published_parameter_counts():
    """Stored meta-device counts equal the published ones (Qwen3-0.6B 596M with tied embeddings...)."""
    for f in sorted(M.SHIPPED_DIR.glob("*.json")):
        data = json.loads(f.read_text())
        assert data["inventory"]["total"] == data["published_parameters"], f.name
        assert data["inventory"]["key"] == M.ModelConfig(data["config"], "", "", "").shape_key(), \
            f"{f.name}: config edited; run python -m harness.memory refresh-configs"
    assert M.load_model_config("Qwen/Qwen3-0.6B").inventory["total"] == 596_049_920
    assert M.load_model_config("google/gemma-3-270m").inventory["total"] == 268_098_176


def test_shipped_inventories_equal_a_fresh_meta_device_build():
    """No formula: every shipped count is what transformers builds on the meta device today."""
    for f in sorted(M.SHIPPED_DIR.glob("*.json")):
        mc = M.load_model_config(f.stem)
        fresh = M.build_inventory(mc)
        stored = mc.inventory
        assert fresh["total"] == stored["total"], f.name
        assert sorted(map(str, fresh["linears"])) == sorted(map(str, stored["linears"])), f.name


def test_load_model_config_resolution_order(tmp_path):
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "qwen3", "hidden_size": 8}))
    assert M.load_model_config(str(d)).source == "local"
    assert M.load_model_config("qwen/QWEN3-4b").source == "shipped"          # case-insensitive hub id
    assert M.load_model_config("Qwen/Qwen3-4B-Instruct-2507").raw["num_hidden_layers"] == 36
    assert M.load_model_config("builtin:tiny-translator").source == "builtin"
    with pytest.raises(M.ModelConfigError) as e:
        M.load_model_config("nobody/no-such-model")                          # offline in tests
    assert "\n" not in str(e.value) and "Qwen/Qwen3-4B" in str(e.value)
    with pytest.raises(M.ModelConfigError, match="no config.json"):
        M.load_model_config(str(tmp_path))


def test_lora_trainable_count_and_share():
    """Fact 7: mt0-large, r=8 on q and v: 2,359,296 of 1,231,940,608 = 0.1915%."""
    raw = {"model_type": "mt5", "d_model": 1024, "d_ff": 2816, "d_kv": 64, "num_heads": 16, "num_layers": 24,
           "num_decoder_layers": 24, "vocab_size": 250112, "feed_forward_proj": "gated-gelu"}
    inv = M.Inventory.from_dict(M.build_inventory(M.ModelConfig(raw, "test", "mt0-large", "-")))
    lora = inv.lora_params(["q", "v"], 8)
    assert lora == 2_359_296
    published_base = 1_229_581_312   # mt0-large with its own lm_head (transformers 5 ties it to `shared`)
    assert f"{lora / (published_base + lora):.4%}" == "0.1915%"
    # Qwen3-4B, r=16, all linear layers: PEFT's 33,030,144 of 4,055,498,240
    plan = M.make_plan("Qwen/Qwen3-4B", method="qlora", lora_r=16, lora_targets="all-linear")
    assert (plan.trainable_params, plan.total_params) == (33_030_144, 4_055_498_240)
    e = M.estimate(plan)
    assert f"{e.trainable_share:.4%}" == "0.8145%"


# ------------------------------------------------------------- estimate vs measured
def _tiny_config(arch: str, attn: str, layers: int = 2):
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    kw = dict(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=layers,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512)
    if arch == "gemma3":
        kw.update(hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=16, sliding_window=8,
                  layer_types=["sliding_attention", "full_attention"][:layers])
    else:
        kw["tie_word_embeddings"] = True
    cls = {"qwen3": Qwen3Config, "llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig,
           "gemma3": Gemma3TextConfig}[arch]
    return cls(**kw, attn_implementation=attn)


def _measure_vs_estimate(arch="qwen3", attn="sdpa", method="full", optimizer="adamw", gc=False, batch=3, seq=24,
                         precision="fp32", packing=False, fused=False, r=4, dropout=0.05, targets="all-linear"):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = _tiny_config(arch, attn)
    model = AutoModelForCausalLM.from_config(cfg)
    model.train()
    if fused:
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=dropout,
                                                 target_modules=targets, task_type="CAUSAL_LM"))
    if gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
    if packing:   # TRL's padding-free packing: one row, positions restart per sequence, no attention mask
        ids = torch.randint(0, cfg.vocab_size, (1, batch * seq))
        batch_inputs = {"input_ids": ids, "position_ids": torch.arange(seq).repeat(batch)[None], "labels": ids}
    else:
        ids = torch.randint(0, cfg.vocab_size, (batch, seq))
        attn_mask = torch.ones_like(ids)
        if batch > 1:
            attn_mask[0, seq // 2:] = 0   # a shorter row: the batch is padded
        labels = ids.masked_fill(attn_mask == 0, -100)
        batch_inputs = {"input_ids": ids, "attention_mask": attn_mask, "labels": labels}
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=1e-3)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=1e-3)
    else:
        from transformers.optimization import Adafactor

        opt = Adafactor(params, lr=1e-3, scale_parameter=False, relative_step=False)
    measured = M.measure_step(model, batch_inputs, opt, autocast=None if precision == "fp32" else precision,
                              fused_lm_head=fused)
    # the estimate sees only the config: its parameters come from a meta-device build
    plan = M.make_plan(cfg.to_dict(), method=method, optimizer=optimizer, gradient_checkpointing=gc,
                       batch_size=batch, seq_len=seq, max_seq_len=seq, attn_implementation=attn,
                       precision=precision, packing=packing, padding_free=packing, device="cpu",
                       lora_r=r, lora_dropout=dropout, lora_targets=targets,
                       loss_impl="chunked" if fused else "full_logits")
    est = M.estimate(plan)
    return est, measured


def _check(est, measured):
    wgo_est = sum(est.terms[k] for k in ("weights", "gradients", "optimizer"))
    wgo_meas = sum(measured[k] for k in ("weights", "gradients", "optimizer"))
    assert abs(wgo_meas - wgo_est) <= 0.01 * wgo_est, (wgo_est, wgo_meas)
    for k in ("weights", "gradients", "optimizer"):
        assert abs(measured[k] - est.terms[k]) <= 0.01 * max(est.terms[k], 1) + 64, (k, est.terms[k], measured[k])
    saved_est = est.saved_for_backward["layers"] + est.saved_for_backward["head"]
    saved_meas = measured["activations"] + measured["logits"]
    assert abs(saved_meas - saved_est) <= 0.10 * saved_est, (saved_est, saved_meas)
    assert abs(measured["activations"] - est.saved_for_backward["layers"]) <= 0.10 * est.saved_for_backward["layers"]


GRID = [
    dict(arch=arch, method=method, optimizer=opt, gc=gc, batch=b, seq=s)
    for arch in ("qwen3", "llama")
    for method in ("full", "lora")
    for opt in ("adamw", "sgd")
    for gc in (False, True)
    for b, s in ((1, 24), (4, 40))
]
EXTRA = [
    dict(attn="eager"), dict(arch="llama", attn="eager", batch=2, seq=33),
    dict(attn="eager", gc=True), dict(precision="bf16"), dict(arch="llama", precision="bf16", attn="eager"),
    dict(method="lora", precision="bf16", gc=True), dict(method="lora", dropout=0.0),
    dict(method="lora", targets=["q_proj", "v_proj"], r=8), dict(optimizer="adafactor"),
    dict(method="lora", optimizer="adafactor"), dict(packing=True, batch=3, seq=16),
    dict(arch="gemma3"), dict(arch="gemma3", attn="eager", method="lora", precision="bf16"),
    dict(arch="qwen2", method="lora"), dict(arch="mistral", gc=True, batch=2, seq=48),
]


@pytest.mark.parametrize("case", GRID + EXTRA, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_estimate_matches_measured_bytes(case):
    _check(*_measure_vs_estimate(**case))


def test_trl_chunked_lm_head_is_estimated():
    """The runner's loss: TRL's fused LM head keeps no batch × seq × vocab logits."""
    est, measured = _measure_vs_estimate(fused=True, method="lora", batch=4, seq=40)
    _check(est, measured)
    assert abs(measured["logits"] - est.saved_for_backward["head"]) <= 0.01 * est.saved_for_backward["head"]
    full, _ = _measure_vs_estimate(batch=4, seq=40)
    assert est.saved_for_backward["head"] < full.saved_for_backward["head"] / 3


def test_memory_callback_measures_a_real_trainer_run(tiny_model_dir, tmp_path):
    """MemoryCallback inside the project's TRL runner: exact state bytes, saved activations."""
    from harness.data import load_training_rows
    from harness.suite import parse_suite
    from runners import trl_sft

    suite = parse_suite(f"""
name: mem
models: [{{name: tiny, path: {tiny_model_dir}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 16, seed: 1}}}}]
  method: lora
  epochs: 1
  batch_size: 8
  max_seq_len: 48
  gradient_checkpointing: true
  lora: {{r: 4}}
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 4}}}}
    generation: {{batch_size: 4, max_new_tokens: 8}}
""", base_dir=str(tmp_path))
    spec = suite.models[0]
    model, tok = trl_sft.load(spec, str(tiny_model_dir), suite.train)
    tokenized = trl_sft.tokenize_rows(tok, load_training_rows(suite), suite.train)
    cb = M.MemoryCallback()
    trl_sft.train(model, tok, tokenized, suite.train, tmp_path / "trainer", lambda *a: False, extra_callbacks=(cb,))
    assert cb.measured and cb.measured["optimizer"] > 0 and cb.measured["activations"] > 0
    record = M.memory_record(suite, spec, str(tiny_model_dir), cb.measured, tok)
    cmp = record["comparison"]
    assert abs(cmp["weights+gradients+optimizer"]["ratio"] - 1) <= 0.01
    assert abs(cmp["activations"]["ratio"] - 1) <= 0.10
    assert record["verdict"]["status"] in ("pass", "warn", "fail", "skipped") and record["verdict"]["summary"]
    assert set(record["measured"]) <= set(record["estimate"]) | {"logits", "activations"}
    assert record["parameters"]["trainable"] == cb.measured["gradients"] // 4
    json.dumps(record)   # results.json-ready


# ---------------------------------------------------------------------- estimate
def test_terms_and_folk_rule_add_up():
    plan = M.make_plan("Qwen/Qwen3-0.6B", method="full", optimizer="adamw", precision="bf16", batch_size=8,
                       seq_len=512, eval_batch_size=8, eval_prompt_len=100, eval_new_tokens=64, eval_score_len=160)
    e = M.estimate(plan)
    n = 596_049_920
    assert e.terms["weights"] == 4 * n and e.terms["gradients"] == 4 * n and e.terms["optimizer"] == 8 * n
    assert sum(e.stack().values()) == e.total
    rows = M.folk_rule_rows(e)
    assert sum(r["rule_bytes"] for r in rows) == pytest.approx(17.5 * n, rel=1e-6)
    assert e.folk_rule_bytes == int(17.5 * n)
    assert all(r["why"] for r in rows)


def test_attention_and_checkpointing_change_activations():
    base = dict(method="full", batch_size=4, seq_len=1024)
    sdpa = M.estimate(M.make_plan("Qwen/Qwen3-0.6B", **base)).terms["activations"]
    eager = M.estimate(M.make_plan("Qwen/Qwen3-0.6B", attn_implementation="eager", **base)).terms["activations"]
    gc = M.estimate(M.make_plan("Qwen/Qwen3-0.6B", gradient_checkpointing=True, **base)).terms["activations"]
    n_h, layers = 16, 28
    scores = 4 * n_h * 1024 * 1024 * 4 * layers   # eager keeps the fp32 scores of every head
    assert eager - sdpa >= 0.8 * scores          # SDPA keeps only the (padding) mask, one per layer
    assert gc < sdpa / 5


def test_eight_bit_optimizer_keeps_embeddings_in_32_bit():
    plan = M.make_plan("google/gemma-3-270m", optimizer="adamw_8bit")
    opt = M.estimate(plan).terms["optimizer"]
    emb = 262_144 * 640
    assert opt > emb * 8 and opt < emb * 8 + (268_098_176 - emb) * 2.2


def test_qlora_weights_are_four_bit():
    e = M.estimate(M.make_plan("Qwen/Qwen3-4B", method="qlora", precision="bf16", gradient_checkpointing=True,
                               batch_size=1, seq_len=1024))
    assert 3.0 * M.GiB < e.terms["weights"] < 3.6 * M.GiB        # NF4 linears + fp32 embeddings
    assert e.terms["gradients"] == 33_030_144 * 4
    assert "NF4" in e.formulas["weights"]


# ---------------------------------------------------------------------- remedies
def test_suggest_fix_follows_the_practitioners_order():
    plan = M.make_plan("Qwen/Qwen3-0.6B", method="full", optimizer="adamw", precision="bf16", batch_size=16,
                       seq_len=2048, max_seq_len=2048)
    budget = 24 * M.GiB
    assert M.estimate(plan).total > budget
    steps = M.suggest_fix(plan, budget)
    assert steps and all(s.fits for s in steps) and steps[0].total_after <= budget
    order = ["max_seq_len", "batch", "gradient_checkpointing", "optimizer", "lora_r", "eval batch", "method"]
    assert [order.index(s.knob) for s in steps] == sorted(order.index(s.knob) for s in steps)
    assert all(s.cost for s in steps)
    assert M.suggest_fix(plan, 10 ** 15) == []


def test_suggest_fix_prefers_a_free_length_cut_when_the_data_is_short():
    plan = M.make_plan("google/gemma-3-270m", batch_size=16, seq_len=4096, max_seq_len=4096,
                       optimizer="adamw_8bit", precision="bf16", lengths=[80] * 99 + [300])
    steps = M.suggest_fix(plan, 12 * M.GiB)
    assert [s.knob for s in steps] == ["max_seq_len"]
    assert "→ 304" in steps[0].change and steps[0].cost.startswith("none")


def test_gradient_checkpointing_costs_step_time():
    plan = M.make_plan("Qwen/Qwen3-1.7B", method="lora", batch_size=4, seq_len=4096, max_seq_len=4096,
                       lengths=[4096] * 10, lengths_exact=True)
    steps = M.suggest_fix(plan, 16 * M.GiB)
    gc = [s for s in steps if s.knob == "gradient_checkpointing"]
    assert not gc or "+25% step time" in gc[0].cost


# --------------------------------------------------------------------- data-aware
def test_plan_uses_the_real_padded_length(tiny_model_and_tokenizer, tmp_path):
    from harness.suite import parse_suite

    _, tok = tiny_model_and_tokenizer
    text = """
name: t
models: [{name: tiny, path: builtin:tiny-translator}]
train:
  data: [{synthetic: {kind: translation, direction: en-fr, split: train, n: 200, seed: 1}}]
  batch_size: 8
  max_seq_len: 256
  packing: PACK
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 20}}
"""
    plain = M.plan_from_suite(parse_suite(text.replace("PACK", "false")), parse_suite(
        text.replace("PACK", "false")).models[0], sample_tokenizer=tok)
    assert 8 < plain.seq_len < 256 and "tokenized" in plain.length_source
    packed_suite = parse_suite(text.replace("PACK", "true"))
    packed = M.plan_from_suite(packed_suite, packed_suite.models[0], sample_tokenizer=tok)
    assert packed.seq_len == 256 and packed.padding_free and packed.rows == 1 and packed.width == 8 * 256
    offline = M.plan_from_suite(packed_suite, packed_suite.models[0])
    assert offline.seq_len == 256 and "no tokenizer" in offline.length_source
    assert 0 < offline.eval_prompt_len < 256   # grading lengths from a byte bound of the data


def _jsonl_suite(tmp_path, model_dir) -> "object":
    """A suite whose data are files in tmp_path: two training sources (one cut by offset/limit),
    one task longer than the byte bound's 300 rows."""
    from harness.suite import parse_suite

    def write(name, n, words):
        rows = [{"messages": [{"role": "user", "content": f"Translate {i}: " + "word " * (i % words)},
                              {"role": "assistant", "content": "mot " * (i % (words + 3))}]} for i in range(n)]
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    write("a.jsonl", 40, 7)
    write("b.jsonl", 900, 11)
    write("val.jsonl", 350, 5)
    return parse_suite(f"""
name: t
models: [{{name: tiny, path: {model_dir}}}]
train:
  data: [{{path: a.jsonl}}, {{path: b.jsonl, offset: 10, limit: 600}}]
  batch_size: 4
  max_seq_len: 64
tasks:
  - name: t
    data: {{path: val.jsonl}}
""", base_dir=tmp_path)


def test_a_plan_from_rows_already_loaded_equals_one_that_reads_them(tiny_model_and_tokenizer, tiny_model_dir,
                                                                    tmp_path):
    from harness.data import load_rows, load_training_rows

    _, tok = tiny_model_and_tokenizer
    suite = _jsonl_suite(tmp_path, tiny_model_dir)
    spec = suite.models[0]
    loaded = M.LoadedRows(train=load_training_rows(suite), tasks=[load_rows(t.data, suite) for t in suite.tasks])
    read = {"tokenized": M.plan_from_suite(suite, spec, sample_tokenizer=tok, device="cpu"),
            "byte bound": M.plan_from_suite(suite, spec, device="cpu")}
    given = {"byte bound": M.plan_from_suite(suite, spec, device="cpu", loaded=loaded)}
    (tmp_path / "b.jsonl").unlink()   # from here on, reading the data again would fail (and be noted)
    (tmp_path / "val.jsonl").unlink()
    given["tokenized"] = M.SharedPlan(suite, spec, str(tiny_model_dir), tok, "cpu", loaded).copy()
    assert read["tokenized"].lengths_exact and len(read["tokenized"].lengths) == 640
    assert read["byte bound"].eval_items == 300 and read["tokenized"].eval_items == 350
    for how in read:
        assert given[how].describe() == read[how].describe(), how
        assert given[how].lengths == read[how].lengths and given[how].eval_items == read[how].eval_items, how
        assert given[how].notes == read[how].notes, how   # no "data not read" note
    # the byte bound reads each training source's first rows itself (the file is gone: it says so);
    # the grading rows it takes as given
    bound = M.plan_from_suite(suite, spec, device="cpu", loaded=loaded)
    assert any("training data not read" in n for n in bound.notes)
    assert bound.eval_prompt_len == read["byte bound"].eval_prompt_len and bound.eval_items == 300


def test_a_shared_plan_is_built_once_and_each_user_changes_its_own_copy(tiny_model_dir, tmp_path, monkeypatch):
    from harness.memory import plan as plan_module

    suite = _jsonl_suite(tmp_path, tiny_model_dir)
    builds = []
    real = plan_module.plan_from_suite
    monkeypatch.setattr(plan_module, "plan_from_suite", lambda *a, **k: builds.append(1) or real(*a, **k))
    shared = M.SharedPlan(suite, suite.models[0], str(tiny_model_dir), None, "cpu")
    fits, line = M.fits_or_explain(suite, suite.models[0], "12GiB", shared=shared)
    grading = M.grading_estimate(suite, suite.models[0], None, shared=shared)
    record = M.memory_record(suite, suite.models[0], None, {"weights": 1}, shared=shared)
    assert builds == [1] and fits and "fits 12.00 GiB" in line
    assert grading["batch"] >= 1 and record["plan"]["device"] == "cpu" and record["terms"]["cuda_context"] == 0
    gpu = shared.copy(device="cuda", budget_bytes=M.GiB)
    gpu.notes.append("mine")
    again = shared.copy()
    assert (again.device, again.budget_bytes) == ("cpu", None) and "mine" not in again.notes


def test_a_shared_plan_that_cannot_be_built_fails_every_user_as_before(tmp_path):
    from harness.suite import AUTO_GRADING_BATCH_BOUND, parse_suite

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    suite = parse_suite(f"""
name: t
models: [{{name: m, path: {model}}}]
train: {{data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 8}}}}]}}
tasks: [{{name: t, data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 4}}}}}}]
""")
    spec = suite.models[0]
    # a config without its sizes: the preflight check fails loudly, as it did with a plan of its own
    broken = M.SharedPlan(suite, spec, str(model), None, "cpu")
    with pytest.raises(KeyError):
        M.fits_or_explain(suite, spec, "12GiB", shared=broken)
    assert "no estimate: KeyError" in M.grading_estimate(suite, spec, None, shared=broken)["why"]
    # no config at all (gone since the suite was loaded): skipped, the fallback batch, no estimate
    (model / "config.json").unlink()
    (model / "notes.txt").write_text("no config here", encoding="utf-8")
    shared = M.SharedPlan(suite, spec, str(model), None, "cpu")
    fits, line = M.fits_or_explain(suite, spec, "12GiB", shared=shared)
    assert fits and line.startswith("memory preflight skipped") and "no config.json" in line
    grading = M.grading_estimate(suite, spec, None, shared=shared)
    assert grading["batch"] == AUTO_GRADING_BATCH_BOUND and "no estimate: ModelConfigError" in grading["why"]
    record = M.memory_record(suite, spec, None, {"weights": 1, "nvml_used_peak": 5}, shared=shared)
    assert record["verdict"]["status"] == "skipped" and "ModelConfigError" in record["verdict"]["summary"]
    assert record["measured"] == {"weights": 1}


# --------------------------------------------------------------------- preflight
def test_preflight_gemma_270m_full_breakdown_and_fix(capsys):
    from harness.cli import main

    code = main(["preflight", str(GEMMA_SUITE)])
    out = capsys.readouterr().out
    assert code == 3
    for term in ("weights", "gradients", "optimizer states", "activations", "logits / loss buffers",
                 "grading", "CUDA context", "allocator overhead", "17.5 bytes/parameter rule",
                 "does not fit 12.00 GiB", "first configuration that fits"):
        assert term in out, term
    assert "268,098,176" in out and "embedding params × 8 B" in out


def test_preflight_qwen3_4b_qlora_json():
    import io

    from rich.console import Console

    from harness.suite import load_suite

    buf = io.StringIO()
    code = M.run_preflight(load_suite(QWEN_SUITE), None, True, Console(file=buf, width=200))
    doc = json.loads(buf.getvalue())
    m = doc["models"][0]
    assert code in (0, 3) and doc["fits"] == (code == 0)
    assert m["estimate"]["parameters"]["trainable"] == 33_030_144
    assert m["plan"]["method"] == "qlora" and m["plan"]["gradient_checkpointing"] is True
    assert m["budget_bytes"] == 12 * M.GiB
    assert set(m["estimate"]["terms"]) >= {"weights", "gradients", "optimizer", "activations", "logits",
                                          "generation", "cuda_context", "allocator"}
    assert m["estimate"]["total_bytes"] == sum(m["estimate"]["stack"].values())
    if not m["fits"]:
        assert m["fix"] and m["fix_fits"]


def test_preflight_is_offline_and_never_imports_torch(tmp_path):
    """The shipped-config path reads JSON only: no torch, no transformers, no network.

    How long it takes is measured by benchmarks/preflight_speed.py, not asserted here."""
    script = ("import sys; from harness.cli import main; "
              f"code = main(['preflight', {str(GEMMA_SUITE)!r}, '--gpu-memory', '12GiB']); "
              "print('RESULT', code, 'torch' in sys.modules, 'transformers' in sys.modules)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=60).stdout
    result = out.split("RESULT")[-1].split()
    assert result[:3] == ["3", "False", "False"], out[-2000:]


def test_an_unreachable_hub_model_is_one_line(tmp_path):
    """A hub id with no shipped config, the hub unreachable (a closed port on this machine stands
    in for no network): one error line, not the hub client's retry warnings before it."""
    import socket

    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    suite = tmp_path / "s.yaml"
    suite.write_text("name: hub\nmodels: [{path: some-org/does-not-exist}]\n"
                     "tasks: [{name: t, data: {synthetic: {n: 2}}}]\n"
                     "train: {epochs: 1, data: [{synthetic: {n: 4}}]}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), HARNESS_CACHE=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "preflight", str(suite), "--gpu-memory", "12GiB"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: some-org/does-not-exist:") and "not reachable" in lines[0], lines[0]


def test_fits_or_explain_for_train_and_grade():
    from harness.suite import load_suite

    suite = load_suite(GEMMA_SUITE)
    fits, line = M.fits_or_explain(suite, suite.models[0], "12GiB")
    assert not fits and "\n" not in line and "--force" in line and "first configuration that fits" in line
    fits, line = M.fits_or_explain(suite, suite.models[0], "400GiB")
    assert fits and "fits" in line


def test_memory_record_compares_per_term():
    from harness.suite import load_suite

    suite = load_suite(QWEN_SUITE)
    measured = {"weights": 3.3 * M.GiB, "gradients": 33_030_144 * 4, "optimizer": 33_030_144 * 8,
                "activations": 300 * M.MiB, "logits": 10 * M.MiB}
    rec = M.memory_record(suite, suite.models[0], None, measured)
    assert rec["comparison"]["gradients"]["ratio"] == 1.0
    assert rec["folk_rule_bytes"] == int(17.5 * 4_022_468_096)
    assert rec["budget_bytes"] == 12 * M.GiB and rec["verdict"]["status"] in ("pass", "warn", "fail")
    assert sum(rec["estimate"].values()) == rec["total_bytes"]


@pytest.mark.slow
def test_benchmark_script_runs_on_cpu():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "memory_estimate_vs_measured.py"), "--quick"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio" in out.stdout
