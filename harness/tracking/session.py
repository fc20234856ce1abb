"""One tracker run per harness run, in every backend the suite (or `--track`) names.

    session = open_session(suite.tracking, track_run, warn)    # None when tracking is off
    session.start(run, results, save, several_models)          # before the first Trainer exists
    ... runners.trl_sft.train(..., reporting=session.trainer_reporting())   # the Trainer logs into it
    ... session.log_epoch(model, epoch_record)                 # after every graded epoch
    session.close()                                            # summary, artifacts, finish: after report.html

A backend that fails (cannot be reached, refuses a call) is a warning line and is dropped: the
run goes on, and results.json's `tracking` list records it ({backend, status: failed, error}).
Tracking off writes no `tracking` key at all.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional

from harness.errors import SuiteError
from harness.results import RunDir, write_json
from harness.tracking import keys, missing_package, tracker_class
from harness.tracking.base import StartContext
from harness.tracking.spec import TrackingSpec

Warn = Callable[[str], None]


def open_session(spec: Optional[TrackingSpec], track_run: Optional[str] = None,
                 warn: Warn = print) -> Optional["TrackingSession"]:
    """The session for the suite's tracking (None when off). A backend whose package is missing,
    or `--track-run` without a backend, is a SuiteError (exit 2) before anything runs."""
    if spec is None or not spec.backends:
        if track_run:
            raise SuiteError(f"--track-run {track_run}: name the tracker too (--track mlflow, or tracking.backends "
                             f"in the suite)")
        return None
    for name in spec.backends:
        problem = missing_package(name)
        if problem:
            raise SuiteError(problem)
    return TrackingSession(spec, resume_ids(track_run, spec.backends) if track_run else {}, warn)


def resume_ids(track_run: str, backends: list[str], only_tracked: bool = False) -> dict[str, str]:
    """--track-run: a run directory (its results.json names each backend's run) or one run id for all.
    `only_tracked`: the backends that run had, the others start new runs (train-and-grade --resume)."""
    results_path = Path(track_run) / "results.json"
    if not results_path.is_file():
        return {b: track_run for b in backends}
    try:
        entries = json.loads(results_path.read_text(encoding="utf-8")).get("tracking") or []
    except (OSError, ValueError, AttributeError):
        raise SuiteError(f"--track-run {track_run}: its results.json cannot be read") from None
    ids = {e.get("backend"): e.get("run_id") for e in entries if isinstance(e, dict) and e.get("run_id")}
    missing = [b for b in backends if b not in ids]
    if only_tracked:
        return {b: ids[b] for b in backends if b in ids}
    if missing:
        raise SuiteError(f"--track-run {track_run}: that run was not tracked in {', '.join(missing)}: give the "
                         f"tracker's run id instead, or track only {', '.join(ids) or 'nothing'}")
    return {b: ids[b] for b in backends}


def checkpoint_step(path: str) -> Optional[int]:
    """The global step a run's checkpoint (RUN/checkpoints/MODEL/epoch-K) was saved at, from RUN/results.json."""
    p = Path(path)
    if not (p.name.startswith("epoch-") and p.parent.parent.name == "checkpoints"):
        return None
    try:
        results = json.loads((p.parent.parent.parent / "results.json").read_text(encoding="utf-8"))
        record = next(m for m in results["models"] if m["name"] == p.parent.name)
        return next(e["step"] for e in record["epochs"] if e["epoch"] == int(p.name.removeprefix("epoch-")))
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None


class TrackingSession:
    def __init__(self, spec: TrackingSpec, resume: dict[str, str], warn: Warn):
        self.spec, self.resume, self.warn = spec, resume, warn
        self.live: list[tuple[object, dict]] = []   # (adapter, its entry in results.json's `tracking`)
        self.entries: list[dict] = []               # every backend's entry, live or failed
        self.run: Optional[RunDir] = None
        self.results: dict = {}
        self.save: Callable[[], None] = lambda: None
        self.several = False
        self.prefix = keys.EVAL

    # ------------------------------------------------------------------ start
    def start(self, run: RunDir, results: dict, save: Callable[[], None], several_models: bool = False,
              grading_only: bool = False) -> None:
        self.run, self.results, self.save, self.several = run, results, save, several_models
        self.prefix = keys.GRADE if grading_only and self.resume else keys.EVAL
        ctx_args = dict(run_name=self.spec.run_name or run.root.name, root=run.root, project=self.spec.project,
                        tags=dict(self.spec.tags), group=self.spec.group, params=keys.params(results["suite"]))
        if "mlflow" in self.spec.backends and os.environ.get("MLFLOW_RUN_ID"):
            # the Trainer's callback would start that run a second time, beside ours: ours is it
            self.resume.setdefault("mlflow", os.environ.pop("MLFLOW_RUN_ID"))
        results["tracking"] = self.entries = []
        for name in self.spec.backends:
            entry = {"backend": name, "status": "running", "run_id": None, "location": None}
            self.entries.append(entry)
            tracker = tracker_class(name)()
            try:
                entry.update(tracker.start(StartContext(**ctx_args, resume_id=self.resume.get(name))))
            except Exception as e:   # any failure of a tracker: a warning, never the run's end
                self._failed(entry, "start", e)
                continue
            self.live.append((tracker, entry))
        save()

    def trainer_reporting(self) -> dict:
        """What runners.trl_sft.train needs so the Trainer logs into these same runs: report_to
        names, callbacks and SFTConfig arguments."""
        out: dict = {"report_to": [], "callbacks": [], "args": {"run_name": self.spec.run_name or self.run.root.name}}
        for tracker, entry in list(self.live):
            try:
                names, callbacks = tracker.trainer_reporting()
                out["args"].update(getattr(tracker, "trainer_args", dict)())
            except Exception as e:
                self._failed(entry, "reporting", e)
                continue
            out["report_to"] += names
            out["callbacks"] += callbacks
        return out

    # ------------------------------------------------------------------ during the run
    def log_epoch(self, model: str, er: dict, step: Optional[int] = None) -> None:
        """One graded epoch (`er`, results.json's record) at its global step (`step` overrides it)."""
        scores = keys.epoch_scores(er, model if self.several else None, self.prefix)
        at = er.get("step", 0) if step is None else step
        self._each("log_scores", at, er["epoch"], scores)

    # ------------------------------------------------------------------ end
    def close(self) -> None:
        """Summary fields, the run's files and the end of every tracker run; results.json records each
        tracker's status. Called last, after report.html and the gates are written."""
        if self.run is None:
            return
        path = self.run.results_path
        try:
            results = json.loads(path.read_text(encoding="utf-8"))   # as the gate left it
        except (OSError, ValueError):
            results = self.results
        self.results, self.save = results, (lambda: write_json(path, results))
        results["tracking"] = self.entries
        self._each("summary", keys.summary_fields(results))
        for _, entry in self.live:
            entry["status"] = "ok"
        self.save()   # the copy sent as an artifact says where each run went
        self._each("artifacts", self.run.root, keys.artifact_paths(self.run.root))
        self._each("finish", results.get("status") == "complete")
        self.live = []
        self.save()
        self.run = None

    def _each(self, method: str, *args) -> None:
        for tracker, entry in list(self.live):
            try:
                getattr(tracker, method)(*args)
            except Exception as e:
                self._failed(entry, method, e)
                self.live = [(t, x) for t, x in self.live if x is not entry]
                self.save()

    def _failed(self, entry: dict, during: str, e: Exception) -> None:
        message = " ".join(str(e).split())[:500] or type(e).__name__
        entry.update(status="failed", error=f"{during}: {type(e).__name__}: {message}")
        self.warn(f"warning: tracking: {entry['backend']} failed ({entry['error']}); the run goes on without it "
                  f"(results.json records it)")


def session_for(suite, track: Optional[list[str]], track_run: Optional[str], warn: Warn,
                resume: Optional[str] = None) -> Optional[TrackingSession]:
    """The command line's session: `--track` adds backends to the suite's `tracking` (recorded in the
    run's suite), `--track-run` names the run to log into; `resume` (train-and-grade --resume) logs
    into the interrupted run's own tracker runs, where it had them."""
    if track:
        spec = suite.tracking or TrackingSpec()
        suite.tracking = spec.model_copy(update={"backends": list(dict.fromkeys([*spec.backends, *track]))})
    session = open_session(suite.tracking, track_run, warn)
    if session is not None and resume and not track_run:
        session.resume = resume_ids(resume, suite.tracking.backends, only_tracked=True)
    return session
