"""Run directories for report tests: `run_fixtures.make_run` plus what a trained run adds.

`make_run` grades outputs with the real metric objects and writes results.json, suite.yaml
and samples/. On top of it, `make_report_run` picks outputs that tell the story of MISSION
fact 1 (the trained direction, the first task, gets better every epoch; the other task is
forgotten) and adds what `train-and-grade` writes besides scores: the training config and
log, and the diagnostic sections (audit, memory, forgetting, inflection, gates) in the
shapes docs/results.md describes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from harness.diagnose import diagnose_model
from harness.results import load_results, write_json
from harness.suite import load_suite
from run_fixtures import damage, make_run, sentences

STEPS_PER_EPOCH = 10          # make_run stores step = epoch * 10
METRICS = ("bleu", "chrf", "perplexity", "usability")
ENGLISH = "the black cat eats a small red apple in the green garden while the old dog sleeps".split()


def make_report_run(root: Path, *, epochs: int = 3, n: int = 40, tasks: tuple[str, ...] = ("en-fr", "fr-en"),
                    models: tuple[str, ...] = ("tiny-translator",), seed: int = 0, lr: float = 1e-3,
                    bootstrap: int = 50, sections: bool = True,
                    output_hook: Optional[Callable[[str, int, int, str], str]] = None,
                    results_hook: Optional[Callable[[dict], None]] = None) -> Path:
    """Write a run directory at `root` with epochs 0..`epochs` of every model; return it.

    output_hook(task, epoch, i, output) -> output lets a test plant hostile outputs;
    results_hook(results) edits results.json last. sections=False leaves out audit, memory,
    diagnostics and gates (as a run graded by code without those sections would).
    """
    refs = {t: sentences(n, seed=seed * 100 + k + 1) for k, t in enumerate(tasks)}
    srcs = {t: sentences(n, seed=seed * 100 + k + 50, words=ENGLISH) for k, t in enumerate(tasks)}

    def outputs(mi: int) -> dict:
        by_epoch = {}
        for epoch in range(epochs + 1):
            by_epoch[epoch] = {}
            for ti, task in enumerate(tasks):
                rate = (0.7 - 0.15 * epoch) if ti == 0 else (0.3 + 0.1 * epoch)   # trained vs forgotten
                rate = min(0.95, max(0.02, rate + 0.05 * mi))
                outs = damage(refs[task], rate, seed=seed * 10_000 + mi * 1000 + ti * 100 + epoch)
                if output_hook:
                    outs = [output_hook(task, epoch, i, o) for i, o in enumerate(outs)]
                by_epoch[epoch][task] = outs
        return by_epoch

    def add_training(results: dict) -> None:
        results["suite"]["train"] = {
            "data": [{"synthetic": {"kind": "translation", "direction": tasks[0], "split": "train",
                                    "n": 1200, "seed": 1}}],
            "method": "full", "epochs": epochs, "lr": lr, "batch_size": 16}
        for mi, record in enumerate(results["models"]):
            log = [{"step": s, "epoch": s / STEPS_PER_EPOCH, "lr": lr, "grad_norm": 1.0,
                    "loss": 3.0 * (0.8 + 0.2 * mi) / (1 + s / 15) + 0.03 * ((s * 7 + seed) % 5)}
                   for s in range(2, epochs * STEPS_PER_EPOCH + 1, 2)]
            record["train"] = {"log": log, "steps_per_epoch": STEPS_PER_EPOCH, "seconds": 60.0}
            for e in record["epochs"][1:]:
                e["train_loss"] = log[e["epoch"] * STEPS_PER_EPOCH // 2 - 1]["loss"]
            if sections:
                _add_sections(record, tasks, epochs)
        if sections:
            results["gates"] = {"verdict": {"status": "fail", "summary": f"1 of 3 gates failed: {tasks[-1]}/bleu fell 4.1"}}
        if results_hook:
            results_hook(results)

    return make_run(root, None, refs, models={m: outputs(mi) for mi, m in enumerate(models)},
                    metrics=METRICS, sources=srcs, bootstrap=bootstrap,
                    finish_reason=lambda task, epoch, i, out: "length" if i % 17 == 3 else "eos",
                    results_hook=add_training)


def _add_sections(record: dict, tasks: tuple[str, ...], epochs: int) -> None:
    """Diagnostic sections computed from the scores (the real ones come from harness.diagnose)."""
    base = record["epochs"][0]["tasks"]
    forgetting = {}
    for task in tasks:
        forgetting[task] = {}
        for metric in ("bleu", "chrf"):
            cells = []
            for e in record["epochs"][1:]:
                delta = e["tasks"][task]["metrics"][metric]["score"] - base[task]["metrics"][metric]["score"]
                cells.append({"epoch": e["epoch"], "delta_vs_base": delta, "forgotten": delta < -1.0})
            forgetting[task][metric] = {"epochs": cells}
    forgotten = any(c["forgotten"] for t in forgetting.values() for m in t.values() for c in m["epochs"])
    record["diagnostics"] = {
        "forgetting": {"verdict": {"status": "fail" if forgotten else "pass",
                                   "summary": f"{tasks[-1]}/bleu forgotten" if forgotten else "no forgetting"},
                       "tasks": forgetting},
        "inflection": {"verdict": {"status": "warn", "summary": f"{tasks[0]}/bleu peaked at epoch {max(0, epochs - 1)}"},
                       "series": {f"{tasks[0]}/bleu": {"best_epoch": epochs, "inflection_epoch": max(1, epochs - 1)}}},
    }
    record["audit"] = {"verdict": {"status": "pass", "summary": "labels mask prompt and padding tokens"}}
    record["memory"] = {
        "verdict": {"status": "pass", "summary": "estimate 5.1 GiB fits 12 GiB"},
        "estimate": {"weights": 0.5 * 2 ** 30, "gradients": 1.0 * 2 ** 30, "optimizer": 2.0 * 2 ** 30,
                     "activations": 1.3 * 2 ** 30, "framework": 0.3 * 2 ** 30},
        "measured": {"torch_peak_allocated": 4.6 * 2 ** 30, "nvml_peak": 5.4 * 2 ** 30},
        "folk_rule_bytes": 17.5 * 270e6, "budget_bytes": 12 * 2 ** 30,
    }


def make_diagnosed_run(root: Path, design_effect: Optional[float] = None) -> Path:
    """A run whose diagnostics come from `harness.diagnose` itself (power, forgetting with its
    family, checkpoint, item changes): en-fr improves at epoch 1 and holds, fr-en is ruined at
    epoch 2, de-en only moves by noise, so the tie set is {1, 2} and epoch 1 is the checkpoint to keep (as in
    tests/test_diagnose.py). `design_effect` is stored on fr-en/chrf's records, as a run with
    `data.cluster` writes it."""
    refs = {"en-fr": sentences(60, seed=1), "fr-en": sentences(60, seed=2), "de-en": sentences(60, seed=3)}
    # de-en changes by noise alone: 60 items can neither see nor rule out a 1-point drop (underpowered)
    rates = {"en-fr": [0.6, 0.2, 0.2], "fr-en": [0.1, 0.1, 0.8], "de-en": [0.3, 0.3, 0.3]}
    by_epoch = {ep: {t: damage(refs[t], r[ep], seed=10 * ep + k) for k, (t, r) in enumerate(rates.items())}
                for ep in range(3)}

    def clustered(results: dict) -> None:
        for e in results["models"][0]["epochs"]:
            e["tasks"]["fr-en"]["metrics"]["chrf"]["design_effect"] = design_effect

    make_run(root, by_epoch, refs, best_metric="en-fr/bleu", bootstrap=50,
             results_hook=clustered if design_effect is not None else None)
    results, run = load_results(root)
    diagnose_model(results["models"][0], run, load_suite(root / "suite.yaml"))
    write_json(run.results_path, results)
    return root
