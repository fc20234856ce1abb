"""Does drift (no labels) see the forgetting the suite did not grade?

Runs of the built-in model fine-tuned on en→fr with only en→fr graded plus the built-in probe
(suites/translation-drift.yaml, smaller here: --train-n rows, --items test items). fr→en is NOT
graded in those runs; each run's last checkpoint is graded on fr→en afterwards, beside the
base model, for the BLEU drop that drift should track. Printed:

1. one row per run (learning rates 1e-4..3e-3, 1-3 epochs): KL(base ‖ last epoch) on the
   probe, the NLL drift on the replies (worst probe group), KL on the task prompts, the fr→en BLEU drop, the
   drift verdict, the truncated KL over the exact KL (same probe, the suite's top_k), and the
   probe's cost beside the epoch's grading and the epoch's training + grading;
2. Spearman's rank correlation of each drift signal with the fr→en BLEU drop over the runs;
3. null runs (lr 1e-6, 2 epochs, 3 seeds): any drift cell significant is a false alarm.

No assertions. Timings on a shared machine are noisy; the probe's share is measured within
each run (the same process, the same epoch), so it is a ratio of like with like.

    PYTHONPATH=. python benchmarks/drift_vs_forgetting.py            # ~30 min on 2 busy cores
    PYTHONPATH=. python benchmarks/drift_vs_forgetting.py --quick    # 3 runs, 1 null run
    PYTHONPATH=. python benchmarks/drift_vs_forgetting.py --default-suite-cost 3   # the probe's cost alone
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUNS = [(1e-4, 2), (3e-4, 1), (3e-4, 3), (1e-3, 2), (3e-3, 1), (3e-3, 3)]
NULL = [(1e-6, 2, seed) for seed in (0, 1, 2)]

SUITE = """
name: drift-bench
models: [{{name: tiny-translator, path: builtin:tiny-translator}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: {train_n}, seed: 1}}}}]
  method: full
  epochs: {epochs}
  lr: {lr}
  scheduler: linear
  warmup_ratio: 0.05
  batch_size: 16
  max_seq_len: 128
  precision: fp32
  seed: {seed}
tasks:
  - name: {task}
    data: {{synthetic: {{kind: translation, direction: {task}, split: val, n: {items}}}}}
    metrics: [bleu]
    generation: {{max_new_tokens: 48, batch_size: 50}}
diagnostics:
  probe: {{data: {{builtin: translation}}, n: 256, top_k: {top_k}}}
