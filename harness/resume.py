"""`train-and-grade SUITE --resume RUN_DIR`: continue an interrupted run after its last saved epoch.

At every epoch end a training run grades the model, then the Trainer saves its own checkpoint
(weights, optimizer, scheduler, RNG state, trainer state) under `.trainer/MODEL/checkpoint-STEP`,
and results.json records it as the model's `resume_state`; the previous one is then deleted,
so at most one (two for an instant) is on disk per model, and none once the model has finished.

Resuming keeps every graded epoch up to the recorded state and continues training from it;
an epoch graded after it (the run was killed between grading and the Trainer's save) is
dropped and graded again. Everything that can refuse is checked here, before any model work:
each refusal is one `ResumeError` line (exit code 2).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from harness.errors import UserError
from harness.results import ResultsError, RunDir, load_results, run_state, safe_name
from harness.suite import Suite, dump_suite

TRAINER_DIR = ".trainer"


class ResumeError(UserError):
    """A run directory that cannot be resumed (exit code 2)."""


@dataclass(frozen=True)
class ResumePoint:
    """Where one model's training continues: after `epoch` (global step `step`), from `path`."""
    epoch: int
    step: int
    path: Path


def trainer_dir(run: RunDir, model_name: str) -> Path:
    return run.root / TRAINER_DIR / safe_name(model_name)


def open_for_resume(suite: Suite, run_dir: str, force: bool = False) -> tuple[RunDir, dict]:
    """The run's directory and results, once everything says it can be resumed."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ResumeError(f"--resume {run_dir}: not a directory: give the run directory of an interrupted "
                          f"train-and-grade run")
    try:
        results, run = load_results(root)
    except ResultsError as e:
        raise ResumeError(f"--resume {run_dir}: not a run directory ({e})") from None
    stored = run.root / "suite.yaml"
    if not stored.is_file():
        raise ResumeError(f"--resume {run_dir}: no suite.yaml: not a run directory written by harness")
    diff = suite_difference(stored.read_text(encoding="utf-8"), suite)
    if diff:
        raise ResumeError(f"--resume {run_dir}: the run belongs to a different suite ({diff}); resume with the "
                          f"suite it was started with, or start a new run")
    state = run_state(results)
    if state.status == "complete":
        raise ResumeError(f"--resume {run_dir}: the run is already complete: nothing to resume")
    if state.status == "running":
        raise ResumeError(f"--resume {run_dir}: the run is still running ({state.detail}): stop it first")
    if state.status == "unknown" and not force:
        raise ResumeError(f"--resume {run_dir}: {state.detail}; resume it there, or pass --force if that "
                          f"process is gone")
    for record in results.get("models", []):
        if not model_finished(record):
            resume_point(record, run)   # raises when its state is missing
    return run, results


def model_finished(record: dict) -> bool:
    """A model whose training, memory record and diagnostics are all written."""
    return record.get("diagnostics") is not None


def resume_point(record: dict, run: RunDir) -> Optional[ResumePoint]:
    """The saved Trainer state a model continues from; None: from the start (only epoch 0 kept)."""
    if "resume_state" not in record:
        raise ResumeError(f"{run.root}: model {record.get('name')!r} has no resumable state (written by a "
                          f"harness without --resume support); start a new run")
    state = record["resume_state"]
    if state is None:
        return None
    path = run.root / state["path"]
    if not (path / "trainer_state.json").is_file():
        raise ResumeError(f"{run.root}: model {record['name']!r}: no resumable state: the Trainer checkpoint "
                          f"{state['path']} is missing or incomplete; start a new run")
    return ResumePoint(int(state["epoch"]), int(state["step"]), path)


def keep_epochs_up_to(record: dict, point: Optional[ResumePoint]) -> list[int]:
    """Drop the epochs graded after the resume point (they are graded again); returns them."""
    last = point.epoch if point else 0
    dropped = [e["epoch"] for e in record["epochs"] if e["epoch"] > last]
    record["epochs"] = [e for e in record["epochs"] if e["epoch"] <= last]
    if record.get("train"):
        record["train"]["log"] = [r for r in record["train"]["log"] if point and r["step"] <= point.step]
    return dropped


def remove_other_states(run: RunDir, model_name: str, keep: Optional[Path]) -> None:
    """Delete the model's Trainer checkpoints other than `keep` (older, or half-written ones);
    keep=None: the model has finished, its whole Trainer folder goes."""
    d = trainer_dir(run, model_name)
    if keep is None:
        shutil.rmtree(d, ignore_errors=True)
        if d.parent.is_dir() and not any(d.parent.iterdir()):
            d.parent.rmdir()
        return
    if not d.is_dir():
        return
    for child in d.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-") and (keep is None or child != keep):
            shutil.rmtree(child, ignore_errors=True)


def suite_difference(stored_text: str, suite: Suite) -> Optional[str]:
    """None when the suite equals the run's stored suite.yaml, else the first field that differs."""
    try:
        stored = yaml.safe_load(stored_text)
    except yaml.YAMLError:
        return "its suite.yaml is not valid YAML"
    given = yaml.safe_load(dump_suite(suite))
    for either in (stored, given):   # where a run is tracked does not change what it trains or grades
        if isinstance(either, dict):
            either.pop("tracking", None)
    return _first_difference(stored, given, "")


def _first_difference(a: Any, b: Any, where: str) -> Optional[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            sub = f"{where}.{key}" if where else str(key)
            if key not in a and b[key] is None:   # a field newer than the run, left unset: the same suite
                continue
            if key not in a or key not in b:
                return f"{sub}: only in the {'run' if key in a else 'given suite'}"
            found = _first_difference(a[key], b[key], sub)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where or 'suite'}: {len(a)} entries in the run, {len(b)} in the given suite"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    if a != b:
        return f"{where or 'suite'}: {_short(a)} in the run, {_short(b)} in the given suite"
    return None


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
