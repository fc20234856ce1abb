"""The report's serving-performance section: the `perf` records of the run directories
(written by `harness perf`), one table row per concurrency level."""
from __future__ import annotations

from pathlib import Path

from harness.results import load_results


def perf_tables(run_dirs: list[Path]) -> list[dict]:
    """One {run, tool line, rows} per run directory that holds a `perf` section."""
    out = []
    for d in run_dirs:
        results, run = load_results(d)
        perf = results.get("perf")
        if not isinstance(perf, dict) or not perf.get("levels"):
            continue
        rows = [{"concurrency": lv.get("concurrency"), "succeeded": lv.get("succeeded"),
                 "requests": lv.get("requests"), "rps": lv.get("requests_per_s"),
                 "out_tps": lv.get("output_tokens_per_s"), "total_tps": lv.get("total_tokens_per_s"),
                 "ttft": _points(lv.get("ttft_s")), "tpot": _points(lv.get("tpot_s")),
                 "latency": _points(lv.get("latency_s"))}
                for lv in perf["levels"] if isinstance(lv, dict)]
        out.append({"run": run.root.resolve().name, "model": perf.get("model"), "endpoint": perf.get("endpoint"),
                    "version": perf.get("evalscope_version"), "max_tokens": perf.get("max_tokens"), "rows": rows})
    return out


def _points(d) -> dict:
    d = d if isinstance(d, dict) else {}
    return {k: d.get(k) for k in ("mean", "50%", "90%", "95%", "99%")}
