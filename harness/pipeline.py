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
from harness.builtin import resolve_model_path
from harness.data import DataError, load_training_rows
from harness.errors import DoesNotFit, UserError
from harness.grade import LoadedTask, grade_epoch, load_tasks, with_grading_batch
from harness.results import RunDir, new_results, read_jsonl, write_atomic, write_json
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


def new_run_dir(suite: Suite, run_dir: Optional[str] = None) -> RunDir:
    if run_dir:
        root = Path(run_dir)
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        root = Path(suite.output_dir) / f"{suite.name}-{stamp}"  # relative to where harness runs
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / "suite.yaml", dump_suite(suite))
    return RunDir(root)


def _start(suite: Suite, run_dir: Optional[str]) -> tuple[RunDir, dict, Callable[[], None]]:
    run = new_run_dir(suite, run_dir)
    results = new_results(suite.name, json.loads(suite.model_dump_json(exclude={"base_dir"})), environment())
    results["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return run, results, lambda: write_json(run.results_path, results)


def _close(results: dict, save: Callable[[], None]) -> None:
    """Last write of a run, whatever ended it: a run never left 'running' keeps its epochs."""
    exc = sys.exc_info()[1]
    if isinstance(exc, KeyboardInterrupt):
        results["status"] = "interrupted"
    elif exc is not None:
        results["status"] = "failed"
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
                    gpu_memory: Optional[str] = None) -> tuple[dict, RunDir]:
    from harness import memory
    from harness.backends.transformers_backend import parameter_summary
    from runners import trl_sft

    if suite.train is None:
        raise DataError(f"suite {suite.name!r} has no `train` section: use `harness grade` to grade without training")
    tasks = load_tasks(suite)                 # data problems surface before any model work
    train_rows = load_training_rows(suite)
    run, results, save = _start(suite, run_dir)
    log(f"run directory: {run.root}")
    try:
        for spec in suite.models:
            path = resolve_model_path(spec.path, log=log)
            fits, explanation = memory.fits_or_explain(suite, spec, gpu_memory or suite.memory.gpu_memory)
            if not fits and not force:
                raise DoesNotFit(explanation)
            model, tokenizer = trl_sft.load(spec, path, suite.train)
            grading = memory.grading_estimate(suite, spec, path, tokenizer, _device(),
                                              gpu_memory or suite.memory.gpu_memory)
            log(f"grading batch {grading['batch']} ({grading['why']})")
            record = {"name": spec.name, "path": spec.path, "adapter": spec.adapter,
                      "method": suite.train.method, "parameters": parameter_summary(model),
                      "train": None, "epochs": [], "best": None, "early_stopped": False,
                      "audit": None, "memory": None, "diagnostics": None}
            results["models"].append(record)

            tokenized = trl_sft.tokenize_rows(tokenizer, train_rows, suite.train)
            record["audit"] = _run_audits(suite, tasks, train_rows, tokenizer, tokenized)
            save()
            log(f"pre-training audit: {record['audit']['verdict']['status']}: {record['audit']['verdict']['summary']}")
            if record["audit"]["verdict"]["status"] == "fail" and suite.diagnostics.audit.fail_on_error:
                raise AuditFailed(f"pre-training audit failed: {record['audit']['verdict']['summary']} "
                                  f"(set diagnostics.audit.fail_on_error: false to train anyway)")

            _train_one(suite, spec, model, tokenizer, tokenized, with_grading_batch(tasks, grading["batch"]), run,
                       record, save, log, grading)
            record["memory"] = memory.memory_record(suite, spec, path, record.get("_measured"), tokenizer)
            record["memory"]["grading"] = memory.grading_record(
                grading, [e.get("grading_memory") for e in record["epochs"]])
            record.pop("_measured", None)
            _diagnose(record, run, suite)
            save()
            _log_best(record, log)
        results["status"] = "complete"
    finally:
        _close(results, save)
    return results, run


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _train_one(suite: Suite, spec: ModelSpec, model, tokenizer, tokenized, tasks: list[LoadedTask],
               run: RunDir, record: dict, save: Callable[[], None], log: Log, grading: dict) -> None:
    from harness.backends.transformers_backend import TransformersBackend
    from harness.early_stopping import EarlyStopper
    from harness.memory import MemoryCallback, grading_phase, measured_epoch
    from runners import trl_sft

    backend = TransformersBackend(model, tokenizer)
    best_key = default_best_metric(suite, tasks)
    es = suite.train.early_stopping
    stopper = None
    if es:
        stopper = EarlyStopper(patience=es.patience, min_delta=es.min_delta)

    def grade(epoch: int, step: int) -> dict:
        t0 = time.perf_counter()
        # no autograd, the training's autocast, freed before training resumes; its own peak measured
        with grading_phase(backend.device, suite.train.precision, measured_epoch(backend.device, epoch)) as probe:
            er = grade_epoch(probe.wrap(backend), tasks, suite.bootstrap, run, spec.name, epoch, step)
        er["grading_memory"] = probe.record(grading)
        record["epochs"].append(er)
        record["best"] = _best(record, best_key)
        save()
        scores = ", ".join(f"{t}: " + " ".join(f"{m} {v['score']:.2f}" for m, v in r["metrics"].items()
                                                if v.get("score") is not None)
                           for t, r in er["tasks"].items())
        log(f"epoch {epoch} graded in {time.perf_counter() - t0:.1f}s: {scores}")
        return er

    grade(0, 0)
    if stopper:
        stopper.update(0, *score_of(record["epochs"][0], es.metric))

    def on_epoch_end(epoch: int, step: int, trained_model) -> bool:
        er = grade(epoch, step)
        steps = [r["loss"] for r in train.log if epoch - 1 < r["epoch"] <= epoch + 1e-9]
        er["train_loss"] = sum(steps) / len(steps) if steps else None
        if suite.train.save_checkpoints:
            ckpt = run.checkpoint_path(spec.name, epoch)
            trained_model.save_pretrained(ckpt)
            tokenizer.save_pretrained(ckpt)
            er["checkpoint"] = run.rel(ckpt)
            record["best"] = _best(record, best_key)
            rotate_checkpoints(record, suite.train.keep_checkpoints, run)
        save()
        if stopper and stopper.update(epoch, *score_of(er, es.metric)):
            log(f"early stopping after epoch {epoch}: {es.metric} has not improved for {es.patience} epochs "
                f"(best epoch {stopper.best_epoch})")
            record["early_stopped"] = True
            return True
        return False

    train = trl_sft.TrainRecord()  # filled by the runner's log callback via `on_log`
    mem_cb = MemoryCallback()

    def on_log(row: dict) -> None:
        train.log.append(row)
        write_atomic(run.root / "train_log.jsonl",
                     "".join(json.dumps(r) + "\n" for r in train.log))

    result = trl_sft.train(model, tokenizer, tokenized, suite.train, run.root / ".trainer",
                           on_epoch_end, on_log=on_log, extra_callbacks=(mem_cb,))
    record["train"] = result.as_dict()
    record["_measured"] = mem_cb.measured


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
                 endpoint: Optional[str] = None) -> tuple[dict, RunDir]:
    """Grade models (or a predictions file) without training: each becomes one 'epoch 0' record."""
    from harness.backends import backend_class

    tasks = load_tasks(suite)
    train_rows = []
    if suite.train:
        try:
            train_rows = load_training_rows(suite)
        except Exception as e:  # e.g. a hub dataset offline: grading does not need it
            log(f"audit: training data not loaded, leakage not checked ({str(e).splitlines()[0][:160]})")
    data_audit = _run_audits(suite, tasks, train_rows)
    run, results, save = _start(suite, run_dir)
    log(f"run directory: {run.root}")
    try:
        if predictions is not None:
            preds = load_predictions(predictions, tasks)
            record = _grade_record(name=predictions.stem, path=str(predictions), adapter=None, parameters=None)
            results["models"].append(record)
            record["epochs"].append(grade_epoch(None, tasks, suite.bootstrap, run, record["name"], 0,
                                                predictions=preds))
            record["best"] = _best(record, default_best_metric(suite, tasks))
            save()
        for spec in models:
            cls = backend_class(backend_name)
            path = resolve_model_path(spec.path, log=log)
            backend = cls.from_spec(spec, path, endpoint=endpoint) if backend_name == "openai" \
                else cls.from_spec(spec, path)
            record = _grade_record(spec.name, spec.path, spec.adapter, getattr(backend, "parameters", None))
            results["models"].append(record)
            er = _grade_checkpoint(suite, spec, path, backend, backend_name, tasks, run, log)
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


