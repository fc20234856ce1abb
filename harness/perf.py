"""Serving stress test of an OpenAI-compatible endpoint through EvalScope's perf module.

`harness perf SUITE --endpoint URL` writes the suite's own prompts (every task's prompt
messages, tasks interleaved) as an EvalScope `line_by_line` dataset file (one JSON array of
chat messages a line), runs `evalscope.perf.main.run_perf_benchmark` once per concurrency
level, and keeps per level: throughput (requests/s, output and total tokens/s), time to first
token, time per output token and latency percentiles. The load generator, the streaming
timers and the percentile arithmetic are EvalScope's; this module only chooses the prompts and
records the numbers (schema: docs/results.md, section `perf`).

`pip install 'harness[evalscope]'` adds EvalScope.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from harness.backends.openai_backend import base_url, served_model
from harness.builtin import resolve_model_path
from harness.errors import UserError
from harness.grade import load_tasks
from harness.pipeline import environment, new_run_dir
from harness.results import new_results, write_json

PERF_SCHEMA_VERSION = 1
PERCENTILES = ("50%", "90%", "95%", "99%")     # EvalScope's row labels that the record keeps


class PerfError(UserError):
    """A perf run that cannot start (EvalScope missing, bad concurrency list, no prompts)."""


@dataclass(frozen=True)
class PerfPlan:
    """What one `harness perf` run sends: to which endpoint, which model, how hard."""

    endpoint: str                       # base URL, .../v1
    model: str                          # the name the server serves the model under
    concurrency: tuple[int, ...]        # one benchmark per level
    requests: int                       # requests per level (at least the level's concurrency)
    max_tokens: int                     # per request: the suite's largest max_new_tokens
    prompts_file: Path
    outputs_dir: Path
    tokenizer_path: Optional[str] = None   # local tokenizer for token counts (else the server's usage)
    warmup: int = 0                     # unmeasured requests before each level


def parse_concurrency(text: str) -> tuple[int, ...]:
    """'1,4,16' → (1, 4, 16); anything else is one clear error."""
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        levels = ()
    if not levels or any(c < 1 for c in levels):
        raise PerfError(f"--concurrency {text!r}: give positive integers separated by commas, e.g. 1,4,16")
    return levels


def write_prompts(tasks, path: Path) -> int:
    """The tasks' prompt messages, interleaved task by task, as EvalScope `line_by_line` JSON lines."""
    per_task = [[ex.prompt_messages for ex in t.examples] for t in tasks]
    lines = []
    for i in range(max((len(p) for p in per_task), default=0)):
        lines += [json.dumps(p[i], ensure_ascii=False) for p in per_task if i < len(p)]
    if not lines:
        raise PerfError("the suite's tasks have no prompts to send")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def evalscope_version() -> str:
    try:
        import importlib.metadata as md

        import evalscope.perf.main  # noqa: F401  (the module `run` needs, not just the package)

        return md.version("evalscope")
    except ImportError:
        raise PerfError("harness perf needs EvalScope: pip install 'harness[evalscope]'") from None


def run_levels(plan: PerfPlan) -> dict:
    """Run EvalScope once per concurrency level; return the results' `perf` section."""
    version = evalscope_version()
    from evalscope.perf.arguments import Arguments
    from evalscope.perf.main import run_perf_benchmark

    levels = []
    for c in plan.concurrency:
        number = max(plan.requests, c)
        args = Arguments(
            model=plan.model, url=plan.endpoint + "/chat/completions", api="openai",
            dataset="line_by_line", dataset_path=str(plan.prompts_file),
            parallel=c, number=number, warmup_num=plan.warmup,
            max_tokens=plan.max_tokens, temperature=0.0, stream=True,   # streaming: TTFT is measurable
            tokenizer_path=plan.tokenizer_path, outputs_dir=str(plan.outputs_dir),
            name=f"concurrency-{c}", no_timestamp=True, sleep_interval=0,
        )
        out = run_perf_benchmark(args)
        (summary,) = out.values()        # one parallel/number pair → one entry
        levels.append(level_record(c, number, summary["metrics"], summary["percentiles"]))
    return {"schema_version": PERF_SCHEMA_VERSION, "tool": "evalscope", "evalscope_version": version,
            "endpoint": plan.endpoint, "model": plan.model, "max_tokens": plan.max_tokens,
            "warmup": plan.warmup, "prompts": str(plan.prompts_file.name),
            "outputs_dir": str(plan.outputs_dir.name), "levels": levels}


