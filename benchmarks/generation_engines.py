"""Generation engines of the transformers backend against today's padded batches.

Same model, same prompts, same GenerationSpec except `engine`: the built-in model on the
tasks of suites/translation.yaml (en-fr and fr-en validation, 100 items each, greedy,
max_new_tokens 48, batch_size 50). Each round runs every engine once, in a rotating order,
so load from other processes on a shared machine falls on all engines alike; the median
round time per engine is reported. Prints items/s, the ratio to `padded`, and, against
`padded`, how many greedy outputs are identical item by item and the corpus BLEU
difference (sacrebleu). The rule for a new default (docs/generation.md): faster here AND
≥ 98% identical outputs AND |ΔBLEU| ≤ 0.5.

    PYTHONPATH=. python benchmarks/generation_engines.py [--rounds 3] [--threads 1] [--engines padded,continuous]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import sacrebleu
import torch

from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
from harness.builtin import resolve_model_path
from harness.grade import load_tasks
from harness.suite import load_suite

SUITE = Path(__file__).resolve().parents[1] / "suites" / "translation.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", default="padded,static,continuous")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads; on a shared, oversubscribed CPU more than 1 makes the padded "
                         "engine's OpenMP team spin and measures the machine's load, not the engine")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    engines = args.engines.split(",")
    assert engines[0] == "padded", "the first engine is the baseline: padded"

    suite = load_suite(SUITE)
    tasks = load_tasks(suite)
    model, tok = load_model_and_tokenizer(resolve_model_path(suite.models[0].path))
    backend = TransformersBackend(model, tok, device=args.device)
    print(f"model: {suite.models[0].path}  device: {backend.device}  rounds: {args.rounds}  "
          f"torch threads: {torch.get_num_threads()}")

    for task in tasks:
        gens = {e: task.spec.generation.model_copy(update={"engine": e}) for e in engines}
        refs = [ex.reference for ex in task.examples]
        seconds: dict[str, list[float]] = {e: [] for e in engines}
        outputs: dict[str, list] = {}
        for r in range(args.rounds):
            for e in engines[r % len(engines):] + engines[: r % len(engines)]:
                t0 = time.perf_counter()
                outputs[e] = backend.generate(task.examples, gens[e])
                seconds[e].append(time.perf_counter() - t0)
        n = len(task.examples)
        g = task.spec.generation
        print(f"\ntask {task.spec.name}: {n} items, greedy, max_new_tokens {g.max_new_tokens}, batch_size {g.batch_size}")
        print(f"{'engine':<11} {'median s':>9} {'items/s':>8} {'x padded':>9} {'identical':>10} "
              f"{'BLEU':>6} {'dBLEU':>6} {'same finish/tokens':>19}")
        base = outputs["padded"]
        base_bleu = sacrebleu.corpus_bleu([o.text for o in base], [refs]).score
        base_t = statistics.median(seconds["padded"])
        for e in engines:
            t = statistics.median(seconds[e])
            same = sum(a.text == b.text for a, b in zip(outputs[e], base))
            meta = sum((a.finish_reason, a.output_tokens, a.prompt_tokens) ==
                       (b.finish_reason, b.output_tokens, b.prompt_tokens) for a, b in zip(outputs[e], base))
            bleu = sacrebleu.corpus_bleu([o.text for o in outputs[e]], [refs]).score
            print(f"{e:<11} {t:9.2f} {n / t:8.1f} {base_t / t:8.2f}x {same:>6}/{n:<3} "
                  f"{bleu:6.2f} {bleu - base_bleu:+6.2f} {meta:>15}/{n:<3}")
        print("per-round seconds: " + "; ".join(f"{e} " + " ".join(f"{s:.2f}" for s in seconds[e]) for e in engines))


if __name__ == "__main__":
    main()
