"""`harness` command line: preflight, audit, train-and-grade, grade, perf, gate, report, schema.

Exit codes: 0 success / gate passed, 1 gate or audit failed, 2 bad input (suite, data, results
file), 3 the job does not fit in the memory budget. Errors the user can fix print one
line, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

EXIT_OK = 0


class _ModelArg(argparse.Action):
    """`--model` starts a model, `--adapter` attaches to the `--model` just before it, so
    `--model A --model A --adapter X` grades A and A+X side by side: a list of
    [path, adapter] pairs in command-line order (a path of None: an --adapter with no
    --model before it, reported by `_models_from_args` as a one-line error)."""

    def __call__(self, parser, namespace, value, option_string=None):
        models = [list(m) for m in getattr(namespace, self.dest) or []]  # never mutate the default
        if option_string == "--model":
            models.append([value, None])
        elif models and models[-1][0] is not None and models[-1][1] is None:
            models[-1][1] = value
        else:
            models.append([None, value])
        setattr(namespace, self.dest, models)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="Evaluate and diagnose fine-tuning of small LMs.")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors and the final summary (for CI)")
    sub = p.add_subparsers(dest="command", required=True)

    pf = sub.add_parser("preflight", help="estimate peak GPU memory of the suite's training job")
    pf.add_argument("suite")
    pf.add_argument("--gpu-memory", help="budget such as 12GiB (default: suite memory.gpu_memory, else NVML)")
    pf.add_argument("--json", action="store_true", help="print the estimate as JSON")

    tg = sub.add_parser("train-and-grade", help="train through TRL, grade every epoch, write the report")
    tg.add_argument("suite")
    tg.add_argument("--run-dir", help="write here instead of OUTPUT_DIR/NAME-TIMESTAMP")
    tg.add_argument("--force", action="store_true", help="train even when preflight says it will not fit")
    tg.add_argument("--gpu-memory", help="memory budget for the preflight check")
    tg.add_argument("--no-report", action="store_true")

    gr = sub.add_parser("grade", help="grade checkpoints, adapters or a predictions file without training")
    gr.add_argument("suite")
    gr.add_argument("--model", dest="models", action=_ModelArg, default=[],
                    help="model dir, hub id or saved checkpoint (repeat to compare side by side)")
    gr.add_argument("--adapter", dest="models", action=_ModelArg,
                    help="PEFT adapter directory applied to the preceding --model")
    gr.add_argument("--predictions", type=Path, help="JSONL of {task, id, output[, reference]}; no model loaded")
    gr.add_argument("--backend", default="transformers", choices=["transformers", "vllm", "openai"])
    gr.add_argument("--endpoint", help="base URL of an OpenAI-compatible server (backend openai)")
    gr.add_argument("--run-dir")
    gr.add_argument("--no-report", action="store_true")

    pe = sub.add_parser("perf", help="serving stress test of an OpenAI-compatible endpoint with the suite's "
                                     "prompts, through EvalScope (pip install 'harness[evalscope]')")
    pe.add_argument("suite")
    pe.add_argument("--endpoint", required=True, help="base URL of the server, e.g. http://127.0.0.1:8000")
    pe.add_argument("--concurrency", default="1,4,16", help="comma-separated concurrency levels (default 1,4,16)")
    pe.add_argument("--requests", type=int, default=32,
                    help="requests per level (default 32; at least the level's concurrency)")
    pe.add_argument("--model", help="served model name (default: the suite's first model)")
    pe.add_argument("--warmup", type=int, default=0, help="unmeasured requests before each level (default 0)")
    pe.add_argument("--run-dir")
    pe.add_argument("--no-report", action="store_true")

    ga = sub.add_parser("gate", help="CI regression gate: exit 0 pass, 1 fail, 2 bad input")
    ga.add_argument("results", help="results.json or its run directory")
    ga.add_argument("--baseline", help="results of an earlier run to compare against")
    ga.add_argument("--gates", help="YAML/JSON file with a `gates:` list (default: the suite's gates)")
    ga.add_argument("--junit", help="write JUnit XML here")
    ga.add_argument("--markdown", help="write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    ga.add_argument("--model", help="which model of the results to gate (default: the first)")

    rp = sub.add_parser("report", help="re-render report.html from run directories (several: a comparison)")
    rp.add_argument("runs", nargs="+")
    rp.add_argument("-o", "--output", help="output file (default RUN/report.html, or compare.html for several)")

    au = sub.add_parser("audit", help="pre-training audits (labels, template, data) without training: "
                                      "exit 0 pass/warn, 1 fail, 2 bad input")
    au.add_argument("suite")
    au.add_argument("--json", type=Path, help="also write the audits as JSON")

    sc = sub.add_parser("schema", help="print the suite JSON Schema (for editor autocompletion)")
    sc.add_argument("-o", "--output")
    return p


def _models_from_args(args, suite):
    from harness.suite import ModelSpec, SuiteError

    if not args.models:
        return list(suite.models)
    specs = []
    for path, adapter in args.models:
        if path is None:
            raise SuiteError(f"--adapter {adapter}: give the base model first (--model PATH --adapter DIR); "
                             f"one --adapter per --model")
        if adapter is None:
            path, adapter = _split_adapter_checkpoint(path)
        specs.append(ModelSpec(path=path, adapter=adapter, name=_model_name(adapter or path)))
    for spec, name in zip(specs, _unique_names([s.name for s in specs])):
        spec.name = name
    return specs


def _split_adapter_checkpoint(path: str) -> tuple[str, Optional[str]]:
    """A directory holding only a PEFT adapter (a LoRA run's checkpoint) → (its base model, it)."""
    import json

    d = Path(path)
    if not (d / "adapter_config.json").is_file() or (d / "config.json").is_file():
        return path, None
    base = json.loads((d / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        from harness.suite import SuiteError

        raise SuiteError(f"{path}: a PEFT adapter without base_model_name_or_path: "
                         f"give the base as --model BASE --adapter {path}")
    return base, path


def _model_name(path: str) -> str:
    """A model's label in results and report: MODEL/epoch-K for a run's checkpoint, else the
    directory (or hub id's) last part."""
    p = Path(path.split(":")[-1])
    if p.name.startswith("epoch-") and p.parent.parent.name == "checkpoints":
        return f"{p.parent.name}/{p.name}"
    return p.name or path


def _unique_names(names: list[str]) -> list[str]:
    """Distinct names (results, sample files and the report are keyed by them): A, A → A-1, A-2."""
    taken, out = set(names), []
    for n in names:
        if names.count(n) > 1:
            k = 1
            while f"{n}-{k}" in taken:
                k += 1
            taken.add(f"{n}-{k}")
            n = f"{n}-{k}"
        out.append(n)
    return out


def _prepare_suite_models(suite) -> None:
    """Distinct names for the suite's models; an unnamed one with an adapter is called after the
    adapter (else `{path: X}` and `{path: X, adapter: Y}` would both be X)."""
    for spec in suite.models:
        if spec.adapter and "name" not in spec.model_fields_set:
            spec.name = _model_name(spec.adapter)
    for spec, name in zip(suite.models, _unique_names([m.name for m in suite.models])):
        spec.name = name


def _render(run_root: Path, console) -> None:
    from reports.html import render_report

    out = render_report([run_root])
    console.print(f"report: {out}")


def _summary(results: dict, console) -> None:
    from rich.table import Table

    for model in results["models"]:
        table = Table(title=f"{model['name']}", show_lines=False)
        table.add_column("epoch", justify="right")
        keys = []
        for e in model["epochs"]:
            for t, r in e["tasks"].items():
                for m, v in r["metrics"].items():
                    if (t, m) not in keys and v.get("score") is not None:
                        keys.append((t, m))
        for t, m in keys:
            table.add_column(f"{t}\n{m}", justify="right")
        for e in model["epochs"]:
            cells = []
            for t, m in keys:
                v = e["tasks"].get(t, {}).get("metrics", {}).get(m, {}).get("score")
                cells.append("" if v is None else f"{v:.2f}")
            mark = " *" if (model.get("best") or {}).get("epoch") == e["epoch"] else ""
            table.add_row(f"{e['epoch']}{mark}", *cells)
        console.print(table)
        for section in ("audit", "memory"):
            v = (model.get(section) or {}).get("verdict")
            if v:
                console.print(f"{section}: [{_colour(v['status'])}]{v['status']}[/] {v['summary']}")
        for name, diag in (model.get("diagnostics") or {}).items():
            v = (diag or {}).get("verdict")
            if v and v["status"] != "skipped":   # grade-only runs: no epochs to compare, nothing to say
                console.print(f"{name}: [{_colour(v['status'])}]{v['status']}[/] {v['summary']}")


def _audit(suite, json_path: Optional[Path], log, console) -> int:
    from rich.table import Table

    from harness.pipeline import audit_suite
    from harness.results import write_json

    audits = audit_suite(suite, log=log)
    for entry in audits:
        table = Table(title=f"{entry['name']}: pre-training audit")
        for col in ("check", "status", "finding"):
            table.add_column(col)
        for part in ("labels", "template", "data"):
            for c in (entry["audit"].get(part) or {}).get("checks", []):
                table.add_row(f"{part}.{c['name']}", f"[{_colour(c['status'])}]{c['status']}[/]", c["detail"])
        console.print(table)
        v = entry["audit"]["verdict"]
        console.print(f"audit: [{_colour(v['status'])}]{v['status']}[/] {v['summary']}")
    if json_path:
        write_json(json_path, audits)
    return 1 if any(e["audit"]["verdict"]["status"] == "fail" for e in audits) else EXIT_OK


def _colour(status: str) -> str:
    return {"pass": "green", "warn": "yellow", "fail": "red"}.get(status, "white")


def main(argv: Optional[list[str]] = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    from rich.console import Console

    console, errors = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    log = (lambda msg: None) if args.quiet else (lambda msg: console.print(msg, markup=False, highlight=False))
    from harness.errors import DoesNotFit, UserError
    from harness.suite import SuiteError, load_suite

    try:
        if args.command == "schema":
            import json

            from harness.suite import suite_json_schema

            text = json.dumps(suite_json_schema(), indent=2) + "\n"
            if args.output:
                Path(args.output).write_text(text)
            else:
                sys.stdout.write(text)
            return EXIT_OK
        if args.command == "preflight":
            from harness.memory import run_preflight

            return run_preflight(load_suite(args.suite), args.gpu_memory, args.json, console)
        if args.command == "gate":
            from harness.gate import run_gate

            return run_gate(args.results, baseline_path=args.baseline, gates_path=args.gates,
                            junit=args.junit, markdown=args.markdown, model=args.model, console=console)
        if args.command == "report":
            from reports.html import render_report

            out = render_report([Path(r) for r in args.runs], Path(args.output) if args.output else None)
            console.print(f"report: {out}")
            return EXIT_OK
        suite = load_suite(args.suite)
        _prepare_suite_models(suite)
        if args.command == "audit":
            return _audit(suite, args.json, log, console)
        if args.command == "perf":
            from harness.perf import parse_concurrency, perf_suite, render_perf_table

            results, run = perf_suite(suite, args.endpoint, parse_concurrency(args.concurrency), args.requests,
                                      run_dir=args.run_dir, model=args.model, warmup=args.warmup, log=log)
            render_perf_table(results["perf"], console)
            if not args.no_report:
                _render(run.root, console)
            return EXIT_OK
        if args.command == "train-and-grade":
            from harness.pipeline import train_and_grade

            results, run = train_and_grade(suite, log=log, force=args.force, run_dir=args.run_dir,
                                           gpu_memory=args.gpu_memory)
            from harness.distributed import processes

            if not processes().is_main:   # under accelerate launch: rank 0 prints, gates, reports
                return EXIT_OK
        else:
            from harness.pipeline import grade_models

            if args.predictions is None and not args.models and not suite.models:
                raise SuiteError(f"{args.suite}: nothing to grade: give --model or --predictions")
            models = [] if args.predictions is not None and not args.models else _models_from_args(args, suite)
            results, run = grade_models(suite, models, log=log, run_dir=args.run_dir,
                                        backend_name=args.backend, predictions=args.predictions,
                                        endpoint=args.endpoint)
        _summary(results, console)
        code = EXIT_OK
        if suite.gates:
            from harness.gate import run_gate

            code = run_gate(str(run.results_path), console=console)
        if not args.no_report:
            _render(run.root, console)
        return code
    except UserError as e:
        label = "does not fit" if isinstance(e, DoesNotFit) else "error"
        errors.print(f"{label}: {e}", markup=False, highlight=False, style="red", soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        errors.print("interrupted: graded epochs are kept in the run directory", style="yellow")
        return 130


if __name__ == "__main__":
    sys.exit(main())
