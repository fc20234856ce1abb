"""`harness` command line: preflight, audit, train-and-grade, grade, perf, gate, report, data, schema.

Exit codes: 0 success / gate passed, 1 gate or audit failed, 2 bad input (suite, data, results
file), 3 the job does not fit in the memory budget. Errors the user can fix print one
line, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

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


MEASURE_MEMORY_HELP = ("count the grading phase's own memory on CPU too: one representative batch per term at the "
                       "first graded epoch, about twice that batch's time (on CUDA it is measured every epoch regardless)")


def _parser() -> argparse.ArgumentParser:
    from harness.backends import BACKENDS   # the backend table: names only, no backend module is imported

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
    tg.add_argument("--resume", metavar="RUN_DIR",
                    help="continue this interrupted run after its last saved epoch (same suite)")
    tg.add_argument("--force", action="store_true", help="train even when preflight says it will not fit; "
                                                         "with --resume: resume a run last seen on another host")
    tg.add_argument("--gpu-memory", help="memory budget for the preflight check")
    tg.add_argument("--overwrite", action="store_true", help="replace the run already at --run-dir")
    tg.add_argument("--no-report", action="store_true")
    tg.add_argument("--measure-memory", action="store_true", help=MEASURE_MEMORY_HELP)
    _tracking_args(tg)

    gr = sub.add_parser("grade", help="grade checkpoints, adapters or a predictions file without training")
    gr.add_argument("suite")
    gr.add_argument("--model", dest="models", action=_ModelArg, default=[],
                    help="model dir, hub id or saved checkpoint (repeat to compare side by side)")
    gr.add_argument("--adapter", dest="models", action=_ModelArg,
                    help="PEFT adapter directory applied to the preceding --model")
    gr.add_argument("--predictions", type=Path, help="JSONL of {task, id, output[, reference]}; no model loaded")
    gr.add_argument("--backend", choices=list(BACKENDS),
                    help="default: the suite's grading.backend (transformers unless set)")
    gr.add_argument("--endpoint", help="base URL of an OpenAI-compatible server (backend openai)")
    gr.add_argument("--allow-partial", action="store_true",
                    help="grade a predictions file that lacks some task ids (coverage is recorded and gated)")
    gr.add_argument("--allow-overridden-references", action="store_true",
                    help="let the suite's gates pass predictions that bring their own references")
    gr.add_argument("--drift-base", metavar="MODEL", help="measure every other model's drift against this "
                    "--model (name or path; docs/diagnostics.md, Drift)")
    gr.add_argument("--run-dir")
    gr.add_argument("--overwrite", action="store_true", help="replace the run already at --run-dir")
    gr.add_argument("--no-report", action="store_true")
    gr.add_argument("--measure-memory", action="store_true", help=MEASURE_MEMORY_HELP)
    _tracking_args(gr, track_run=True)

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
    ga.add_argument("--allow-incomplete", action="store_true", help="gate a run whose status is not complete")
    ga.add_argument("--allow-different-data", action="store_true",
                    help="compare with a baseline graded on different items or references")
    ga.add_argument("--allow-overridden-references", action="store_true",
                    help="gate predictions that brought their own references")
    ga.add_argument("--allow-partial", action="store_true",
                    help="gate predictions that covered only part of a task")

    rp = sub.add_parser("report", help="re-render report.html from run directories (several: a comparison)")
    rp.add_argument("runs", nargs="+")
    rp.add_argument("-o", "--output", help="output file (default RUN/report.html, or compare.html for several)")

    au = sub.add_parser("audit", help="pre-training audits (labels, template, data) without training: "
                                      "exit 0 pass/warn, 1 fail, 2 bad input")
    au.add_argument("suite")
    au.add_argument("--json", type=Path, help="also write the audits as JSON")

    da = sub.add_parser("data", help="build a training set from a recipe, or check data (exit 0 clean, "
                                     "1 error findings, 2 bad input)").add_subparsers(dest="data_command", required=True)
    db = da.add_parser("build", help="sources → normalised, de-duplicated, mixed, split JSONL/Parquet + manifest")
    db.add_argument("recipe")
    db.add_argument("--out", required=True, help="output directory")
    dc = da.add_parser("check", help="schema, role order, chat markers, duplicates, leakage, token lengths")
    dc.add_argument("target", help="a suite YAML, a recipe YAML, or a data file (JSONL, CSV, Parquet, datasets dir)")
    dc.add_argument("--tokenizer", help="model/tokenizer for token lengths (default: the suite's first model)")
    dc.add_argument("--max-seq-len", type=int, help="default: the suite's train.max_seq_len, else 512")
    dc.add_argument("--json", type=Path, help="also write the findings as JSON")

    from harness.sweep.command import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    sc = sub.add_parser("schema", help="print the suite JSON Schema (for editor autocompletion)")
    sc.add_argument("-o", "--output")
    return p


def _tracking_args(sub, track_run: bool = False) -> None:
    from harness.tracking import TRACKERS   # names only: no tracker package is imported

    sub.add_argument("--track", action="append", choices=list(TRACKERS), metavar="BACKEND",
                     help=f"also log the run to this experiment tracker ({', '.join(TRACKERS)}; repeat for several)")
    if track_run:
        sub.add_argument("--track-run", metavar="ID", help="log into this tracker run (its id, or the run directory "
                                                           "that trained the checkpoint) instead of a new one")


def _models_from_args(args, suite, remote: bool = False):
    """The models to grade: --model/--adapter, else the suite's. `remote`: a server serves them by
    name (backend openai), so a name is not checked as a local directory or hub id."""
    from harness.suite import ModelSpec, SuiteError
    from harness.suite_checks import model_dir_problem, model_source_problem

    if not args.models:
        return list(suite.models)
    for path, adapter in args.models:   # the shape of the arguments first, then what they name
        if path is None:
            raise SuiteError(f"--adapter {adapter}: give the base model first (--model PATH --adapter DIR); "
                             f"one --adapter per --model")
    specs = []
    for path, adapter in args.models:
        problem = None if remote else model_source_problem(path)
        if problem:
            raise SuiteError(f"--model {path}: {problem}")
        if adapter is not None and model_dir_problem(adapter, adapter=True):
            raise SuiteError(f"--adapter {adapter}: {model_dir_problem(adapter, adapter=True)}")
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
    from harness.files import read_text
    from harness.suite import SuiteError

    try:
        config = json.loads(read_text(d / "adapter_config.json", "adapter config", SuiteError))
    except json.JSONDecodeError as e:
        raise SuiteError(f"{d / 'adapter_config.json'}:{e.lineno}: not valid JSON: {e.msg}") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base:
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

    from harness.diagnose import power_lines
    from harness.tables import print_table

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
        print_table(console, table)
        for e in model["epochs"]:
            for t, r in e["tasks"].items():
                if r.get("unencodable_outputs"):
                    console.print(f"warning: epoch {e['epoch']} {t}: {r['unencodable_outputs']} output(s) held a lone "
                                  f"surrogate (not UTF-8): graded with U+FFFD in its place", markup=False,
                                  highlight=False)
        for section in ("audit", "memory"):
            v = (model.get(section) or {}).get("verdict")
            if v:
                console.print(f"{section}: [{_colour(v['status'])}]{v['status']}[/] {v['summary']}")
        diagnostics = model.get("diagnostics") or {}
        if not any(e["epoch"] > 0 for e in model["epochs"]):   # grade-only: what its test sets can see
            for line in power_lines(diagnostics.get("power") or {}):
                console.print(line, markup=False)
        for name, diag in diagnostics.items():
            v = (diag or {}).get("verdict")
            if v and v["status"] != "skipped":   # grade-only runs: no epochs to compare, nothing to say
                console.print(f"{name}: [{_colour(v['status'])}]{v['status']}[/] {v['summary']}")


def _audit(suite, json_path: Optional[Path], log, console) -> int:
    from rich.table import Table

    from harness.pipeline import audit_suite
    from harness.results import write_json
    from harness.tables import print_table

    audits = audit_suite(suite, log=log)
    for entry in audits:
        table = Table(title=f"{entry['name']}: pre-training audit")
        for col in ("check", "status", "finding"):
            table.add_column(col)
        for part in ("labels", "template", "data"):
            for c in (entry["audit"].get(part) or {}).get("checks", []):
                table.add_row(f"{part}.{c['name']}", f"[{_colour(c['status'])}]{c['status']}[/]", c["detail"])
        print_table(console, table)
        v = entry["audit"]["verdict"]
        console.print(f"audit: [{_colour(v['status'])}]{v['status']}[/] {v['summary']}")
    if json_path:
        write_json(json_path, audits)
    return 1 if any(e["audit"]["verdict"]["status"] == "fail" for e in audits) else EXIT_OK


def _colour(status: str) -> str:
    return {"pass": "green", "warn": "yellow", "fail": "red"}.get(status, "white")


# ----------------------------------------------------------------------------- commands
@dataclass
class Output:
    """Where a command writes: results on `console` (stdout), errors on `errors` (stderr);
    `bars`: progress of long loops (rich on a terminal, plain lines in a log, none under -q)."""

    console: Any
    errors: Any
    log: Callable[[str], None]
    bars: Any   # harness.progress.Progress


def schema(args, out: Output) -> int:
    import json

    from harness.suite import suite_json_schema

    text = json.dumps(suite_json_schema(), indent=2) + "\n"
    if args.output:
        from harness.files import check_output_file
        from harness.results import write_atomic

        write_atomic(check_output_file(args.output, "schema output"), text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def preflight(args, out: Output) -> int:
    from harness.memory import run_preflight
    from harness.suite import load_suite

    # No machine checks: preflight plans for the GPU the job will run on, not for this machine.
    return run_preflight(load_suite(args.suite), args.gpu_memory, args.json, out.console)


def gate(args, out: Output) -> int:
    from harness.gate import run_gate

    return run_gate(args.results, baseline_path=args.baseline, gates_path=args.gates, junit=args.junit,
                    markdown=args.markdown, model=args.model, console=out.console, errors=out.errors,
                    allow=_gate_allowances(args))


def report(args, out: Output) -> int:
    from harness.files import check_output_file
    from harness.results import load_results
    from reports.html import render_report

    runs = [Path(r) for r in args.runs]
    if len(runs) == 1 and (runs[0] / "sweep.json").is_file():   # a sweep directory: one page for its trials
        from harness.sweep.command import finish_sweep

        return finish_sweep(runs[0], out, report=True, target=args.output)
    for r in runs:
        load_results(r)   # every run readable before anything is written
    target = Path(args.output) if args.output else None
    check_output_file(target or (runs[0] / "report.html" if len(runs) == 1 else Path("compare.html")),
                      "report output")
    path = render_report(runs, target)
    from harness.results import run_state

    for r in runs:
        state = run_state(load_results(r)[0])
        if state.status != "complete":
            out.console.print(f"{r}: {state.status}: {state.detail or 'partial'}", markup=False, highlight=False)
    out.console.print(f"report: {path}")
    return EXIT_OK


def audit(args, out: Output) -> int:
    suite = _load_for_run(args.suite, train=False)
    if args.json:
        from harness.files import check_output_file

        check_output_file(args.json, "--json output")
    return _audit(suite, args.json, out.log, out.console)


def train_and_grade(args, out: Output) -> int:
    from harness.pipeline import train_and_grade as run_training

    from harness.suite import SuiteError

    suite = _load_for_run(args.suite, train=True)
    from harness.memory.budget import check_budget

    check_budget(args.gpu_memory, suite)
    if args.resume and args.run_dir and Path(args.run_dir).resolve() != Path(args.resume).resolve():
        raise SuiteError(f"--run-dir {args.run_dir} and --resume {args.resume}: --resume continues "
                         f"the run in its own directory; give only --resume")
    if args.resume and args.overwrite:
        raise SuiteError(f"--resume {args.resume} and --overwrite: resume continues the run, overwrite replaces it; "
                         f"give one")
    tracking = _tracking(suite, args, out)
    try:
        results, run = run_training(suite, log=out.log, force=args.force, run_dir=args.run_dir,
                                    gpu_memory=args.gpu_memory, overwrite=args.overwrite, resume=args.resume,
                                    bars=out.bars, tracking=tracking, measure_memory=args.measure_memory)
        from harness.distributed import processes

        if not processes().is_main:   # under accelerate launch: rank 0 prints, gates, reports
            return EXIT_OK
        return _finish(suite, results, run, args, out)
    finally:
        if tracking is not None:
            tracking.close()   # after the report and the gates: both go to the tracker


def grade(args, out: Output) -> int:
    from harness.pipeline import grade_models
    from harness.machine_checks import check_runs_here
    from harness.suite import SuiteError

    suite = _load_for_run(args.suite, train=False, check_models=False)
    args.backend = args.backend or suite.grading.backend
    if args.predictions is None and not args.models and not suite.models:
        raise SuiteError(f"{args.suite}: nothing to grade: give --model or --predictions")
    if args.predictions is not None and not args.models:   # no model, so no backend is started
        models, remote = [], False
    else:
        remote = _check_backend(args).remote
        models = _models_from_args(args, suite, remote)
    if not remote:     # a remote model is whatever the server serves under that name
        if args.models:
            check_runs_here(suite, models, cuda=False, train=False)
        elif args.predictions is None:   # the suite's own models are graded
            check_runs_here(suite, cuda=False, train=False)
    tracking = _tracking(suite, args, out)
    try:
        results, run = grade_models(suite, models, log=out.log, run_dir=args.run_dir, backend_name=args.backend,
                                    predictions=args.predictions, endpoint=args.endpoint,
                                    allow_partial=args.allow_partial, overwrite=args.overwrite, bars=out.bars,
                                    tracking=tracking, drift_base=args.drift_base,
                                    measure_memory=args.measure_memory)
        return _finish(suite, results, run, args, out)
    finally:
        if tracking is not None:
            tracking.close()


def perf(args, out: Output) -> int:
    from harness.perf import parse_concurrency, perf_suite, render_perf_table
    from harness.suite import load_suite

    suite = load_suite(args.suite)
    _prepare_suite_models(suite)
    results, run = perf_suite(suite, args.endpoint, parse_concurrency(args.concurrency), args.requests,
                              run_dir=args.run_dir, model=args.model, warmup=args.warmup, log=out.log)
    render_perf_table(results["perf"], out.console)
    if not args.no_report:
        _render(run.root, out.console)
    return EXIT_OK


def sweep(args, out: Output) -> int:
    from harness.sweep.command import run_sweep

    return run_sweep(_load_for_run(args.suite, train=True), args, out)


def data(args, out: Output) -> int:
    from harness.dataprep.commands import data_build, data_check

    if args.data_command == "build":
        return data_build(args.recipe, args.out, out.console, out.log, table=not args.quiet)
    return data_check(args.target, args.tokenizer, args.max_seq_len, args.json, out.console, out.log)


def _tracking(suite, args, out: Output):
    """The experiment trackers' session (None when off); a missing tracker package is exit 2 here."""
    from harness.tracking.session import session_for

    warn = lambda msg: out.errors.print(msg, markup=False, highlight=False, style="yellow")  # noqa: E731
    return session_for(suite, args.track, getattr(args, "track_run", None), warn, resume=getattr(args, "resume", None))


