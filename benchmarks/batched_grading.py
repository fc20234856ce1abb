"""Batched grading vs a one-sample-at-a-time generation loop, same model, same data.

The QLoRA write-up in MISSION.md fact 6 graded one sample at a time. This measures what
batching (length-sorted, left-padded) buys on the built-in model, and checks that the
outputs are identical. Prints both timings and the speed-up ratio measured in this run.

    ./run python benchmarks/batched_grading.py [--n 200] [--batch-size 50]
"""
from __future__ import annotations

import argparse
import time

from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
from harness.builtin import resolve_model_path
from harness.data import load_rows
from harness.suite import DataSpec, GenerationSpec, parse_suite


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    suite = parse_suite("name: b\nmodels: [{path: builtin:tiny-translator}]\n"
                        "tasks: [{name: en-fr, data: {synthetic: {n: 1}}}]\n")
    examples = load_rows(DataSpec(synthetic={"direction": "en-fr", "split": "val", "n": args.n}), suite)
    model, tok = load_model_and_tokenizer(resolve_model_path("builtin:tiny-translator"))
    backend = TransformersBackend(model, tok)

    t0 = time.perf_counter()
    batched = backend.generate(examples, GenerationSpec(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size))
    t_batched = time.perf_counter() - t0
    one = GenerationSpec(max_new_tokens=args.max_new_tokens, batch_size=1)
    t0 = time.perf_counter()
    single = [backend.generate([ex], one)[0] for ex in examples]
    t_single = time.perf_counter() - t0

    same = sum(a.text == b.text for a, b in zip(batched, single))
    print(f"items: {len(examples)}  batch size: {args.batch_size}  max_new_tokens: {args.max_new_tokens}")
    print(f"one at a time: {t_single:7.2f} s  ({len(examples) / t_single:6.1f} items/s)")
    print(f"batched:       {t_batched:7.2f} s  ({len(examples) / t_batched:6.1f} items/s)")
    print(f"speed-up (one-at-a-time time / batched time): {t_single / t_batched:.1f}x")
    print(f"identical outputs: {same}/{len(examples)}")


if __name__ == "__main__":
    main()
