"""Grading throughput and peak grading memory against grading batch size and model size (CPU).

For each model (the built-in translator, and randomly initialised shipped configs shrunk in depth
and width but keeping their 150k/262k vocabularies) and each grading batch size, grades the same
translation items twice, each term measured on its own:

* generation (greedy, `max_new_tokens`): items/s, and the peak bytes of live tensors it allocated
  (harness.memory.GradingProbe: a TorchDispatchMode counting tensor storages), next to the
  estimate (harness.memory.generation_bytes) and their ratio;
* scoring (reference NLL, lean: harness/backends/scoring.py): the same, and the peak of the former
  full-logits computation (tests/test_scoring.py keeps it as the reference) for comparison.

Items/s are measured without the probe (it slows each op down); the probe's own cost is printed as
a ratio. Everything is measured in this run:

    ./run python benchmarks/grading_scale.py [--quick] [--items 32] [--new-tokens 16]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness import memory as M  # noqa: E402
from harness.backends.transformers_backend import TransformersBackend  # noqa: E402
from harness.builtin import resolve_model_path  # noqa: E402
from harness.chat import prompt_ids, tokenize_conversation  # noqa: E402
from harness.data import load_rows  # noqa: E402
from harness.suite import DataSpec, GenerationSpec, parse_suite  # noqa: E402


def shrunk(name: str, layers: int, hidden: int):
    from transformers import AutoModelForCausalLM

    raw = dict(M.load_model_config(name).raw)
    raw.update(num_hidden_layers=layers, hidden_size=hidden, intermediate_size=3 * hidden, num_attention_heads=4,
               num_key_value_heads=1, head_dim=hidden // 4)
    if raw.get("layer_types"):
        raw["layer_types"] = (["sliding_attention"] * 5 + ["full_attention"]) * layers
        raw["layer_types"] = raw["layer_types"][:layers]
    raw.pop("torch_dtype", None)
    mc = M.ModelConfig(raw, "benchmark", f"{name} ({layers} layers × {hidden})", "-")
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(mc.to_transformers(), dtype=torch.float32).eval(), mc


def plan_for(mc, examples, tok, batch: int, new_tokens: int):
    rows = [tokenize_conversation(tok, ex.messages, 4096) for ex in examples]
    return M.make_plan(mc, train=False, device="cpu", weight_dtype="fp32", eval_dtype="fp32", eval_batch_size=batch,
                       eval_prompt_len=max(len(prompt_ids(tok, ex.prompt_messages)) for ex in examples),
                       eval_new_tokens=new_tokens, eval_score_len=max(len(r.input_ids) for r in rows),
                       eval_answer_len=max(len(r.input_ids) - r.prompt_len for r in rows))


def main() -> None:
    from test_scoring import full_logits_nll

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer models and batch sizes")
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path("builtin:tiny-translator")
    tok = AutoTokenizer.from_pretrained(path)
    suite = parse_suite("name: b\nmodels: [{path: builtin:tiny-translator}]\n"
                        "tasks: [{name: en-fr, data: {synthetic: {n: 1}}}]\n")
    examples = load_rows(DataSpec(synthetic={"direction": "en-fr", "split": "val", "n": args.items}), suite)

    models = [("builtin:tiny-translator", lambda: (AutoModelForCausalLM.from_pretrained(path).eval(),
                                                   M.load_model_config(str(path))))]
    models.append(("Qwen3-0.6B, 2 layers × 256", lambda: shrunk("Qwen/Qwen3-0.6B", 2, 256)))
    if not args.quick:
        models.append(("Qwen3-0.6B, 4 layers × 512", lambda: shrunk("Qwen/Qwen3-0.6B", 4, 512)))
        models.append(("Gemma-3-270M, 2 layers × 256", lambda: shrunk("google/gemma-3-270m", 2, 256)))
    batches = (1, 8, 32) if args.quick else (1, 4, 16, 32)
    gen = GenerationSpec(max_new_tokens=args.new_tokens, batch_size=1)
    print(f"{args.items} en-fr items, {args.new_tokens} new tokens, CPU, {torch.get_num_threads()} threads; "
          "peaks: bytes of live tensors allocated by the term")
    head = (f"{'model':<30} {'batch':>5} {'gen items/s':>11} {'gen peak':>10} {'est':>10} {'ratio':>6} "
            f"{'score items/s':>13} {'score peak':>10} {'est':>10} {'ratio':>6} {'full-logits peak':>16} "
            f"{'lean/full':>9} {'probe cost':>10}")
    print(head)
    for label, build in models:
        model, mc = build()
        backend = TransformersBackend(model, tok, device="cpu")
        params = sum(p.numel() for p in model.parameters())
        for batch in batches:
            g = gen.model_copy(update={"batch_size": batch})
            t0 = time.perf_counter()
            backend.generate(examples, g)
            gen_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            lean = backend.reference_nll(examples, batch)
            score_s = time.perf_counter() - t0
            probe = M.GradingProbe("cpu")
            measured = probe.wrap(backend)
            t0 = time.perf_counter()
            measured.generate(examples, g)
            probed_s = time.perf_counter() - t0
            measured.reference_nll(examples, batch)
            full_probe = M.GradingProbe("cpu")
            with full_probe.term("scoring"):
                full = full_logits_nll(backend, examples, batch)
            assert all(abs(a[0] - b[0]) <= 1e-4 * abs(b[0]) for a, b in zip(lean, full))
            used = min(batch, len(examples))     # the batch actually used
            est = M.grading_bytes(plan_for(mc, examples, tok, used, args.new_tokens), used)
            gp, sp, fp = probe.peaks["generation"], probe.peaks["scoring"], full_probe.peaks["scoring"]
            print(f"{label + f' ({params / 1e6:.0f}M)':<30} {batch:>5} {args.items / gen_s:>11.2f} "
                  f"{M.fmt_bytes(gp):>10} {M.fmt_bytes(est['generation']):>10} {gp / est['generation']:>6.2f} "
                  f"{args.items / score_s:>13.2f} {M.fmt_bytes(sp):>10} {M.fmt_bytes(est['scoring']):>10} "
                  f"{sp / est['scoring']:>6.2f} {M.fmt_bytes(fp):>16} {sp / fp:>9.3f} {probed_s / gen_s:>9.2f}x",
                  flush=True)
        del model, backend


if __name__ == "__main__":
    main()
