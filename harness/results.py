"""The run directory: results.json (versioned), per-sample JSONL, and how to read them back.

Layout of a run directory:

    suite.yaml                                  resolved suite (defaults filled in)
    results.json                                everything the report and the gate need
    samples/MODEL/epoch-K/TASK.jsonl            one row per test item, with per-sample stats
    train_log.jsonl                             one row per logged training step
    checkpoints/MODEL/epoch-K/                  saved weights (or adapter) per epoch
    report.html                                 self-contained report

Every write is atomic (temp file + rename), and results.json is rewritten after each graded
epoch, so an interrupted run keeps what it has graded. The schema is documented in
docs/results.md; bump SCHEMA_VERSION on any incompatible change.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NotRequired, Optional, TypedDict

import numpy as np

from harness.errors import UserError
from harness.files import read_text

SCHEMA_VERSION = 1


class ResultsError(UserError, ValueError):
    """A results file that cannot be used (missing, corrupt, unknown schema version)."""


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every reader can parse the file."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    return obj


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes files owner-only; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(_clean(obj), indent=1, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_atomic(path, "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    """A run's JSONL file (samples) as rows; a line that is not a JSON object is a
    ResultsError naming file and line, as a damaged results.json is."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                row = None
            if not isinstance(row, dict):
                raise ResultsError(f"{path}:{lineno}: not a JSON object: the samples file is damaged "
                                   f"(grade the run again to rewrite it)")
            rows.append(row)
    return rows


def safe_name(name: str) -> str:
    """A model or task name as a path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def results_path(self) -> Path:
        return self.root / "results.json"

    def samples_path(self, model: str, epoch: int, task: str) -> Path:
        return self.root / "samples" / safe_name(model) / f"epoch-{epoch}" / f"{safe_name(task)}.jsonl"

    def checkpoint_path(self, model: str, epoch: int) -> Path:
        return self.root / "checkpoints" / safe_name(model) / f"epoch-{epoch}"

    def rel(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))


# ----------------------------------------------------------------- typed records
# The records of results.json, as lm-eval's result_schema does it: TypedDicts (plain dicts in
# the file, typed in the code), each built by one constructor that sets every key. Records read
# from a file go through the same constructors (`read_model`), so an older or hand-written file
# with keys missing reads the same as a fresh one and readers index keys instead of chaining
# `.get`. Keys a constructor does not know (written by newer code) are kept as they are.

class MetricRecord(TypedDict, total=False):
    score: Optional[float]            # None when the metric was skipped
    ci: Optional[list[float]]         # confidence interval [lo, hi] (method in ci_method)
    ci_method: NotRequired[str]       # "percentile bootstrap" or "wilson" (rate metrics)
    se: NotRequired[Optional[float]]  # bootstrap standard error of the score
    design_effect: NotRequired[Optional[float]]   # clustered / naive variance (data.cluster set)
    signature: Optional[str]          # how the score was computed; ends with the harness version
    higher_is_better: Optional[bool]  # None: a file that does not say (readers ask the metric)
    skipped: str                      # why there is no score (only when skipped)


class TaskRecord(TypedDict):
    n: int
    loss: Optional[float]             # mean NLL per reference assistant token
    metrics: dict[str, MetricRecord]
    seconds: Optional[float]
    samples: Optional[str]            # run-relative path of the per-sample JSONL
    # written by today's grading, absent from older files:
    language: NotRequired[dict]       # the task's language and where it came from
    data_hash: NotRequired[str]       # sha256 over the graded items
    batch_size: NotRequired[Optional[int]]   # the grading batch used (None: a predictions file)
    batch: NotRequired[dict]          # {requested, used, halvings} after out-of-memory retries
    unencodable_outputs: NotRequired[int]   # outputs whose lone surrogates became U+FFFD (only when > 0)
    generation_seed: NotRequired[int]       # the seed outputs were sampled with (do_sample only)
    # graded from a predictions file (harness/predictions.py):
    coverage: NotRequired[dict]       # {graded, total}
    references_overridden: NotRequired[int]


class EpochRecord(TypedDict):
    epoch: int                        # 0 = before training
    step: int
    checkpoint: Optional[str]
    train_loss: Optional[float]
    tasks: dict[str, TaskRecord]
    grading_memory: NotRequired[dict]  # measured grading peak per term beside its estimate


class BestRecord(TypedDict):
    metric: str                       # "TASK/METRIC"
    epoch: int
    score: float
    checkpoint: Optional[str]


class ModelRecord(TypedDict):
    name: str
    path: str
    adapter: Optional[str]
    method: str                       # full | lora | qlora | none (grade only)
    parameters: Optional[dict]
    train: Optional[dict]
    epochs: list[EpochRecord]
    best: Optional[BestRecord]
    early_stopped: bool
    audit: Optional[dict]
    memory: Optional[dict]
    diagnostics: Optional[dict]
    # train-and-grade: the Trainer state a killed run resumes from (harness.resume); a file
    # without the key was written before --resume existed and cannot be resumed
    resume_state: NotRequired[Optional[dict]]


class GateRecord(TypedDict, total=False):
    """One gate's verdict (results.json `gates.gates[i]`; docs/gates.md)."""
    name: str                         # "TASK/METRIC KIND THRESHOLD"
    task: str
    metric: str
    model: str
    checkpoint: Any                   # best | last | an epoch number
    epoch: int                        # the epoch the checkpoint selector chose
    higher_is_better: bool
    confidence: float
    kind: str                         # min | max | max_drop_from_base | max_drop_from_baseline
    value: Optional[float]
    threshold: float
    reference: Optional[str]          # "epoch 0" | "baseline epoch K" (drop gates)
    reference_value: Optional[float]
    delta: Optional[float]
    drop: Optional[float]
    p_value: Optional[float]          # the paired test's raw one-sided p
    p_adjusted: Optional[float]       # Holm-adjusted over the run's paired-test gates (what decides)
    test: str                         # which paired test (bootstrap normal tail, exact McNemar)
    paired_items: Optional[int]
    status: str                       # pass | fail | skipped
    passed: bool
    mode: Optional[str]               # threshold-only | paired-test | None (skipped)
    message: str
    ci: list[float]                   # paired-test gates: the delta's interval
    paired_delta: float
    baseline: str                     # baseline gates: the baseline's results.json