def _check_backend(args):
    """The chosen backend's class, after checking what it needs, before any run directory exists."""
    from harness.backends import BACKENDS, backend_class
    from harness.suite import SuiteError

    cls = backend_class(args.backend)
    if cls.remote and not (args.endpoint or os.environ.get("OPENAI_BASE_URL")):
        raise SuiteError(f"backend {args.backend} needs --endpoint URL (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000")
    if cls.unavailable():
        raise SuiteError(cls.unavailable())
    if args.endpoint and not cls.remote:
        remote = [name for name in BACKENDS if backend_class(name).remote]
        raise SuiteError(f"--endpoint is for --backend {' or '.join(remote)} (the backend is {args.backend})")
    return cls


COMMANDS: dict[str, Callable[[Any, Output], int]] = {
    "preflight": preflight,
    "audit": audit,
    "train-and-grade": train_and_grade,
    "grade": grade,
    "perf": perf,
    "gate": gate,
    "report": report,
    "sweep": sweep,
    "schema": schema,
    "data": data,
}


def _load_for_run(path: str, train: bool, check_models: bool = True):
    """The suite, checked against this machine (the commands that run here, unlike preflight)."""
    from harness.machine_checks import check_runs_here
    from harness.suite import load_suite

    suite = load_suite(path)
    _prepare_suite_models(suite)
    if check_models or train:
        cuda = False
        if train and suite.train is not None:
            import torch

            cuda = torch.cuda.is_available()
        check_runs_here(suite, cuda=cuda, train=train)
    return suite