bootstrap: {{samples: 1000, seed: 0}}
"""


def spearman(x, y) -> float:
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = v.argsort()
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for val in np.unique(v):   # ties: the mean rank
            r[v == val] = r[v == val].mean()
        return r
    rx, ry = ranks(x), ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def suite_for(task: str, lr: float, epochs: int, seed: int, args):
    from harness.suite import parse_suite

    items = args.fr_en_items if task == "fr-en" else args.items
    text = SUITE.format(train_n=args.train_n, epochs=epochs, lr=lr, seed=seed, task=task, items=items,
                        top_k=args.top_k)
    return parse_suite(text, "<drift-bench>", REPO)


def fr_en_bleu(path: str, args, out: Path) -> float:
    """fr→en BLEU of one model directory (graded here only, never in the drift runs)."""
    from harness.pipeline import grade_models
    from harness.suite import ModelSpec

    suite = suite_for("fr-en", 1e-4, 1, 0, args)
    suite.diagnostics.probe = None
    results, _ = grade_models(suite, [ModelSpec(name="m", path=path)], log=lambda m: None, run_dir=str(out))
    return results["models"][0]["epochs"][0]["tasks"]["fr-en"]["metrics"]["bleu"]["score"]


def truncated_over_exact(ckpt: str, base_model, tokenizer, top_k: int) -> float:
    from harness.backends.transformers_backend import load_model_and_tokenizer
    from harness.drift.probe import builtin_items, tokenize_probe
    from harness.drift.scoring import exact_kl_per_item, score_probe

    tp = tokenize_probe(tokenizer, builtin_items("translation", 256), 128)
    base_full, tuned_full = [], []
    base = score_probe(base_model, tp, 32, top_k=top_k, full_logprobs=base_full)
    tuned, _ = load_model_and_tokenizer(ckpt)
    got = score_probe(tuned, tp, 32, base=base.base, full_logprobs=tuned_full)
    exact, _ = exact_kl_per_item(base_full, tuned_full, len(tp.ids))
    return float(got.kl.sum() / exact.sum()) if exact.sum() > 0 else float("nan")


def one_run(lr: float, epochs: int, seed: int, args, tmp: Path) -> dict:
    from harness.pipeline import train_and_grade

    suite = suite_for("en-fr", lr, epochs, seed, args)
    root = tmp / f"run-{lr:g}-{epochs}-{seed}"
    t0 = time.perf_counter()
    results, run = train_and_grade(suite, log=lambda m: None, run_dir=str(root))
    rec = results["models"][0]
    drift = rec["diagnostics"]["drift"]
    last = str(rec["epochs"][-1]["epoch"])
    trained = [e for e in rec["epochs"] if e["epoch"] > 0]
    probe_s = np.mean([e["drift"]["seconds"] for e in trained])
    grade_s = np.mean([sum(t["seconds"] for t in e["tasks"].values()) + e["drift"]["seconds"] for e in trained])
    epoch_s = (rec["train"]["seconds"] or 0) / len(trained)   # the Trainer's time: its gradings included
    sig = lambda name: drift["signals"][name]["epochs"][last]  # noqa: E731
    groups = {g: cells[last]["value"] for g, cells in (drift["signals"]["nll"].get("groups") or {}).items()}
    return {"lr": lr, "epochs": epochs, "seed": seed, "kl": sig("kl")["value"], "nll": sig("nll")["value"],
            "nll_group": sig("nll").get("group"), "nll_groups": groups, "kl_prompts": sig("kl_prompts")["value"],
            "verdict": drift["verdict"]["status"],
            "alarm": any(c["significant"] for row in drift["signals"].values() for c in row["epochs"].values()),
            "probe_share_grading": probe_s / grade_s, "probe_share_epoch": probe_s / epoch_s,
            "checkpoint": str(run.root / rec["epochs"][-1]["checkpoint"]), "seconds": time.perf_counter() - t0}


def default_suite_cost(rounds: int) -> None:
    """The probe's share of a graded epoch on suites/translation-drift.yaml: the default suite's
    training (2,000 rows, 4 epochs), en→fr graded, the built-in probe; torch's own threads."""
    from harness.pipeline import train_and_grade
    from harness.suite import load_suite

    print("probe cost on suites/translation-drift.yaml (the default suite's training, en→fr graded, built-in probe)")
    print(f"{'round':>5} {'capture s':>9} {'probe s/epoch':>13} {'graded epoch s':>14} {'probe/epoch':>11}")
    shares = []
    for k in range(rounds):
        with tempfile.TemporaryDirectory() as d:
            results, _ = train_and_grade(load_suite(REPO / "suites" / "translation-drift.yaml"), log=lambda m: None,
                                         run_dir=str(Path(d) / "run"))
        rec = results["models"][0]
        trained = [e for e in rec["epochs"] if e["epoch"] > 0]
        probe_s = float(np.mean([e["drift"]["seconds"] for e in trained]))
        epoch_s = rec["train"]["seconds"] / len(trained)     # training with its gradings, per epoch
        shares.append(probe_s / epoch_s)
        print(f"{k + 1:>5} {rec['epochs'][0]['drift']['seconds']:>9.2f} {probe_s:>13.2f} {epoch_s:>14.2f} "
              f"{shares[-1]:>11.1%}")
    print(f"probe cost: {np.mean(shares):.1%} of a graded epoch, mean of {rounds} runs (the goal: at most 5%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--default-suite-cost", type=int, metavar="RUNS", default=0,
                    help="only measure the probe's cost on suites/translation-drift.yaml, over RUNS runs")
    ap.add_argument("--train-n", type=int, default=500, help="training rows (the default suite has 2,000)")
    ap.add_argument("--items", type=int, default=50, help="en→fr items graded per epoch")
    ap.add_argument("--fr-en-items", type=int, default=100, help="fr→en items graded after each run (BLEU drop)")
    ap.add_argument("--top-k", type=int, default=512, help="the probe's top_k (suites/translation-drift.yaml's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.default_suite_cost:
        default_suite_cost(args.default_suite_cost)
        return
    import torch

    from harness.backends.transformers_backend import load_model_and_tokenizer
    from harness.builtin import resolve_model_path

    torch.set_num_threads(args.threads)
    runs, nulls = (RUNS[1::2], NULL[:1]) if args.quick else (RUNS, NULL)
    base_path = resolve_model_path("builtin:tiny-translator", log=lambda m: None)
    base_model, tokenizer = load_model_and_tokenizer(base_path)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base_bleu = fr_en_bleu(base_path, args, tmp / "base-fr-en")
        rows = []
        for lr, epochs in runs:
            r = one_run(lr, epochs, 0, args, tmp)
            r["fr_en_drop"] = base_bleu - fr_en_bleu(r["checkpoint"], args, tmp / f"fr-en-{lr:g}-{epochs}")
            r["trunc_exact"] = truncated_over_exact(r["checkpoint"], base_model, tokenizer, args.top_k)
            rows.append(r)
            print(f"  run lr {lr:g} x{epochs}: {r['seconds']:.0f}s", flush=True)
        null_rows = [one_run(lr, epochs, seed, args, tmp) for lr, epochs, seed in nulls]
    print(f"\ndrift vs the fr→en forgetting nobody graded: built-in model, {args.train_n} en→fr training rows, "
          f"{args.items} en→fr items graded per epoch, {args.fr_en_items} fr→en items graded after, probe 256 built-in sentences, top_k {args.top_k}, torch threads {args.threads}")
    print(f"base fr→en BLEU {base_bleu:.2f}\n")
    head = (f"{'lr':>7} {'ep':>2} {'KL probe':>9} {'NLL drift':>12} {'KL prompts':>10} {'fr→en drop':>10} "
            f"{'verdict':>7} {'KLk/KL':>7} {'probe/grading':>13} {'probe/epoch':>11}")
    print(head)
    for r in rows:
        print(f"{r['lr']:>7g} {r['epochs']:>2} {r['kl']:>9.4f} {r['nll']:>+8.4f} ({r['nll_group'] or '-':>2}) "
              f"{r['kl_prompts']:>10.4f} {r['fr_en_drop']:>10.2f} {r['verdict']:>7} {r['trunc_exact']:>7.4f} "
              f"{r['probe_share_grading']:>13.1%} {r['probe_share_epoch']:>11.1%}")
    drops = [r["fr_en_drop"] for r in rows]
    print()
    for name in ("kl", "nll", "kl_prompts"):
        print(f"Spearman({name}, fr→en BLEU drop) over {len(rows)} runs: {spearman([r[name] for r in rows], drops):+.3f}")
    for g in sorted({g for r in rows for g in r["nll_groups"]}):
        values = [r["nll_groups"].get(g, float("nan")) for r in rows]
        print(f"Spearman(NLL drift of probe group {g!r} alone, fr→en BLEU drop): {spearman(values, drops):+.3f} "
              f"(values {', '.join(f'{v:+.3f}' for v in values)})")
    worst = max(abs(1 - r["trunc_exact"]) for r in rows)
    print(f"truncated KL vs exact KL: worst relative error {worst:.2%} at top_k {args.top_k}")
    print(f"probe cost: {np.mean([r['probe_share_grading'] for r in rows]):.1%} of an epoch's grading, "
          f"{np.mean([r['probe_share_epoch'] for r in rows]):.1%} of a graded epoch (training + grading), mean")
    print("\nnull runs (lr 1e-6, 2 epochs):")
    for r in null_rows:
        print(f"  seed {r['seed']}: KL {r['kl']:.2e}, NLL drift {r['nll']:+.2e}, KL prompts {r['kl_prompts']:.2e}, "
              f"verdict {r['verdict']}, alarm {'YES' if r['alarm'] else 'no'}")
    print(f"false alarms: {sum(r['alarm'] for r in null_rows)} of {len(null_rows)} null runs")


if __name__ == "__main__":
    main()
