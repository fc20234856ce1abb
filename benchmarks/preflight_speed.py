"""How long `harness preflight` takes on a shipped config, and what importing torch would add.

The preflight reads JSON only (shipped config and inventory): it must stay quick enough to run
before every job. tests/test_memory.py checks that it never imports torch or transformers; the
timings are measured here instead of asserted there (a busy machine makes wall-clock assertions
flaky). Each measurement is a fresh interpreter, offline, with an empty harness cache:

    ./run python benchmarks/preflight_speed.py [--repeat 3]

Prints the median wall time of the in-process preflight (import + run, as the test measured it),
of the whole subprocess, and of `import torch, transformers` alone, with their ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITES = [REPO / "suites" / "memory" / "gemma-3-270m-full.yaml", REPO / "suites" / "memory" / "qwen3-4b-qlora.yaml"]


def _run(script: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_CACHE": cache,
               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO,
                             timeout=300)
        return time.perf_counter() - t0, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch_times = [_run("import torch, transformers")[0] for _ in range(args.repeat)]
    torch_s = statistics.median(torch_times)
    print(f"import torch, transformers alone: {torch_s:.2f} s (median of {args.repeat})")
    for suite in SUITES:
        inner, outer = [], []
        for _ in range(args.repeat):
            script = ("import sys, time; t = time.perf_counter(); from harness.cli import main; "
                      f"code = main(['preflight', {str(suite)!r}, '--gpu-memory', '12GiB']); "
                      "print('RESULT', code, 'torch' in sys.modules, time.perf_counter() - t)")
            wall, stdout = _run(script)
            result = stdout.split("RESULT")[-1].split()
            inner.append(float(result[2]))
            outer.append(wall)
            assert result[1] == "False", "the preflight imported torch"
        p_in, p_out = statistics.median(inner), statistics.median(outer)
        print(f"{suite.name}: preflight {p_in:.2f} s in-process, {p_out:.2f} s with interpreter start "
              f"(median of {args.repeat}); ratio to importing torch+transformers {p_in / torch_s:.2f}")


if __name__ == "__main__":
    main()
