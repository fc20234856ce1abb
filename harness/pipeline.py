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
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from harness import __version__
from harness.backends import backend_class
from harness.builtin import resolve_model_path
from harness.data import load_training_rows
from harness.errors import DataError, DoesNotFit, UserError
from harness.grade import LoadedTask, grade_epoch, load_tasks, with_grading_batch
from harness.out_of_memory import GradingOutOfMemory, TrainingOutOfMemory, is_out_of_memory, training_remedy
from harness.predictions import load_predictions
from harness.progress import OFF, Progress
from harness.results import (RunDir, model_record, new_results, process_record, run_state, write_atomic,
                             write_json)
from harness.suite import AUTO_GRADING_BATCH_BOUND, ModelSpec, Suite, dump_suite

Log = Callable[[str], None]


class AuditFailed(UserError):
    """A pre-training audit found an error and the suite says to stop (exit code 2)."""


def environment() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "sacrebleu", "rouge-score", "jsonschema", "datasets"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # environment info is best-effort, never a reason to fail
        pass
    return {"harness": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "gpu": gpu, "device": "cuda" if gpu else "cpu", **versions}


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
    for rec in results["models"]:
        rec.pop("_measured", None)
    save()


def _run_audits(suite: Suite, tasks: list[LoadedTask], train_rows, tokenizer=None, tokenized=None) -> dict:
    """The pre-training audits; without a tokenizer, only the template and data audits."""
    from harness import audit

    batches = ()
    if tokenizer is not None:
        from runners import trl_sft

        batches = trl_sft.batches(tokenizer, tokenized, suite.train)
    return audit.run_audits(train_examples=train_rows, tokenized=tokenized or [], tokenizer=tokenizer,
                            eval_sets={t.spec.name: t.examples for t in tasks}, suite=suite, batches=batches)


def _diagnose(record: dict, run: RunDir, suite: Suite) -> None:
    from harness import diagnose

    diagnose.diagnose_model(record, run, suite)


def _log_best(record: dict, log: Log) -> None:
    """The verdicts themselves are printed by the CLI's summary; this names the checkpoint to keep."""
    best = record.get("best")
    if best:
        where = f", checkpoint {best['checkpoint']}" if best.get("checkpoint") else ""
        log(f"best epoch for {best['metric']}: {best['epoch']} ({best['score']:.2f}{where})")


def score_of(epoch_record: dict, key: str) -> tuple[Optional[float], bool]:
    """'TASK/METRIC' or 'TASK/loss' → (value, higher_is_better) at one graded epoch."""
    task, metric = key.split("/", 1)
    rec = epoch_record["tasks"][task]
    if metric == "loss":
        return rec.get("loss"), False
    m = rec["metrics"][metric]
    return m.get("score"), m.get("higher_is_better", True)


def _best(record: dict, metric_key: str) -> Optional[dict]:
    best = None
    for e in record["epochs"]:
        try:
            value, higher = score_of(e, metric_key)
        except KeyError:
            return None
        if value is None:
            continue
        if best is None or (value > best["score"] if higher else value < best["score"]):
            best = {"metric": metric_key, "epoch": e["epoch"], "score": value, "checkpoint": e.get("checkpoint")}
    return best


def rotate_checkpoints(record: dict, keep: Optional[int], run: RunDir) -> list[int]:
    """Delete epoch checkpoints beyond the newest `keep`, never the best one; returns deleted epochs."""
    import shutil

    if not keep:
        return []
    saved = [e for e in record["epochs"] if e.get("checkpoint")]
    best_epoch = (record.get("best") or {}).get("epoch")
    deleted = []
    for e in saved[:-keep]:
        if e["epoch"] == best_epoch:
            continue
        shutil.rmtree(run.root / e["checkpoint"], ignore_errors=True)
        e["checkpoint"], e["checkpoint_deleted"] = None, True
        deleted.append(e["epoch"])
    return deleted


