"""The two jobs, top to bottom: suite → (audit → train) → grade every epoch → diagnose → results.

`train_and_grade` and `grade_models` write the run directory as they go: results.json is
rewritten atomically after every graded epoch, so an interrupted run keeps what it graded.
Report rendering and gating read that directory afterwards (see harness/cli.py).
"""
from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from harness import __version__
from harness.best_epoch import best_epoch, default_best_metric
from harness.builtin import resolve_model_path
from harness.backends import backend_class
from harness.data import load_training_rows
from harness.drift.probe import load_probe
from harness.epoch_loop import Log, TrainingJob, TrainingRun, pretraining_audit
from harness.errors import DataError, UserError
from harness.grade import LoadedTask, grade_epoch, load_tasks, with_grading_batch
from harness.out_of_memory import GradingOutOfMemory, TrainingOutOfMemory, is_out_of_memory
from harness.predictions import load_predictions
from harness.progress import OFF, Progress
from harness.results import (RunDir, model_record, new_results, process_record, run_state, write_atomic,
                             write_json)
from harness.suite import AUTO_GRADING_BATCH_BOUND, ModelSpec, Suite, dump_suite
from harness.tracking.session import TrackingSession, checkpoint_step


def environment() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "sacrebleu", "rouge-score", "jsonschema", "datasets"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"harness": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "gpu": (gpu := _gpu_name()), "device": "cuda" if gpu else "cpu", **versions}


