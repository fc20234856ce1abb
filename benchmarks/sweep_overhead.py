"""The sweep's own cost: study bookkeeping against the trials' training and grading, in one run.

Runs the worked example of docs/sweep.md (the built-in tiny model, lr × precision on a grid,
2 epochs, median pruning, default SQLite storage) in this process and splits its wall time into
  runs         inside the trials' train-and-grade runs (training, grading, diagnostics, writing)
  bookkeeping  everything else: opening the storage and the study, the grid queued, sampling,
               heartbeats, reporting epochs, pruning decisions, stale-trial checks, trial records,
               each trial's suite built and validated
The issue's target: bookkeeping <= 2% of wall time on this CPU example. The sweep's report is not
part of it (it renders once, after the study). Bookkeeping is printed in two parts: setup, once per
worker (importing Optuna and SQLAlchemy, creating the database's tables and the study, checking
the block), and the per-trial part. torch and transformers are imported before the clock starts:
every train-and-grade pays for them, sweep or not.

    python benchmarks/sweep_overhead.py [--trials 6] [--model DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET = 0.02

SUITE = """\
name: bench-sweep
models: [{{name: tiny, path: {model}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 32}}}}]
  epochs: 2
  batch_size: 8
  max_seq_len: 64
  logging_steps: 1
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 6}}}}
    metrics: [chrf, bleu]
    generation: {{max_new_tokens: 12, batch_size: 8}}
bootstrap: {{samples: 20}}
diagnostics: {{forgetting: {{samples: 100}}}}
output_dir: {out}
sweep:
  params:
    train.lr: [1.0e-3, 1.0e-2, 3.0e-2]
    train.precision: [fp32, bf16]
  sampler: grid
  pruner: median
  trials: {trials}
  objective: {{metric: en-fr/chrf, at: best}}
  constraints: {{forgetting: none}}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--model", default="builtin:tiny-translator")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from harness.builtin import resolve_model_path
    from harness.suite import load_suite
    from harness.sweep import study as studies
    from harness.sweep.runner import Worker
    from harness.sweep.space import plan_sweep

    model = resolve_model_path(args.model, log=lambda m: None)   # built before the clock starts
    import harness.pipeline  # noqa: F401
    import torch  # noqa: F401  (as `harness sweep` does before the sweep starts: any training command's cost)
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(SUITE.format(model=model, out=Path(tmp) / "runs", trials=args.trials))
        suite = load_suite(path)
        lines: list[str] = []
        t0 = time.perf_counter()
        plan = plan_sweep(suite)
        sweep_dir = Path(tmp) / "runs" / "bench-sweep"
        sweep_dir.mkdir(parents=True)
        storage = studies.open_storage(studies.default_storage(sweep_dir))
        opened = studies.open_study(plan, storage, "bench-sweep", None)
        setup = time.perf_counter() - t0
        outcome = Worker(plan, opened, sweep_dir, "bench-sweep", lines.append, quiet_runs=True).run()
        wall = time.perf_counter() - t0
    bookkeeping = wall - outcome.runs_s
    per_trial = bookkeeping - setup
    print(f"sweep of {len(outcome.trials)} trials ({sum('pruned' in x for x in lines)} pruned) on "
          f"{os.cpu_count()} CPUs, SQLite storage")
    print(f"{'part':<14}{'seconds':>10}{'share':>9}")
    print(f"{'wall':<14}{wall:>10.2f}{1:>9.1%}")
    print(f"{'runs':<14}{outcome.runs_s:>10.2f}{outcome.runs_s / wall:>9.1%}")
    print(f"{'bookkeeping':<14}{bookkeeping:>10.2f}{bookkeeping / wall:>9.2%}")
    print(f"{'  setup':<14}{setup:>10.2f}{setup / wall:>9.2%}")
    print(f"{'  per trial':<14}{per_trial:>10.2f}{per_trial / wall:>9.2%}")
    ok = bookkeeping / wall <= TARGET
    print(f"bookkeeping / wall = {bookkeeping / wall:.2%} (target <= {TARGET:.0%}): {'met' if ok else 'NOT met'}; "
          f"per trial {per_trial / wall:.2%}: {'met' if per_trial / wall <= TARGET else 'NOT met'} "
          f"(setup is paid once per worker, mostly importing Optuna, SQLAlchemy and alembic)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
