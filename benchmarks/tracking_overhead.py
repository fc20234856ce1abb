"""What tracking costs, and that tracking off costs nothing.

Runs one small train-and-grade (the built-in model, 2 epochs) several ways, interleaved in
rounds so that the shared machine's load falls on all of them alike, each in its own process:

    baseline   another checkout of the project (--baseline-repo, e.g. the main branch), tracking off
    off        this checkout, tracking off (the default)
    BACKEND    this checkout with --track BACKEND (MLflow on a SQLite file, W&B offline, local trackio)

and prints each one's median wall time and its ratio to `off`, and whether `off` wrote the same
results.json as `baseline` (scores, verdicts and records, leaving out times, dates and the
process/environment records, which differ between any two runs).

    ./run python benchmarks/tracking_overhead.py --baseline-repo ../main [--rounds 2] [--backends tensorboard,mlflow]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = """
name: bench
models: [{name: tiny-translator, path: "builtin:tiny-translator"}]
train:
  data: [{synthetic: {kind: translation, direction: en-fr, split: train, n: 64}}]
  epochs: 2
  lr: 2.0e-3
  batch_size: 16
  max_seq_len: 96
  logging_steps: 1
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 16}}
    metrics: [bleu, chrf, usability]
    generation: {max_new_tokens: 24, batch_size: 16}
  - name: fr-en
    data: {synthetic: {kind: translation, direction: fr-en, split: val, n: 16}}
    metrics: [bleu, usability]
    generation: {max_new_tokens: 24, batch_size: 16}
bootstrap: {samples: 200}
"""
VARYING = {"created", "finished", "process", "environment", "seconds", "grading_memory", "memory", "suite"}


def run_once(repo: Path, suite: Path, out: Path, backend: str | None, tmp: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
           "TRACKIO_DIR": str(tmp / "trackio")}
    args = [sys.executable, "-m", "harness", "-q", "train-and-grade", str(suite), "--run-dir", str(out), "--no-report"]
    t0 = time.perf_counter()
    done = subprocess.run(args + (["--track", backend] if backend else []), cwd=tmp, env=env,   # ./mlruns there
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{backend or 'off'} in {repo} failed:\n{done.stderr[-2000:]}")
    return seconds


def comparable(obj):
    """results.json without what differs between any two runs of the same suite."""
    if isinstance(obj, dict):
        return {k: comparable(v) for k, v in obj.items() if k not in VARYING and k != "path"}
    if isinstance(obj, list):
        return [comparable(v) for v in obj]
    return obj


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-repo", type=Path, help="another checkout to time with tracking off")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backends", default="tensorboard,mlflow,wandb,trackio")
    args = ap.parse_args()
    configs = ([("baseline", args.baseline_repo.resolve(), None)] if args.baseline_repo else []) + \
        [("off", REPO, None)] + [(b, REPO, b) for b in args.backends.split(",") if b]
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        suite = tmp / "bench.yaml"
        suite.write_text(SUITE, encoding="utf-8")
        for r in range(args.rounds):
            for name, repo, backend in configs:
                times[name].append(run_once(repo, suite, tmp / f"{name}-{r}", backend, tmp))
                print(f"round {r + 1}: {name}: {times[name][-1]:.1f}s", file=sys.stderr)
        same = None
        if args.baseline_repo:
            load = lambda name: comparable(json.loads((tmp / f"{name}-0" / "results.json").read_text()))  # noqa: E731
            same = load("baseline") == load("off")
            has_key = "tracking" in json.loads((tmp / "off-0" / "results.json").read_text())
    off = statistics.median(times["off"])
    print(f"{'run':<12} {'median s':>9} {'vs off':>7}   ({args.rounds} rounds, interleaved)")
    for name, _, _ in configs:
        med = statistics.median(times[name])
        print(f"{name:<12} {med:>9.1f} {med / off:>7.2f}")
    if same is not None:
        print(f"tracking off: results.json {'identical to' if same else 'DIFFERS from'} the baseline's "
              f"(times, dates, process and environment left out); a 'tracking' key: {has_key}")


if __name__ == "__main__":
    main()
