"""1 process vs 2 processes (accelerate launch, gloo on CPU): same suite, same effective batch;
and with 2 processes, per-epoch grading on rank 0 (others wait) vs sharded across the ranks.

The single process trains with batch_size B; the two processes with B/2 each, so every
optimizer step sees the same rows (accelerate hands consecutive batches of the seeded order to
the ranks). Prints both wall times, their ratio, and per epoch whether the graded scores are
equal, and the grading seconds of rank-0 vs sharded grading. Then grades each saved checkpoint of the 2-process run with `harness grade` (one
process) and checks the scores equal those graded during training.

    ./run python benchmarks/processes_cpu.py [--model builtin:tiny-translator] [--rows 256]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
name: procs
models: [{{name: tiny, path: {model}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: {rows}}}}}]
  epochs: {epochs}
  lr: 2.0e-3
  batch_size: {batch}
  max_seq_len: 96
  logging_steps: 1
  {distributed}
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: {items}}}}}
    metrics: [bleu, chrf, perplexity]
    generation: {{max_new_tokens: 24, batch_size: 32}}
bootstrap: {{samples: 50}}
"""
LAUNCH = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def scores(run: Path) -> list[dict]:
    res = json.loads((run / "results.json").read_text())
    return [{"epoch": e["epoch"], "loss": e["tasks"]["en-fr"]["loss"],
             **{m: v["score"] for m, v in e["tasks"]["en-fr"]["metrics"].items()}}
            for e in res["models"][0]["epochs"]]


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, seconds spent grading as rank 0 logged them)."""
    import re

    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}).stdout
    return time.perf_counter() - t0, sum(float(x) for x in re.findall(r"graded in ([0-9.]+)s", out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="builtin:tiny-translator")
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="the single process's batch; each of 2 ranks takes half")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="procs-"))
    fmt = dict(model=args.model, rows=args.rows, items=args.items, epochs=args.epochs)
    (tmp / "one.yaml").write_text(SUITE.format(batch=args.batch, distributed="", **fmt))
    (tmp / "two.yaml").write_text(SUITE.format(batch=args.batch // 2, distributed="", **fmt))
    (tmp / "shard.yaml").write_text(SUITE.format(batch=args.batch // 2, distributed="distributed: {grading: sharded}",
                                                 **fmt))
    harness = ["-m", "harness", "train-and-grade"]
    t1, g1 = timed([sys.executable, *harness, str(tmp / "one.yaml"), "--run-dir", str(tmp / "one"), "--no-report"])
    t2, g2 = timed([sys.executable, *LAUNCH, "--num_processes", "2", *harness,
                    str(tmp / "two.yaml"), "--run-dir", str(tmp / "two"), "--no-report"])
    t3, g3 = timed([sys.executable, *LAUNCH, "--num_processes", "2", *harness,
                    str(tmp / "shard.yaml"), "--run-dir", str(tmp / "shard"), "--no-report"])
    one, two, shard = scores(tmp / "one"), scores(tmp / "two"), scores(tmp / "shard")
    print(f"1 process : {t1:.1f} s (grading {g1:.1f} s)   2 processes, rank-0 grading: {t2:.1f} s "
          f"(grading {g2:.1f} s)   ratio 2p/1p = {t2 / t1:.2f}")
    print(f"2 processes, sharded grading: {t3:.1f} s (grading {g3:.1f} s)   "
          f"grading ratio sharded/rank-0 = {g3 / g2:.2f}")
    for a, b, c in zip(one, two, shard):
        same = {k: a[k] == b[k] for k in a if k != "epoch"}
        same_shard = {k: b[k] == c[k] for k in b if k != "epoch"}
        print(f"epoch {a['epoch']}: 1p {a}  2p {b}  equal 1p/2p: {same}  equal rank-0/sharded: {same_shard}")
    res = json.loads((tmp / "two" / "results.json").read_text())
    for e in res["models"][0]["epochs"][1:]:
        ckpt = tmp / "two" / e["checkpoint"]
        out = tmp / f"grade-{e['epoch']}"
        subprocess.run([sys.executable, "-m", "harness", "-q", "grade", str(tmp / "two.yaml"), "--model", str(ckpt),
                        "--run-dir", str(out), "--no-report"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
        g = scores(out)[0]
        t = next(s for s in two if s["epoch"] == e["epoch"])
        print(f"epoch {e['epoch']}: graded in training {t} / `harness grade` {g}: "
              f"equal {all(g[k] == t[k] for k in g if k != 'epoch')}")
    print(f"(run dirs under {tmp})")


if __name__ == "__main__":
    main()