class GatesRecord(TypedDict, total=False):
    """`harness gate`'s verdicts on one model (results.json `gates`)."""
    passed: bool
    verdict: dict                     # {status: pass | fail, summary}
    gates: list[GateRecord]
    model: str
    suite_name: Optional[str]
    results: str
    baseline: Optional[str]
    evaluated: str                    # ISO time, UTC
    allowed: list[str]                # the refusals waived by --allow-*
    source: str                       # "suite" or the gates file (stored in results.json)


def gate_record(name: str, task: str, metric: str, model: str, checkpoint: Any, epoch: int,
                higher_is_better: bool, confidence: float, kind: str, value: Optional[float],
                threshold: float) -> GateRecord:
    """A gate before it is evaluated: every key of a verdict present, the outcome still empty."""
    return GateRecord(name=name, task=task, metric=metric, model=model, checkpoint=checkpoint, epoch=epoch,
                      higher_is_better=higher_is_better, confidence=confidence, kind=kind, value=value,
                      threshold=threshold, reference=None, reference_value=None, delta=None, drop=None,
                      p_value=None, paired_items=None)


def gates_record(gates: list[GateRecord], summary: str, model: str, suite_name: Optional[str], results: str,
                 baseline: Optional[str], evaluated: str, allowed: list[str]) -> GatesRecord:
    passed = all(g["passed"] for g in gates)
    return GatesRecord(passed=passed, verdict={"status": "pass" if passed else "fail", "summary": summary},
                       gates=gates, model=model, suite_name=suite_name, results=results, baseline=baseline,
                       evaluated=evaluated, allowed=allowed)


def metric_record(score: Optional[float], ci: Optional[list[float]] = None, signature: Optional[str] = None,
                  higher_is_better: Optional[bool] = True, skipped: Optional[str] = None,
                  **extra: Any) -> MetricRecord:
    """A graded metric, or (skipped given) one that could not be computed: {score: None, skipped}."""
    if skipped is not None:
        return MetricRecord(score=None, skipped=skipped, **extra)
    return MetricRecord(score=score, ci=list(ci) if ci else None, signature=signature,
                        higher_is_better=None if higher_is_better is None else bool(higher_is_better), **extra)


def task_record(n: int, metrics: dict[str, MetricRecord], loss: Optional[float] = None,
                seconds: Optional[float] = None, samples: Optional[str] = None, **extra: Any) -> TaskRecord:
    return TaskRecord(n=n, loss=loss, metrics=metrics, seconds=seconds, samples=samples, **extra)


def epoch_record(epoch: int, step: int = 0, tasks: Optional[dict[str, TaskRecord]] = None,
                 checkpoint: Optional[str] = None, train_loss: Optional[float] = None,
                 **extra: Any) -> EpochRecord:
    return EpochRecord(epoch=epoch, step=step, checkpoint=checkpoint, train_loss=train_loss,
                       tasks=tasks if tasks is not None else {}, **extra)


