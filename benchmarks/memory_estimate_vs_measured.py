"""Memory estimate vs measured, per configuration (harness/memory/, docs/memory.md).

    python benchmarks/memory_estimate_vs_measured.py [--quick] [--json OUT.json] [--cpu]

On a GPU: every configuration is built from its config alone (random weights, nothing
downloaded) and trained for two steps the way runners/trl_sft.py trains: fp32 weights under
autocast, PEFT LoRA (QLoRA: bitsandbytes NF4 with double quantization, when installed), torch
AdamW / bitsandbytes AdamW-8bit / SGD, TRL's chunked LM head, gradient checkpointing. It
prints torch's peak allocated and reserved bytes, NVML's used memory, the CUDA context NVML
sees, and the ratio of each to the matching part of the estimate (grading is left out of these
rows: the estimate is taken with no grading batch).

Grading (both devices, after the training rows): a model built from a shipped config (random
weights; on CPU shrunk in depth and width, its vocabulary kept) grades synthetic translation
items at a few batch sizes; each term's own peak (harness.memory.GradingProbe: CUDA
max_memory_allocated around the term, CPU the bytes of live tensors) is printed next to the
grading estimate at the batch used (harness.memory.grading_bytes) with their ratio.

On CPU (or with --cpu): tiny Qwen3/Llama/Gemma3 models, and the exact comparison per term:
weights + gradients + optimizer states after the first optimizer step, and the bytes saved
for backward (saved_tensors_hooks), next to the estimate.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))      # grading_scale's helpers
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from harness import memory as M  # noqa: E402

GPU_CONFIGS = [
    # model, method, optimizer, gradient checkpointing, batch, seq, attention
    dict(model="google/gemma-3-270m", method="full", optimizer="adamw", gc=False, batch=8, seq=512),
    dict(model="google/gemma-3-270m", method="full", optimizer="adamw_8bit", gc=True, batch=16, seq=1024),
    dict(model="Qwen/Qwen3-0.6B", method="full", optimizer="adamw", gc=False, batch=4, seq=1024),
    dict(model="Qwen/Qwen3-0.6B", method="lora", optimizer="adamw", gc=False, batch=8, seq=1024),
    dict(model="Qwen/Qwen3-0.6B", method="lora", optimizer="adamw", gc=True, batch=8, seq=2048),
    dict(model="Qwen/Qwen3-0.6B", method="full", optimizer="sgd", gc=True, batch=8, seq=1024, attn="eager"),
    dict(model="meta-llama/Llama-3.2-1B", method="lora", optimizer="adamw", gc=False, batch=4, seq=1024),
    dict(model="Qwen/Qwen3-1.7B", method="qlora", optimizer="adamw", gc=True, batch=2, seq=1024),
    dict(model="Qwen/Qwen3-4B", method="qlora", optimizer="adamw", gc=True, batch=1, seq=1024),
]
GPU_QUICK = [0, 3, 4]

CPU_CONFIGS = [
    dict(arch="qwen3", method="full", optimizer="adamw", gc=False, batch=4, seq=64),
    dict(arch="qwen3", method="full", optimizer="adamw", gc=True, batch=4, seq=64),
    dict(arch="qwen3", method="lora", optimizer="adamw", gc=False, batch=8, seq=48),
    dict(arch="qwen3", method="lora", optimizer="sgd", gc=True, batch=8, seq=48, precision="bf16"),
    dict(arch="llama", method="full", optimizer="sgd", gc=False, batch=2, seq=96, attn="eager"),
    dict(arch="llama", method="lora", optimizer="adafactor", gc=False, batch=4, seq=64),
    dict(arch="gemma3", method="full", optimizer="adamw", gc=False, batch=4, seq=64, precision="bf16"),
]
CPU_QUICK = [0, 2, 4]


def _tiny_config(arch: str, attn: str):
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen3Config

    kw = dict(vocab_size=2048, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=1024)
    if arch == "gemma3":
        kw.update(hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=32, sliding_window=32,
                  layer_types=["sliding_attention", "full_attention"] * 2)
    else:
        kw["tie_word_embeddings"] = True
    return {"qwen3": Qwen3Config, "llama": LlamaConfig, "gemma3": Gemma3TextConfig}[arch](
        **kw, attn_implementation=attn)


def _batch(vocab: int, batch: int, seq: int, device: str):
    import torch

    ids = torch.randint(0, vocab, (batch, seq), device=device)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[0, seq // 2:] = 0           # one shorter row: the batch is padded, as the estimate assumes
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _optimizer(name: str, model, params):
    import torch

    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-5)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=1e-5, scale_parameter=False, relative_step=False)
    import bitsandbytes as bnb                       # as the Trainer does: embeddings stay 32-bit
    opt = bnb.optim.AdamW8bit(params, lr=1e-5)
    manager = bnb.optim.GlobalOptimManager.get_instance()
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            manager.register_module_override(module, "weight", {"optim_bits": 32})
    return opt


def _wrap(model, method: str, gc_on: bool, r: int = 16):
    if method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if method == "qlora":
            model = prepare_model_for_kbit_training(model, gc_on)
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    if gc_on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def _fused_head(model) -> bool:
    try:
        from trl.trainer.utils import add_fused_lm_head
    except ImportError:
        return False
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    return True


# --------------------------------------------------------------------------- CPU
def run_cpu(configs: list[dict]) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM

    rows = []
    for c in configs:
        torch.manual_seed(0)
        attn = c.get("attn", "sdpa")
        cfg = _tiny_config(c["arch"], attn)
        model = AutoModelForCausalLM.from_config(cfg)
        fused = _fused_head(model)
        model = _wrap(model, c["method"], c["gc"], r=8)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = _optimizer(c["optimizer"], model, params)
        precision = c.get("precision", "fp32")
        measured = M.measure_step(model, _batch(cfg.vocab_size, c["batch"], c["seq"], "cpu"), opt,
                                  autocast=None if precision == "fp32" else precision, fused_lm_head=fused)
        plan = M.make_plan(cfg.to_dict(), method=c["method"], optimizer=c["optimizer"],
                           gradient_checkpointing=c["gc"], batch_size=c["batch"], seq_len=c["seq"],
                           max_seq_len=c["seq"], attn_implementation=attn, precision=precision, device="cpu",
                           lora_r=8, loss_impl="chunked" if fused else "full_logits")
        est = M.estimate(plan)
        cmp = M.compare(est, measured)
        rows.append({"config": _label(c), "comparison": cmp})
        del model, opt
    return rows


# --------------------------------------------------------------------------- GPU
def _gpu_model(c: dict, workdir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    mc = M.load_model_config(c["model"])
    cfg = mc.to_transformers()
    if c["method"] != "qlora":   # the runner keeps fp32 weights and autocasts
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation=c.get("attn", "sdpa"))
        return model, cfg
    from transformers import BitsAndBytesConfig

    path = workdir / c["model"].replace("/", "--")
    if not (path / "config.json").exists():           # random bf16 weights on disk, then load in 4 bits
        with torch.device("cpu"):
            AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(path)
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=q, dtype=torch.bfloat16,
                                                 device_map={"": 0}, attn_implementation=c.get("attn", "sdpa"))
    return model, cfg


def run_gpu(configs: list[dict]) -> list[dict]:
    import torch

    before = M.nvml_used() or 0
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    context = (M.nvml_used() or 0) - before - torch.cuda.memory_reserved()
    print(f"CUDA context seen by NVML: {M.fmt_bytes(context)} (the estimate assumes "
          f"{M.fmt_bytes(M.CUDA_CONTEXT_BYTES)})")
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="memory-bench-"))
    for c in configs:
        if c["method"] == "qlora" or c["optimizer"] == "adamw_8bit":
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                print(f"skip {_label(c)}: bitsandbytes not installed")
                continue
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base_used = M.nvml_used() or 0
        t0 = time.perf_counter()
        try:
            model, cfg = _gpu_model(c, workdir)
            fused = _fused_head(model)
            model = _wrap(model, c["method"], c["gc"])
            params = [p for p in model.parameters() if p.requires_grad]
            opt = _optimizer(c["optimizer"], model, params)
            batch = _batch(cfg.vocab_size, c["batch"], c["seq"], "cuda")
            nvml_peak = 0
            measured = {}
            for step in range(2):   # the second step has optimizer states from the first
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out = model(**batch, use_cache=False, **({"fused_lm_head": True} if fused else {}))
                out.loss.backward()
                nvml_peak = max(nvml_peak, M.nvml_used() or 0)
                opt.step()
                if step == 0:
                    measured = M.MemoryProbe(model).state_bytes(opt)
                opt.zero_grad(set_to_none=True)
                del out
            torch.cuda.synchronize()
            nvml_peak = max(nvml_peak, M.nvml_used() or 0)
            measured.update(M.MemoryProbe.cuda_peaks())
            measured["nvml_used_before"] = base_used - context
            measured["nvml_used_peak"] = nvml_peak
        except torch.cuda.OutOfMemoryError:
            print(f"{_label(c)}: out of memory")
            model = opt = batch = None
            continue
        plan = M.make_plan(c["model"], method=c["method"], optimizer=c["optimizer"], gradient_checkpointing=c["gc"],
                           batch_size=c["batch"], seq_len=c["seq"], max_seq_len=c["seq"], precision="bf16",
                           attn_implementation=c.get("attn", "sdpa"), device="cuda",
                           loss_impl="chunked" if fused else "full_logits", eval_batch_size=0)
        est = M.estimate(plan)
        rows.append({"config": _label(c), "seconds": round(time.perf_counter() - t0, 1),
                     "estimate_total": est.total, "comparison": M.compare(est, measured)})
        model = opt = batch = None
    return rows


GRADING_MODELS = ["google/gemma-3-270m", "Qwen/Qwen3-0.6B"]


def run_grading(device: str, quick: bool) -> list[dict]:
    """Grading's own peak per term vs the estimate, at a few batch sizes (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grading_scale import plan_for, shrunk
    from harness.backends.transformers_backend import TransformersBackend
    from harness.builtin import resolve_model_path
    from harness.data import load_rows
    from harness.suite import DataSpec, GenerationSpec, parse_suite

    tok = AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny-translator"))
    suite = parse_suite("name: b\nmodels: [{path: builtin:tiny-translator}]\n"
                        "tasks: [{name: en-fr, data: {synthetic: {n: 1}}}]\n")
    n = 16 if quick else 64
    examples = load_rows(DataSpec(synthetic={"direction": "en-fr", "split": "val", "n": n}), suite)
    rows = []
    for name in GRADING_MODELS[:1] if quick else GRADING_MODELS:
        if device == "cuda":
            mc = M.load_model_config(name)
            raw = {k: v for k, v in mc.raw.items() if k != "torch_dtype"}
            cfg = M.ModelConfig(raw, mc.source, name, mc.where)
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(cfg.to_transformers(), dtype=torch.bfloat16).to("cuda").eval()
            dtype = "bf16"
        else:
            model, cfg = shrunk(name, 2, 256)
            dtype = "fp32"
        backend = TransformersBackend(model, tok, device=device)
        for batch in ((4, 16) if quick else (4, 16, 64)):
            used = min(batch, n)
            probe = M.GradingProbe(device)
            with torch.inference_mode():
                probe.wrap(backend).generate(examples, GenerationSpec(max_new_tokens=32, batch_size=batch))
                probe.wrap(backend).reference_nll(examples, batch)
            plan = plan_for(cfg, examples, tok, used, 32)
            plan.weight_dtype = plan.eval_dtype = dtype
            est = M.grading_bytes(plan, used)
            comparison = {k: {"estimate": est[k], "measured": probe.peaks[k],
                              "ratio": round(probe.peaks[k] / est[k], 4) if est[k] else None,
                              "what": "the grading term's own peak"} for k in ("generation", "scoring")}
            rows.append({"config": f"grading {name} ({'full size' if device == 'cuda' else '2 layers × 256'}, "
                                   f"{dtype}) batch {used}", "comparison": comparison})
        del model, backend
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def _label(c: dict) -> str:
    who = c.get("model", c.get("arch"))
    extra = [c["method"], c["optimizer"], "gc" if c["gc"] else "no-gc", f"{c['batch']}x{c['seq']}",
             c.get("attn", "sdpa")] + ([c["precision"]] if c.get("precision") else [])
    return f"{who} " + " ".join(extra)