def _grade_checkpoint(suite: Suite, spec: ModelSpec, path: str, backend, backend_name: str,
                      tasks: list[LoadedTask], run: RunDir, log: Log) -> dict:
    """One model graded as epoch 0: the auto grading batch chosen for it, its grading peak measured
    (transformers backend; a server's memory is not ours to measure)."""
    from harness import memory

    if backend_name != "transformers":
        return grade_epoch(backend, with_grading_batch(tasks, AUTO_GRADING_BATCH_BOUND), suite.bootstrap, run,
                           spec.name, 0, progress=lambda m: log(m))
    grading = memory.grading_estimate(suite, spec, path, backend.tokenizer, backend.device)
    log(f"grading batch {grading['batch']} ({grading['why']})")
    with memory.grading_phase(backend.device) as probe:
        er = grade_epoch(probe.wrap(backend), with_grading_batch(tasks, grading["batch"]), suite.bootstrap, run,
                         spec.name, 0, progress=lambda m: log(m))
    er["grading_memory"] = probe.record(grading)
    return er


def _grade_record(name: str, path: str, adapter: Optional[str], parameters: Optional[dict]) -> dict:
    return {"name": name, "path": path, "adapter": adapter, "method": "none", "parameters": parameters,
            "train": None, "epochs": [], "best": None, "early_stopped": False, "audit": None,
            "memory": None, "diagnostics": None}