def model_record(name: str, path: str, adapter: Optional[str] = None, method: str = "none",
                 parameters: Optional[dict] = None, train: Optional[dict] = None,
                 epochs: Optional[list[EpochRecord]] = None, best: Optional[BestRecord] = None,
                 early_stopped: bool = False, audit: Optional[dict] = None, memory: Optional[dict] = None,
                 diagnostics: Optional[dict] = None, **extra: Any) -> ModelRecord:
    return ModelRecord(name=name, path=path, adapter=adapter, method=method, parameters=parameters,
                       train=train, epochs=epochs if epochs is not None else [], best=best,
                       early_stopped=bool(early_stopped), audit=audit, memory=memory,
                       diagnostics=diagnostics, **extra)


def _record(raw: Any) -> dict:
    return raw if isinstance(raw, dict) else {}


def _section(raw: Any) -> Optional[dict]:
    return raw if isinstance(raw, dict) else None


def read_metric(raw: Any) -> MetricRecord:
    r = dict(_record(raw))
    if r.get("skipped") is not None or "score" not in r:
        return metric_record(None, skipped=str(r.pop("skipped", None) or "not scored"),
                             **{k: v for k, v in r.items() if k != "score"})
    score = r.pop("score")
    ci = r.pop("ci", None)
    return metric_record(score if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
                         ci if isinstance(ci, list) and len(ci) == 2 else None,
                         r.pop("signature", None), _bool_or_none(r.pop("higher_is_better", None)), **r)


def _bool_or_none(x: Any) -> Optional[bool]:
    return x if isinstance(x, bool) else None


def read_task(raw: Any) -> TaskRecord:
    r = dict(_record(raw))
    metrics = {str(k): read_metric(v) for k, v in _record(r.pop("metrics", None)).items()}
    n = r.pop("n", 0)
    return task_record(n if isinstance(n, int) else 0, metrics, r.pop("loss", None), r.pop("seconds", None),
                       r.pop("samples", None), **r)


def read_epoch(raw: Any, position: int = 0) -> EpochRecord:
    r = dict(_record(raw))
    tasks = {str(k): read_task(v) for k, v in _record(r.pop("tasks", None)).items()}
    epoch, step = r.pop("epoch", position), r.pop("step", 0)
    return epoch_record(epoch if isinstance(epoch, int) else position, step if isinstance(step, int) else 0,
                        tasks, r.pop("checkpoint", None), r.pop("train_loss", None), **r)


def read_model(raw: Any) -> ModelRecord:
    """A model record from a file, with every key of `model_record` present."""
    r = dict(_record(raw))
    epochs = r.pop("epochs", None)
    epochs = [read_epoch(e, i) for i, e in enumerate(epochs) if isinstance(e, dict)] if isinstance(epochs, list) else []
    best = _section(r.pop("best", None))
    best = best if best and {"metric", "epoch", "score"} <= set(best) else None
    sections = {k: _section(r.pop(k, None)) for k in ("parameters", "train", "audit", "memory", "diagnostics")}
    return model_record(str(r.pop("name", "model")), str(r.pop("path", "") or ""), r.pop("adapter", None),
                        str(r.pop("method", None) or "none"), epochs=epochs, best=best,
                        early_stopped=bool(r.pop("early_stopped", False)), **sections, **r)


def new_results(suite_name: str, suite: dict, environment: dict) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "suite_name": suite_name,
        "suite": suite,
        "environment": environment,
        "status": "running",
        "models": [],
        "gates": None,
    }


def process_record() -> dict:
    """Who writes a run: pid, host and the process's start time (a later process may reuse the pid)."""
    import psutil

    me = psutil.Process()
    return {"pid": me.pid, "host": socket.gethostname(), "started": me.create_time()}


@dataclass(frozen=True)
class RunState:
    """What a run is doing now, as `report` and `gate` say it (docs/results.md, "status").

    status: the stored status, except that a run stored as "running" reads as "interrupted"
    once its process is gone (same host), and as "unknown" when it was written on another host
    (or by a harness that did not record its process): nobody here can tell whether it lives.
    """
    status: str
    detail: str


def run_state(results: dict) -> RunState:
    stored = str(results.get("status") or "unknown")
    failure = results.get("failure") or {}
    if stored != "running":
        return RunState(stored, str(failure.get("message") or "") if stored == "failed" else "")
    proc = results.get("process")
    if not isinstance(proc, dict) or not isinstance(proc.get("pid"), int):
        return RunState("unknown", "says running but records no process (older harness): it may be stale")
    pid, host = proc["pid"], str(proc.get("host"))
    here = socket.gethostname()
    if host != here:
        return RunState("unknown", f"says running as pid {pid} on host {host}; this is {here}: cannot tell "
                                   f"from here whether it still runs, it may be stale")
    if _process_alive(pid, proc.get("started")):
        return RunState("running", f"pid {pid} on {host} is still running")
    return RunState("interrupted", f"its process (pid {pid} on {host}) is gone: killed or crashed before it "
                                   f"finished; continue it with `harness train-and-grade SUITE --resume RUN_DIR`")