def default_best_metric(suite: Suite, tasks: list[LoadedTask]) -> str:
    if suite.train and suite.train.early_stopping:
        return suite.train.early_stopping.metric
    first = tasks[0]
    gen = [m for m in first.metrics if m.needs == "output"]
    return f"{first.spec.name}/{(gen or first.metrics)[0].name}"


# --------------------------------------------------------------------------- train
def train_and_grade(suite: Suite, log: Log = print, force: bool = False, run_dir: Optional[str] = None,
                    gpu_memory: Optional[str] = None, overwrite: bool = False,
                    resume: Optional[str] = None, bars: Progress = OFF) -> tuple[dict, RunDir]:
    """Train every model of the suite, grading each epoch. `resume`: an interrupted run directory
    to continue (harness/resume.py); its finished models are kept as they are. `bars`: progress
    of the training steps and graded items (harness/progress.py)."""
    from harness import memory
    from harness import resume as resuming
    from harness.backends.transformers_backend import parameter_summary
    from harness.distributed import processes
    from runners import trl_sft

    if suite.train is None:
        raise DataError(f"suite {suite.name!r} has no `train` section: use `harness grade` to grade without training")
    procs = processes()                       # under `accelerate launch`: rank 0 writes, grades, logs
    if not resume and procs.is_main:
        plan_run_dir(suite, run_dir, overwrite)   # refused before any work, and before anything is written
    tasks = load_tasks(suite)                 # data problems surface before any model work
    train_rows = load_training_rows(suite)
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
    try:
        for spec in suite.models:
            record = next((r for r in results["models"] if r["name"] == spec.name), None)
            if record is not None and resuming.model_finished(record):
                log(f"{spec.name}: finished before the interruption, kept as it is")
                continue
            point = resuming.resume_point(record, run) if record is not None else None
            path = resolve_model_path(spec.path, log=log)
            fits, explanation = memory.fits_or_explain(suite, spec, gpu_memory or suite.memory.gpu_memory)
            if not fits and not force:
                raise DoesNotFit(explanation)
            model, tokenizer = trl_sft.load(spec, path, suite.train)
            grading = memory.grading_estimate(suite, spec, path, tokenizer, _device(),
                                              gpu_memory or suite.memory.gpu_memory)
            log(f"grading batch {grading['batch']} ({grading['why']})")
            tokenized = trl_sft.tokenize_rows(tokenizer, train_rows, suite.train)
            if record is not None and record["epochs"]:
                dropped = resuming.keep_epochs_up_to(record, point)
                if procs.is_main:
                    resuming.remove_other_states(run, spec.name, point.path if point else None)
                log(f"{spec.name}: resuming after epoch {point.epoch if point else 0}"
                    + (f" (epochs {dropped} are graded again)" if dropped else ""))
            else:
                if record is not None:        # started, but nothing graded: start it again
                    results["models"].remove(record)
                record = model_record(spec.name, spec.path, spec.adapter, suite.train.method,
                                      parameter_summary(model), resume_state=None)
                results["models"].append(record)
                record["audit"] = _run_audits(suite, tasks, train_rows, tokenizer, tokenized)
                save()
                log(f"pre-training audit: {record['audit']['verdict']['status']}: "
                    f"{record['audit']['verdict']['summary']}")
                if record["audit"]["verdict"]["status"] == "fail" and suite.diagnostics.audit.fail_on_error:
                    raise AuditFailed(f"pre-training audit failed: {record['audit']['verdict']['summary']} "
                                      f"(set diagnostics.audit.fail_on_error: false to train anyway)")

            try:
                _train_one(suite, spec, model, tokenizer, tokenized, with_grading_batch(tasks, grading["batch"]),
                           run, record, save, log, grading, point, procs, path, bars)
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                graded = [x["epoch"] for x in record["epochs"]]
                raise TrainingOutOfMemory(
                    f"training {spec.name} ran out of GPU memory after epoch {graded[-1] if graded else 0} "
                    f"(graded epochs {graded} are kept in {run.root}); the preflight's remedy: "
                    f"{training_remedy(suite, spec, gpu_memory or suite.memory.gpu_memory)}") from None
            if procs.is_main:
                resuming.remove_other_states(run, spec.name, None)   # finished: the Trainer state is not needed
                record["resume_state"] = None
                record["memory"] = memory.memory_record(suite, spec, path, record.get("_measured"), tokenizer)
                record["memory"]["grading"] = memory.grading_record(
                    grading, [e.get("grading_memory") for e in record["epochs"]])
                record.pop("_measured", None)
                _diagnose(record, run, suite)
            save()
            _log_best(record, log)
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


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _train_one(suite: Suite, spec: ModelSpec, model, tokenizer, tokenized, tasks: list[LoadedTask],
               run: RunDir, record: dict, save: Callable[[], None], log: Log, grading: dict, point=None,
               procs=None, path: Optional[str] = None, bars: Progress = OFF) -> None:
    """Grade epoch 0, train with grading at each epoch end; `point`: continue after that saved epoch.
    Several processes: rank 0 grades (or each rank a shard of the items) while the others wait."""
    from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
    from harness.distributed import Processes, ShardedBackend, follow_grading
    from harness.early_stopping import EarlyStopper
    from harness.memory import MemoryCallback, grading_phase, measured_epoch
    from harness.resume import remove_other_states, trainer_dir
    from harness.sharding import WEIGHTS_SHARDED, strategy_of
    from runners import trl_sft

    procs = procs or Processes(0, 1)
    dist = suite.train.distributed
    # ZeRO-3 / FSDP full_shard: rank 0's model object holds only its shard; grade a gathered checkpoint
    gathered = procs.distributed and dist is not None and \
        strategy_of(dist.deepspeed, dist.fsdp)[0] in WEIGHTS_SHARDED
    # grading: sharded: every rank answers 1/N of the items (full weights on every rank only)
    sharded = procs.distributed and dist is not None and dist.grading == "sharded" and not gathered
    vllm = _vllm_grader(suite, spec, model) if backend_class(suite.grading.backend).sleeps_during_training \
        and procs.is_main else None
    backend = vllm or (TransformersBackend(model, tokenizer) if procs.is_main or sharded else None)
    if sharded and vllm is None:
        backend = ShardedBackend(backend, procs)
    best_key = default_best_metric(suite, tasks)
    es = suite.train.early_stopping
    stopper = None
    if es:
        stopper = EarlyStopper(patience=es.patience, min_delta=es.min_delta)

    def grade(epoch: int, step: int, saved: Optional[Path] = None) -> dict:
        t0 = time.perf_counter()
        by = backend
        if saved is not None:   # the gathered weights, as `harness grade` would load them
            adapter = (saved / "adapter_config.json").is_file()
            by = TransformersBackend(*load_model_and_tokenizer(path if adapter else str(saved),
                                                               str(saved) if adapter else None))
        # no autograd, the training's autocast, freed before training resumes; its own peak measured
        # (vLLM's memory is its engine's, not this process's tensors: not measured here)
        device = getattr(by, "device", _device())
        with grading_phase(device, suite.train.precision,
                           measured_epoch(device, epoch) and not vllm) as probe:
            er = grade_epoch(probe.wrap(by), tasks, suite.bootstrap, run, spec.name, epoch, step, bars=bars)
        er["grading_memory"] = probe.record(grading)
        record["epochs"].append(er)
        record["best"] = _best(record, best_key)
        save()
        scores = ", ".join(f"{t}: " + " ".join(f"{m} {v['score']:.2f}" for m, v in r["metrics"].items()
                                                if v.get("score") is not None)
                           for t, r in er["tasks"].items())
        log(f"epoch {epoch} graded in {time.perf_counter() - t0:.1f}s: {scores}")
        return er

    if procs.is_main:
        if not record["epochs"]:
            grade(0, 0)
        if vllm:
            vllm.pause_for_training(suite.train.method)
        record["best"] = _best(record, best_key)
        if stopper:   # a resumed run replays the epochs it keeps
            for er in record["epochs"]:
                stopper.update(er["epoch"], *score_of(er, es.metric))
    elif sharded and not record["epochs"]:
        follow_grading(backend, tasks)
    procs.barrier()   # the other ranks wait for rank 0's grading (here and at every epoch end)
    if record.get("early_stopped"):
        return    # it had stopped early: training was over before the interruption

    def on_epoch_end(epoch: int, step: int, trained_model, save_model=None) -> bool:
        ckpt = None
        if suite.train.save_checkpoints or gathered or vllm:   # vLLM reads the epoch from its checkpoint
            ckpt = run.checkpoint_path(spec.name, epoch) if suite.train.save_checkpoints or vllm \
                else run.root / ".gathered" / f"epoch-{epoch}"
            if procs.distributed:
                save_model(ckpt)          # every rank: DeepSpeed/FSDP gather the shards; rank 0 writes
            else:
                trained_model.save_pretrained(ckpt)
            if procs.is_main:
                tokenizer.save_pretrained(ckpt)
        stop = False
        if procs.is_main:
            stop = _after_epoch(epoch, step, ckpt)
        elif sharded:
            follow_grading(backend, tasks)
        procs.barrier()
        return procs.broadcast(stop)      # every rank stops early together

    def _after_epoch(epoch: int, step: int, ckpt: Optional[Path]) -> bool:
        import shutil

        if vllm:
            vllm.grade_checkpoint(str(ckpt), suite.train.method)
        er = grade(epoch, step, ckpt if gathered and not vllm else None)
        if vllm:
            vllm.pause_for_training(suite.train.method)
        steps = [r["loss"] for r in train.log if epoch - 1 < r["epoch"] <= epoch + 1e-9]
        er["train_loss"] = sum(steps) / len(steps) if steps else None
        if suite.train.save_checkpoints:
            er["checkpoint"] = run.rel(ckpt)
            record["best"] = _best(record, best_key)
            rotate_checkpoints(record, suite.train.keep_checkpoints, run)
        elif ckpt is not None:
            shutil.rmtree(ckpt, ignore_errors=True)
        save()
        if stopper and stopper.update(epoch, *score_of(er, es.metric)):
            log(f"early stopping after epoch {epoch}: {es.metric} has not improved for {es.patience} epochs "
                f"(best epoch {stopper.best_epoch})")
            record["early_stopped"] = True
            return True
        return False

    def on_state_saved(epoch: int, step: int, path: Path) -> None:
        # recorded first, then the older state deleted: a kill in between leaves one usable state
        record["resume_state"] = {"epoch": epoch, "step": step, "path": run.rel(path)}
        record["train"] = train.as_dict()
        save()
        if procs.is_main:
            remove_other_states(run, spec.name, path)

    prior = record.get("train") or {}
    train = trl_sft.TrainRecord(log=list(prior.get("log") or []), seconds=float(prior.get("seconds") or 0.0))
    mem_cb = MemoryCallback()

    def on_log(row: dict) -> None:   # the runner has appended the row to train.log
        if procs.is_main:
            write_atomic(run.root / "train_log.jsonl",
                         "".join(json.dumps(r) + "\n" for r in train.log))

    result = trl_sft.train(model, tokenizer, tokenized, suite.train, trainer_dir(run, spec.name),
                           on_epoch_end, on_log=on_log, extra_callbacks=(mem_cb,), on_state_saved=on_state_saved,
                           resume_from=point.path if point else None, record=train, progress=bars)
    record["train"] = result.as_dict()
    record["_measured"] = mem_cb.measured


