"""Two loops that must stay linear, timed where a test cannot time them honestly.

- `generate_pairs`: the synthetic translation sampler (20,000 pairs; the built-in model's
  pre-training draws ~30,000). Pairs per second, and the ratio of 20k to 2k pairs' time.
- `extract_json` on a fenced block with a long whitespace run: a regex like ```(.*?)\\s*```
  backtracks quadratically there. The ratio of 99k to 9.9k characters' time should be about
  10 (linear), not 100.

    ./run python benchmarks/text_scanning.py
"""
from __future__ import annotations

import time

from harness.metrics.json_validity import extract_json
from harness.synthetic.translation import generate_pairs


def seconds(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    small, large = seconds(lambda: generate_pairs(2_000, 0)), seconds(lambda: generate_pairs(20_000, 0))
    print(f"generate_pairs: 2,000 in {small:.3f} s, 20,000 in {large:.3f} s "
          f"({20_000 / large:,.0f} pairs/s); 10x the pairs took {large / small:.1f}x as long")
    short = seconds(lambda: extract_json("```json\n" + " " * 9_900 + "x```", "fenced"))
    long = seconds(lambda: extract_json("```json\n" + " " * 99_000 + "x```", "fenced"))
    print(f"extract_json (fenced, whitespace run): 9.9k chars {short * 1e3:.2f} ms, 99k chars "
          f"{long * 1e3:.2f} ms; 10x the text took {long / short:.1f}x as long (linear: ~10)")


if __name__ == "__main__":
    main()