def _process_alive(pid: int, started: Optional[float]) -> bool:
    """The pid exists, is not a zombie, and is the process that started the run (not a reuse)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(p.create_time() - float(started)) < 2.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        # AccessDenied: another user's process reusing the pid; ours would be readable
        return False


def load_results(path: str | Path) -> tuple[dict, RunDir]:
    """Read results.json (or a run directory holding one); check the schema version."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.exists():
        raise ResultsError(f"{p}: results file not found")
    try:
        results = json.loads(read_text(p, "results file", ResultsError))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{p}:{e.lineno}: not valid JSON: {e.msg}") from None
    except RecursionError:
        raise ResultsError(f"{p}: nested too deeply: not a harness results file") from None
    version = results.get("schema_version") if isinstance(results, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{p}: no schema_version: not a harness results file")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{p}: results schema version {version} is newer than this harness reads "
            f"({SCHEMA_VERSION}): upgrade harness"
        )
    if version < 1:
        raise ResultsError(f"{p}: unknown results schema version {version}")
    if not isinstance(results.get("models", []), list) or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("epochs", []), list)
            for m in results.get("models", [])):
        raise ResultsError(f"{p}: field 'models' is not a list of {{name, epochs}} records: the file is damaged")
    for m in results.get("models", []):
        for e in m.get("epochs", []):
            if not (isinstance(e, dict) and isinstance(e.get("epoch"), int) and isinstance(e.get("tasks", {}), dict)
                    and all(isinstance(t, dict) for t in e.get("tasks", {}).values())):
                raise ResultsError(f"{p}: model {m['name']!r}: an epoch record is not {{epoch, tasks}}: "
                                   f"the file is damaged")
            _check_metric_records(p, m["name"], e)
    results["models"] = [read_model(m) for m in results.get("models", [])]   # every key there, typed
    return results, RunDir(p.parent)


def _check_metric_records(p: Path, model: str, epoch: dict) -> None:
    """Every metric record a mapping whose score is a number or null: a reader that met a
    string there would drop the row (the report) or compare text with numbers (the gate)."""
    for task, record in epoch.get("tasks", {}).items():
        metrics = record.get("metrics", {})
        if not isinstance(metrics, dict):
            raise ResultsError(f"{p}: model {model!r} epoch {epoch['epoch']} task {task!r}: field 'metrics' is "
                               f"not a mapping: the file is damaged")
        for name, m in metrics.items():
            score = m.get("score") if isinstance(m, dict) else None
            if not isinstance(m, dict) or not (score is None or isinstance(score, (int, float))
                                               and not isinstance(score, bool)):
                shown = json.dumps(score if isinstance(m, dict) else m)[:40]
                raise ResultsError(f"{p}: model {model!r} epoch {epoch['epoch']} task {task!r}: metric {name!r}: "
                                   f"score {shown} is not a number: the file is damaged")


def find_model(results: dict, name: Optional[str] = None) -> dict:
    models = results["models"]
    if name is None:
        return models[0]
    for m in models:
        if m["name"] == name:
            return m
    raise ResultsError(f"no model {name!r} in results (have: {', '.join(m['name'] for m in models)})")


def find_epoch(model: dict, which: Any) -> dict:
    """'best' | 'last' | an epoch number → that epoch's record."""
    epochs = model["epochs"]
    if not epochs:
        raise ResultsError(f"model {model['name']!r} has no graded epochs")
    if which == "last":
        return epochs[-1]
    if which == "best":
        best = (model.get("best") or {}).get("epoch")
        which = best if best is not None else epochs[-1]["epoch"]
    for e in epochs:
        if e["epoch"] == int(which):
            return e
    raise ResultsError(f"model {model['name']!r} has no epoch {which} (have {[e['epoch'] for e in epochs]})")


def load_sample_stats(run: RunDir, task_record: dict, metric: str) -> Optional[tuple[list[str], np.ndarray]]:
    """(item ids, per-sample statistics) of one metric for one graded task, or None if absent."""
    rel = task_record.get("samples")
    if not rel or not (run.root / rel).exists():
        return None
    return sample_stats(read_jsonl(run.root / rel), metric)


def sample_stats(rows: list[dict], metric: str) -> Optional[tuple[list[str], np.ndarray]]:
    """Sample rows → (item ids, statistics matrix) of one metric; 'loss' is [nll_sum, n_tokens]."""
    if not rows:
        return None
    if metric == "loss":
        if any(r.get("nll_sum") is None or r.get("n_tokens") is None for r in rows):
            return None
        return [str(r["id"]) for r in rows], np.array([[r["nll_sum"], r["n_tokens"]] for r in rows], dtype=float)
    if metric not in rows[0].get("stats", {}):
        return None
    return [str(r["id"]) for r in rows], np.array([r["stats"][metric] for r in rows], dtype=float)