def _vllm_grader(suite: Suite, spec: ModelSpec, model):
    """The one engine (vLLM) that grades every epoch of this model, started on the weights the
    trainer loaded (as TRL's colocated mode does, from `model.name_or_path`)."""
    engine = backend_class(suite.grading.backend)
    return engine.for_training(spec, model.name_or_path, suite.train.method, suite.train.lora.r,
                               suite.grading.gpu_memory_utilization)


# --------------------------------------------------------------------------- audit only
def audit_suite(suite: Suite, log: Log = print) -> list[dict]:
    """The pre-training audits of every model's tokenizer, without loading weights or training.

    Returns one {"name", "audit"} per model (no `train` section: the evaluation data only).
    """
    from runners import trl_sft

    tasks = load_tasks(suite)
    if suite.train is None:   # nothing is tokenized for training: one audit of the evaluation data
        data_only = _run_audits(suite, tasks, [])
        return [{"name": spec.name, "audit": data_only} for spec in suite.models]
    train_rows = load_training_rows(suite)
    out = []
    for spec in suite.models:
        tokenizer = trl_sft.load_tokenizer(resolve_model_path(spec.path, log=log))
        tokenized = trl_sft.tokenize_rows(tokenizer, train_rows, suite.train)
        out.append({"name": spec.name, "audit": _run_audits(suite, tasks, train_rows, tokenizer, tokenized)})
    return out