def print_rows(rows: list[dict]) -> None:
    keys = []
    for r in rows:
        for k in r["comparison"]:
            if k not in keys and r["comparison"][k]["measured"] is not None:
                keys.append(k)
    for r in rows:
        print(r["config"])
        for k in keys:
            row = r["comparison"].get(k)
            if row is None or row["measured"] is None:
                continue
            ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "-"
            print(f"  {k:<28} estimate {M.fmt_bytes(row['estimate']):>11}  measured {M.fmt_bytes(row['measured']):>11}"
                  f"  ratio {ratio}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few configurations only")
    ap.add_argument("--cpu", action="store_true", help="the CPU comparison even when a GPU is present")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    import torch

    on_gpu = torch.cuda.is_available() and not args.cpu
    if on_gpu:
        configs = [GPU_CONFIGS[i] for i in GPU_QUICK] if args.quick else GPU_CONFIGS
        print(f"GPU: {torch.cuda.get_device_name(0)}; ratio = measured / estimate "
              "(peak_allocated vs the estimate without allocator overhead and CUDA context)")
        rows = run_gpu(configs)
        rows += run_grading("cuda", args.quick)
    else:
        configs = [CPU_CONFIGS[i] for i in CPU_QUICK] if args.quick else CPU_CONFIGS
        print("CPU: exact bytes after the first optimizer step, and bytes saved for backward; "
              "ratio = measured / estimate")
        rows = run_cpu(configs)
        rows += run_grading("cpu", args.quick)
    print_rows(rows)
    if args.json:
        args.json.write_text(json.dumps({"device": "cuda" if on_gpu else "cpu", "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