def load_predictions(path: Path, tasks: list[LoadedTask]) -> dict[str, dict[str, dict]]:
    """JSONL with task, id, output (optional reference) → task → id → row.

    A `reference` field overrides the task data's reference; ids missing from the file are
    an error naming the first few, so a partial file cannot quietly shrink the test set.
    """
    if not path.exists():
        raise DataError(f"{path}: predictions file not found")
    by_task: dict[str, dict[str, dict]] = {t.spec.name: {} for t in tasks}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            missing = [k for k in ("task", "id", "output") if k not in row]
            if missing:
                raise DataError(f"{path}:{lineno}: missing field(s) {', '.join(missing)} (each line needs task, id, output)")
            if row["task"] not in by_task:
                raise DataError(f"{path}:{lineno}: unknown task {row['task']!r}; the suite has {', '.join(by_task)}")
            if not isinstance(row["output"], str):
                raise DataError(f"{path}:{lineno}: field 'output' must be a string")
            by_task[row["task"]][str(row["id"])] = row
    for task in tasks:
        rows = by_task[task.spec.name]
        known = {ex.id for ex in task.examples}
        extra = [i for i in rows if i not in known]
        for i in extra:  # rows with their own reference extend the task
            if "reference" not in rows[i]:
                raise DataError(f"{path}: task {task.spec.name}: id {i!r} is not in the task data and has no 'reference'")
        task.examples = [ex for ex in task.examples if ex.id in rows] + [
            _example_from_prediction(rows[i]) for i in extra]
        for ex in task.examples:
            if "reference" in rows[ex.id]:
                ex.messages = ex.messages[:-1] + [{"role": "assistant", "content": rows[ex.id]["reference"]}]
        if not task.examples:
            raise DataError(f"{path}: no predictions for task {task.spec.name}")
    return by_task


def _example_from_prediction(row: dict):
    from harness.data import Example

    return Example(id=str(row["id"]), messages=[{"role": "user", "content": row.get("source", "")},
                                                {"role": "assistant", "content": row["reference"]}],
                   origin="predictions")