def _gpu_name() -> Optional[str]:
    """The first GPU's name: torch's when a job has imported it already, else NVML's (importing
    torch only to name the GPU would cost a command seconds of start-up)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None:
            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
            return None
        from harness.memory.budget import nvml_memory

        info = nvml_memory()
        return info["name"] if info else None
    except Exception:  # environment info is best-effort, never a reason to fail
        return None


class RunDirExists(UserError):
    """--run-dir names an existing run (or a non-empty directory): never written over silently."""


def plan_run_dir(suite: Suite, run_dir: Optional[str] = None, overwrite: bool = False) -> Path:
    """Where the run goes, checked without writing anything: called before any work, so a
    refused command leaves every existing file as it was."""
    from harness.files import check_writable_dir
    from harness.results import safe_name

    if run_dir:
        root = check_writable_dir(run_dir, "--run-dir")
        if root.is_dir() and any(root.iterdir()):
            if not (root / "results.json").is_file():
                raise RunDirExists(f"{root}: --run-dir is a directory that is not empty and holds no run: "
                                   f"choose a new or empty directory")
            if not overwrite:
                raise RunDirExists(f"{root}: --run-dir is an existing run: pass --resume {root} to continue it "
                                   f"or --overwrite to replace it, or choose another directory")
        return root
    out = check_writable_dir(suite.output_dir, "output_dir")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    root = out / f"{safe_name(suite.name)}-{stamp}"   # relative to where harness runs
    k = 1
    while root.exists():   # two runs in one second never share a directory
        k += 1
        root = out / f"{safe_name(suite.name)}-{stamp}-{k}"
    return root


def new_run_dir(suite: Suite, run_dir: Optional[str] = None, overwrite: bool = False) -> RunDir:
    import shutil

    root = plan_run_dir(suite, run_dir, overwrite)
    if overwrite and (root / "results.json").is_file():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / "suite.yaml", dump_suite(suite))
    return RunDir(root)


def _start(suite: Suite, run_dir: Optional[str], overwrite: bool = False) -> tuple[RunDir, dict, Callable[[], None]]:
    run = new_run_dir(suite, run_dir, overwrite)
    results = new_results(suite.name, json.loads(suite.model_dump_json(exclude={"base_dir"})), environment())
    results["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["process"] = process_record()   # lets report and gate tell a killed run from a live one
    return run, results, lambda: write_json(run.results_path, results)


def _start_on_main(suite: Suite, run_dir: Optional[str], procs, overwrite: bool = False,
                   resume: Optional[str] = None, force: bool = False) -> tuple[RunDir, dict, Callable[[], None]]:
    """Rank 0 creates (or reopens, to resume) and writes the run directory; the other ranks learn its
    path and write nothing (resuming, they read the run's records to continue from the same point)."""
    if procs.is_main:
        run, results, save = _reopen(suite, resume, force) if resume else _start(suite, run_dir, overwrite)
    elif resume:
        from harness.results import load_results

        run, results, save = None, load_results(resume)[0], (lambda: None)
    else:
        run, results, save = None, new_results(suite.name, {}, {}), (lambda: None)
    root = procs.broadcast(str(run.root) if run else None)
    if procs.distributed and procs.is_main:
        results["environment"]["processes"] = procs.world
    return run or RunDir(Path(root)), results, save


def _close(results: dict, save: Callable[[], None]) -> None:
    """Last write of a run, whatever ended it: a run never left 'running' keeps its epochs."""
    exc = sys.exc_info()[1]
    if isinstance(exc, KeyboardInterrupt):
        results["status"] = "interrupted"
    elif exc is not None:
        results["status"] = "failed"
        reason = "out of memory" if isinstance(exc, (TrainingOutOfMemory, GradingOutOfMemory)) \
            or is_out_of_memory(exc) else type(exc).__name__
        results["failure"] = {"reason": reason, "message": str(exc).splitlines()[0][:2000] if str(exc) else reason}
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save()


def _diagnose(record: dict, run: RunDir, suite: Suite, drift_base: Optional[dict] = None) -> None:
    from harness import diagnose

    diagnose.diagnose_model(record, run, suite, drift_base)


# --------------------------------------------------------------------------- train
def train_and_grade(suite: Suite, log: Log = print, force: bool = False, run_dir: Optional[str] = None,
                    gpu_memory: Optional[str] = None, overwrite: bool = False,
                    resume: Optional[str] = None, bars: Progress = OFF,
                    epoch_callbacks: tuple = (), tracking: Optional[TrackingSession] = None,
                    measure_memory: bool = False) -> tuple[dict, RunDir]:
    """Train every model of the suite, grading each epoch. `resume`: an interrupted run directory
    to continue (harness/resume.py); its finished models are kept as they are. `bars`: progress
    of the training steps and graded items (harness/progress.py). `epoch_callbacks`: see
    epoch_loop.TrainingRun (a sweep reports each graded epoch to its trial through one).
    `tracking`: the experiment trackers' session, started here on rank 0 (the caller closes it
    after the report). `measure_memory`: count the grading phase's memory on CPU too
    (harness.memory.measured_epoch; on CUDA it is always measured)."""
    from harness import resume as resuming
    from harness.distributed import processes

    if suite.train is None:
        raise DataError(f"suite {suite.name!r} has no `train` section: use `harness grade` to grade without training")
    procs = processes()                       # under `accelerate launch`: rank 0 writes, grades, logs
    if not resume and procs.is_main:
        plan_run_dir(suite, run_dir, overwrite)   # refused before any work, and before anything is written
    tasks = load_tasks(suite)                 # data problems surface before any model work
    train_rows = load_training_rows(suite)
    probe_items = load_probe(suite.diagnostics.probe, suite)
    run, results, save = _start_on_main(suite, run_dir, procs, overwrite, resume, force)
    if not procs.is_main:
        log = lambda msg: None  # noqa: E731
        bars = OFF
    bars.quiet_library_bars()
    if resume:
        log(f"resuming run directory: {run.root}")
    else:
        if procs.is_main and any(d.recipe for d in suite.train.data):   # the built dataset: its manifest hash
            from harness.dataprep.build import suite_data_records

            results["data"] = suite_data_records(suite)
        log(f"run directory: {run.root}" + (f" ({procs.world} processes)" if procs.distributed else ""))
    ctx = TrainingRun(suite=suite, run=run, results=results, save=save, tasks=tasks, train_rows=train_rows,
                      probe_items=probe_items,
                      gpu_memory=gpu_memory or suite.memory.gpu_memory, force=force, procs=procs, log=log, bars=bars,
                      epoch_callbacks=tuple(epoch_callbacks), measure_memory=measure_memory)
    if tracking is not None and procs.is_main:
        tracking.start(run, results, save, several_models=len(suite.models) > 1)
        ctx.epoch_hooks.append(tracking.log_epoch)
        ctx.trainer_reporting = tracking.trainer_reporting
    try:
        for spec in suite.models:
            record = next((r for r in results["models"] if r["name"] == spec.name), None)
            if record is not None and resuming.model_finished(record):
                log(f"{spec.name}: finished before the interruption, kept as it is")
                continue
            point = resuming.resume_point(record, run) if record is not None else None
            job = TrainingJob(ctx, spec, resolve_model_path(spec.path, log=log), record, point)
            try:
                job.setup()
                measured = job.train()   # the memory measured while training, for the memory record
                job.finish(measured)
            finally:
                job.cleanup()
        results["status"] = "complete"
        results.pop("failure", None)
    finally:
        _close(results, save)
    return results, run


def _reopen(suite: Suite, run_dir: str, force: bool) -> tuple[RunDir, dict, Callable[[], None]]:
    """An interrupted run, checked by harness/resume.py, marked running again by this process."""
    from harness.resume import open_for_resume

    run, results = open_for_resume(suite, run_dir, force)
    results.setdefault("resumed", []).append({
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status_before": run_state(results).status,
        "epochs_before": {r["name"]: [e["epoch"] for e in r["epochs"]] for r in results["models"]}})
    results.update(status="running", process=process_record(), finished=None)
    results.pop("failure", None)
    return run, results, lambda: write_json(run.results_path, results)


# --------------------------------------------------------------------------- audit only
def audit_suite(suite: Suite, log: Log = print) -> list[dict]:
    """The pre-training audits of every model's tokenizer, without loading weights or training.

    Returns one {"name", "audit"} per model (no `train` section: the evaluation data only).
    """
    from runners import trl_sft

    tasks = load_tasks(suite)
    if suite.train is None:   # nothing is tokenized for training: one audit of the evaluation data
        data_only = pretraining_audit(suite, tasks, [])
        return [{"name": spec.name, "audit": data_only} for spec in suite.models]
    train_rows = load_training_rows(suite)
    out = []
    for spec in suite.models:
        tokenizer = trl_sft.load_tokenizer(resolve_model_path(spec.path, log=log))
        tokenized = trl_sft.tokenize_rows(tokenizer, train_rows, suite.train)
        out.append({"name": spec.name, "audit": pretraining_audit(suite, tasks, train_rows, tokenizer, tokenized)})
    return out


# --------------------------------------------------------------------------- grade
def grade_models(suite: Suite, models: list[ModelSpec], log: Log = print, run_dir: Optional[str] = None,
                 backend_name: str = "transformers", predictions: Optional[Path] = None,
                 endpoint: Optional[str] = None, allow_partial: bool = False,
                 overwrite: bool = False, bars: Progress = OFF, drift_base: Optional[str] = None,
                 tracking: Optional[TrackingSession] = None, measure_memory: bool = False) -> tuple[dict, RunDir]:
    """Grade models (or a predictions file) without training: each becomes one 'epoch 0' record.
    `drift_base`: the model (name or path) every other model's drift is measured against.
    `tracking`: each record is logged at the global step its checkpoint was saved at (0 when it
    is not a run's checkpoint); the caller closes the session. `measure_memory`: count the grading
    phase's memory on CPU too (on CUDA it is always measured)."""
    from harness.drift.measure import GradedDrift

    plan_run_dir(suite, run_dir, overwrite)
    tasks = load_tasks(suite)
    drift = GradedDrift.plan(suite, models, drift_base,
                             load_probe(suite.diagnostics.probe, suite) if drift_base else [])
    models = drift.ordered(models) if drift else models
    preds = load_predictions(predictions, tasks, allow_partial) if predictions is not None else None
    train_rows = []
    if suite.train:
        try:
            train_rows = load_training_rows(suite)
        except Exception as e:  # e.g. a hub dataset offline: grading does not need it
            log(f"audit: training data not loaded, leakage not checked ({str(e).splitlines()[0][:160]})")
    data_audit = pretraining_audit(suite, tasks, train_rows)
    bars.quiet_library_bars()
    run, results, save = _start(suite, run_dir, overwrite)
    log(f"run directory: {run.root}")
    if tracking is not None:
        tracking.start(run, results, save, several_models=len(models) + (preds is not None) > 1, grading_only=True)
    try:
        if preds is not None:
            record = model_record(predictions.stem, str(predictions))
            results["models"].append(record)
            record["epochs"].append(grade_epoch(None, tasks, suite.bootstrap, run, record["name"], 0,
                                                predictions=preds))
            record["best"] = best_epoch(record, default_best_metric(suite, tasks))
            save()
            if tracking is not None:
                tracking.log_epoch(record["name"], record["epochs"][0])
        cls = backend_class(backend_name) if models else None
        shared = None   # vllm: one engine for every checkpoint and adapter of the run
        if cls is not None and cls.serves_many_checkpoints:
            shared = cls.for_models([(s, resolve_model_path(s.path, log=log)) for s in models])
        for spec in models:
            path = resolve_model_path(spec.path, log=log)
            if shared:
                backend = shared
                backend.select(path, spec.adapter)
            elif cls.remote:
                backend = cls.from_spec(spec, path, endpoint=endpoint)
            else:
                backend = cls.from_spec(spec, path)
            record = model_record(spec.name, spec.path, spec.adapter, parameters=getattr(backend, "parameters", None))
            results["models"].append(record)
            er = _grade_checkpoint(suite, spec, path, backend, cls, tasks, run, log, bars, train_rows, measure_memory)
            if drift:
                er["drift"] = drift.measure(spec, backend, run, tasks)
            record["epochs"].append(er)
            record["best"] = best_epoch(record, default_best_metric(suite, tasks))
            save()
            if tracking is not None:
                tracking.log_epoch(record["name"], er, step=checkpoint_step(spec.path) or 0)
            del backend
        for record in results["models"]:
            record["audit"] = data_audit   # grading data only: no training batches to audit
            _diagnose(record, run, suite, drift.base_epoch(results, record) if drift else None)
        results["status"] = "complete"
    finally:
        _close(results, save)
    return results, run


def _grade_checkpoint(suite: Suite, spec: ModelSpec, path: str, backend, backend_type: type,
                      tasks: list[LoadedTask], run: RunDir, log: Log, bars: Progress = OFF,
                      train_rows: Optional[list] = None, measure_memory: bool = False) -> dict:
    """One model graded as epoch 0: the auto grading batch chosen for it, its grading peak measured
    (transformers backend; a server's memory is not ours to measure). The batch's estimate counts
    the rows already loaded (`train_rows`: empty or None, not loaded)."""
    from harness import memory

    if not backend_type.measures_grading_memory:
        return grade_epoch(backend, with_grading_batch(tasks, AUTO_GRADING_BATCH_BOUND), suite.bootstrap, run,
                           spec.name, 0, progress=log if bars.mode == "off" else None, bars=bars)
    loaded = memory.LoadedRows(train=train_rows or None, tasks=[t.examples for t in tasks])
    grading = memory.grading_estimate(suite, spec, path, backend.tokenizer, backend.device,
                                      shared=memory.SharedPlan(suite, spec, path, backend.tokenizer, backend.device,
                                                               loaded))
    log(f"grading batch {grading['batch']} ({grading['why']})")
    measured = memory.measured_epoch(backend.device, 0, measure_memory)
    with memory.grading_phase(backend.device, measure=measured) as probe:
        er = grade_epoch(probe.wrap(backend), with_grading_batch(tasks, grading["batch"]), suite.bootstrap, run,
                         spec.name, 0, progress=log if bars.mode == "off" else None, bars=bars)
    er["grading_memory"] = probe.record(grading)
    return er