# --------------------------------------------------------------------------- grade
def grade_models(suite: Suite, models: list[ModelSpec], log: Log = print, run_dir: Optional[str] = None,
                 backend_name: str = "transformers", predictions: Optional[Path] = None,
                 endpoint: Optional[str] = None, allow_partial: bool = False,
                 overwrite: bool = False, bars: Progress = OFF) -> tuple[dict, RunDir]:
    """Grade models (or a predictions file) without training: each becomes one 'epoch 0' record."""
    plan_run_dir(suite, run_dir, overwrite)
    tasks = load_tasks(suite)
    preds = load_predictions(predictions, tasks, allow_partial) if predictions is not None else None
    train_rows = []
    if suite.train:
        try:
            train_rows = load_training_rows(suite)
        except Exception as e:  # e.g. a hub dataset offline: grading does not need it
            log(f"audit: training data not loaded, leakage not checked ({str(e).splitlines()[0][:160]})")
    data_audit = _run_audits(suite, tasks, train_rows)
    bars.quiet_library_bars()
    run, results, save = _start(suite, run_dir, overwrite)
    log(f"run directory: {run.root}")
    try:
        if preds is not None:
            record = model_record(predictions.stem, str(predictions))
            results["models"].append(record)
            record["epochs"].append(grade_epoch(None, tasks, suite.bootstrap, run, record["name"], 0,
                                                predictions=preds))
            record["best"] = _best(record, default_best_metric(suite, tasks))
            save()
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
            er = _grade_checkpoint(suite, spec, path, backend, cls, tasks, run, log, bars)
            record["epochs"].append(er)
            record["best"] = _best(record, default_best_metric(suite, tasks))
            save()
            del backend
        for record in results["models"]:
            record["audit"] = data_audit   # grading data only: no training batches to audit
            _diagnose(record, run, suite)
        results["status"] = "complete"
    finally:
        _close(results, save)
    return results, run


def _grade_checkpoint(suite: Suite, spec: ModelSpec, path: str, backend, backend_type: type,
                      tasks: list[LoadedTask], run: RunDir, log: Log, bars: Progress = OFF) -> dict:
    """One model graded as epoch 0: the auto grading batch chosen for it, its grading peak measured
    (transformers backend; a server's memory is not ours to measure)."""
    from harness import memory

    if not backend_type.measures_grading_memory:
        return grade_epoch(backend, with_grading_batch(tasks, AUTO_GRADING_BATCH_BOUND), suite.bootstrap, run,
                           spec.name, 0, progress=log if bars.mode == "off" else None, bars=bars)
    grading = memory.grading_estimate(suite, spec, path, backend.tokenizer, backend.device)
    log(f"grading batch {grading['batch']} ({grading['why']})")
    with memory.grading_phase(backend.device) as probe:
        er = grade_epoch(probe.wrap(backend), with_grading_batch(tasks, grading["batch"]), suite.bootstrap, run,
                         spec.name, 0, progress=log if bars.mode == "off" else None, bars=bars)
    er["grading_memory"] = probe.record(grading)
    return er

