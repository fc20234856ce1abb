"""`harness sweep SUITE [--storage URL] [--study NAME] [--trials N]`: one worker of the suite's study.

Everything that can refuse (the block, its paths and values, the objective, the sweep directory,
the storage) is checked before any trial starts; each refusal is one line, exit code 2. Start
the same command on several machines (or GPUs, one worker each) with one --storage URL to
share the study.
"""
from __future__ import annotations

from pathlib import Path

SWEEP_HELP = "run (one worker of) the suite's `sweep:` study on Optuna: every trial an ordinary run"


def add_parser(sub) -> None:
    sw = sub.add_parser("sweep", help=SWEEP_HELP)
    sw.add_argument("suite")
    sw.add_argument("--storage", help="SQLAlchemy URL of the study's database, shared by every worker, e.g. "
                                      "postgresql://USER:PASSWORD@HOST/DB (default: SWEEP_DIR/study.db, SQLite)")
    sw.add_argument("--study", help="study name (default: the suite's name)")
    sw.add_argument("--trials", type=int, help="trials in the study, over every worker (default: sweep.trials)")
    sw.add_argument("--sweep-dir", help="where the trials' run directories go (default: OUTPUT_DIR/STUDY); "
                                        "on several machines, a shared filesystem")
    sw.add_argument("--heartbeat", type=int, default=None,
                    help="seconds between a worker's heartbeats (default 60); a worker silent for 5 beats is "
                         "taken for dead and its trial is retried")
    sw.add_argument("--no-report", action="store_true")


def run_sweep(suite, args, out) -> int:
    from harness.errors import SuiteError
    from harness.files import check_writable_dir
    from harness.results import safe_name, write_json
    from harness.sweep import study as studies
    from harness.sweep.runner import SWEEP_FILE, Worker
    from harness.sweep.space import plan_sweep

    plan = plan_sweep(suite)
    if args.trials is not None and args.trials < 1:
        raise SuiteError(f"--trials {args.trials}: give at least 1")
    if args.heartbeat is not None and args.heartbeat < 1:
        raise SuiteError(f"--heartbeat {args.heartbeat}: give a number of seconds, at least 1")
    name = args.study or safe_name(suite.name)
    sweep_dir = check_writable_dir(args.sweep_dir or str(Path(suite.output_dir) / safe_name(name)), "--sweep-dir")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    url = args.storage or studies.default_storage(sweep_dir)
    storage = studies.open_storage(url, args.heartbeat or studies.HEARTBEAT_S)
    opened = studies.open_study(plan, storage, name, args.trials)
    spec = plan.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    write_json(sweep_dir / SWEEP_FILE, {**spec, "study": name, "storage": studies.redact(url),
                                        "objective": plan.key, "at": plan.spec.objective.at,
                                        "direction": plan.direction, "budget": opened.budget})
    out.log(f"sweep {name}: {opened.budget} trials, objective {plan.key} ({plan.direction}, "
            f"{plan.spec.objective.at} epoch), storage {studies.redact(url)}, trials in {sweep_dir}")
    worker = Worker(plan, opened, sweep_dir, name, out.log, quiet_runs=True,
                    poll_s=min(5.0, float(args.heartbeat or studies.HEARTBEAT_S)))
    outcome = worker.run()
    share = outcome.bookkeeping_s / outcome.wall_s if outcome.wall_s else 0.0
    out.log(f"this worker ran trials {outcome.trials or 'none'}; its bookkeeping took {outcome.bookkeeping_s:.1f}s "
            f"of {outcome.wall_s:.1f}s ({share:.1%})")
    return finish_sweep(sweep_dir, out, report=not args.no_report)


def finish_sweep(sweep_dir: Path, out, report: bool, target=None) -> int:
    """The summary line (the config to use, and why), and the sweep's report page."""
    from harness.sweep.analysis import summarise

    summary = summarise(sweep_dir)
    out.console.print(f"sweep: {summary.recommendation}", markup=False, highlight=False)
    if report:
        from reports.sweep import render_sweep_report

        out.console.print(f"report: {render_sweep_report(sweep_dir, Path(target) if target else None, summary)}", markup=False,
                          highlight=False)
    return 0