def _finish(suite, results: dict, run, args, out: Output) -> int:
    _summary(results, out.console)
    code = EXIT_OK
    if suite.gates:
        from harness.gate import run_gate

        allow = {name for name, flag in (("partial", getattr(args, "allow_partial", False)),   # asked for by the
                                         ("overridden-references",                            # same user
                                          getattr(args, "allow_overridden_references", False))) if flag}
        code = run_gate(str(run.results_path), console=out.console, errors=out.errors, allow=allow)
    if not args.no_report:
        _render(run.root, out.console)
    return code


def _gate_allowances(args) -> set[str]:
    return {name for name, flag in (("incomplete", args.allow_incomplete), ("different-data", args.allow_different_data),
                                    ("overridden-references", args.allow_overridden_references),
                                    ("partial", args.allow_partial)) if flag}


def _safe_streams() -> None:
    """Text the terminal's encoding cannot show (a French accent on an ASCII stdout) is
    escaped, never a UnicodeEncodeError after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):   # not a TextIOWrapper (pytest's capture, StringIO)
            pass


def main(argv: Optional[list[str]] = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _safe_streams()
    args = _parser().parse_args(argv)
    from rich.console import Console

    console, errors = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    log = (lambda msg: None) if args.quiet else (lambda msg: console.print(msg, markup=False, highlight=False))
    from harness.errors import DoesNotFit, UserError
    from harness.progress import Progress

    try:
        return COMMANDS[args.command](args, Output(console, errors, log, Progress.for_console(console, args.quiet)))
    except UserError as e:
        label = "does not fit" if isinstance(e, DoesNotFit) else "error"
        errors.print(f"{label}: {_one_line(str(e))}", markup=False, highlight=False, style="red", soft_wrap=True)
        return e.exit_code
    except (IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError, UnicodeDecodeError) as e:
        # A path of the user's that no check above foresaw: still one line, still exit 2.
        errors.print(f"error: {_one_line(str(e))}", markup=False, highlight=False, style="red", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        errors.print("interrupted: graded epochs are kept in the run directory", style="yellow")
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


if __name__ == "__main__":   # `python -m harness` and the `harness` command go through harness/__main__.py
    sys.exit(main())