def level_record(concurrency: int, requests: int, metrics, percentiles) -> dict:
    """One concurrency level from EvalScope's BenchmarkSummary and PercentileResult, in seconds."""
    rows = {r.percentile: r for r in percentiles.rows}

    def pct(field: str, scale: float = 1.0) -> dict:
        return {p: _scaled(getattr(rows[p], field, None), scale) for p in PERCENTILES if p in rows}

    return {
        "concurrency": concurrency,
        "requests": requests,
        "succeeded": metrics.succeed_requests,
        "failed": metrics.failed_requests,
        "seconds": metrics.time_taken,
        "requests_per_s": metrics.request_throughput,
        "output_tokens_per_s": metrics.output_token_throughput,
        "total_tokens_per_s": metrics.total_token_throughput,
        "avg_input_tokens": metrics.avg_input_tokens,
        "avg_output_tokens": metrics.avg_output_tokens,
        "ttft_s": {"mean": _scaled(metrics.avg_ttft, 1e-3), **pct("ttft", 1e-3)},     # EvalScope: ms
        "tpot_s": {"mean": _scaled(metrics.avg_tpot, 1e-3), **pct("tpot", 1e-3)},     # EvalScope: ms
        "latency_s": {"mean": metrics.avg_latency, **pct("latency")},                # EvalScope: s
    }


def _scaled(value, scale: float):
    return None if value is None else round(value * scale, 6)


def max_new_tokens(tasks: Sequence) -> int:
    return max(t.spec.generation.max_new_tokens for t in tasks)


def perf_suite(suite, endpoint: str, concurrency: tuple[int, ...], requests: int,
               run_dir: Optional[str] = None, model: Optional[str] = None, warmup: int = 0,
               log=print):
    """`harness perf`: a run directory whose results.json holds the `perf` section (no models)."""
    evalscope_version()                          # missing: one line before any work
    if requests < 1:
        raise PerfError(f"--requests {requests}: give a positive number of requests per concurrency level")
    tasks = load_tasks(suite)
    url = base_url(endpoint)
    tokenizer_path, aliases = None, []
    if model is None:
        if not suite.models:
            raise PerfError("the suite has no models: give the served model's name with --model")
        model = suite.models[0].path
        local = resolve_model_path(model, log=log)
        aliases = [local]
        if (Path(local) / "tokenizer_config.json").is_file():
            tokenizer_path = local
    model = served_model(url, model, aliases)
    run = new_run_dir(suite, run_dir)
    log(f"run directory: {run.root}")
    n_prompts = write_prompts(tasks, run.root / "perf" / "prompts.jsonl")
    plan = PerfPlan(endpoint=url, model=model, concurrency=concurrency, requests=requests,
                    max_tokens=max_new_tokens(tasks), prompts_file=run.root / "perf" / "prompts.jsonl",
                    outputs_dir=run.root / "perf" / "evalscope", tokenizer_path=tokenizer_path, warmup=warmup)
    results = new_results(suite.name, json.loads(suite.model_dump_json(exclude={"base_dir"})), environment())
    results["status"] = "running"
    write_json(run.results_path, results)
    log(f"perf: {n_prompts} suite prompts, concurrency {','.join(map(str, concurrency))}, "
        f"{requests} requests per level, model {model}")
    try:
        results["perf"] = run_levels(plan)
        results["perf"]["prompts"] = run.rel(plan.prompts_file)
        results["perf"]["outputs_dir"] = run.rel(plan.outputs_dir)
        results["status"] = "complete"
    except BaseException:
        results["status"] = "failed"
        raise
    finally:
        write_json(run.results_path, results)
    return results, run


def render_perf_table(perf: dict, console) -> None:
    """The per-level summary table printed at the end of `harness perf`."""
    from rich.table import Table

    from harness.tables import print_table

    table = Table(title=f"perf: {perf['model']} at {perf['endpoint']} (EvalScope {perf['evalscope_version']})")
    for col in ("concurrency", "ok/sent", "req/s", "out tok/s", "total tok/s", "TTFT p50 s", "TTFT p99 s",
                "latency p50 s", "latency p99 s"):
        table.add_column(col, justify="right")
    for lv in perf["levels"]:
        table.add_row(str(lv["concurrency"]), f"{lv['succeeded']}/{lv['requests']}", _fmt(lv["requests_per_s"]),
                      _fmt(lv["output_tokens_per_s"]), _fmt(lv["total_tokens_per_s"]),
                      _fmt(lv["ttft_s"].get("50%")), _fmt(lv["ttft_s"].get("99%")),
                      _fmt(lv["latency_s"].get("50%")), _fmt(lv["latency_s"].get("99%")))
    print_table(console, table)


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3g}"
