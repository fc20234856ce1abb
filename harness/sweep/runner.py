"""One sweep worker: take the study's next trial, run it as an ordinary train-and-grade run, repeat.

A trial is one sampled config, run once per seed of `sweep.seeds`; each (trial, seed) is a run
directory SWEEP_DIR/trials/trial-NNNN/seed-S written by harness/pipeline.py like any other, with
SWEEP_DIR/trials/trial-NNNN/trial.json beside them (study, trial, parameters, each seed's state);
each run's suite.yaml holds the trial's values and its train.seed. Every graded epoch's
objective is reported to the trial; a pruner that says stop ends the run after that epoch (the
run completes, its record says `stopped`) and the trial is PRUNED.

Workers share the study through its storage and stop when the budget of trials is spent and no
trial runs anywhere (a worker that is killed has its trial failed by heartbeat and queued again:
a live worker takes it and resumes its run from the last epoch checkpoint, `--resume`).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Callable, Optional

from harness.results import ResultsError, load_results, write_json
from harness.sweep.space import STEPS_PER_SEED, SweepPlan, trial_suite
from harness.sweep.study import constraint_of

Log = Callable[[str], None]
TRIAL_FILE = "trial.json"
SWEEP_FILE = "sweep.json"


class _Surplus(Exception):
    """Two workers both started the study's last trial: the later one stands down."""


def trial_dir(sweep_dir: Path, number: int) -> Path:
    return sweep_dir / "trials" / f"trial-{number:04d}"


@dataclass
class WorkerOutcome:
    """What one worker did, and where its time went (benchmarks/sweep_overhead.py reads it)."""

    trials: list[int] = field(default_factory=list)   # trial numbers this worker finished
    wall_s: float = 0.0
    runs_s: float = 0.0                                # inside train-and-grade (training, grading, writing)

    @property
    def bookkeeping_s(self) -> float:
        return self.wall_s - self.runs_s


class EpochReporter:
    """The epoch callback of one (trial, seed) run: the graded epoch's objective to the trial, and
    the pruner's answer back (a reason to stop, or None)."""

    def __init__(self, trial, plan: SweepPlan, seed_index: int, prune: bool):
        self.trial, self.plan, self.offset, self.prune = trial, plan, seed_index * STEPS_PER_SEED, prune
        self.pruned_at: Optional[int] = None
        self.seconds = 0.0   # spent reporting and asking the pruner: the sweep's bookkeeping, not the run's

    def __call__(self, record: dict, er: dict) -> Optional[str]:
        t0 = time.perf_counter()
        try:
            value = objective_value(record, self.plan)
            if value is None:
                return None
            self.trial.report(value, self.offset + er["epoch"])
            if self.prune and self.trial.should_prune():
                self.pruned_at = er["epoch"]
                return f"pruned by the sweep's {self.plan.spec.pruner} pruner ({self.plan.key} {value:.4g} " \
                       f"trails the other trials at this epoch)"
            return None
        finally:
            self.seconds += time.perf_counter() - t0


def objective_value(record: dict, plan: SweepPlan) -> Optional[float]:
    """The objective of one model record: its best (or last) trained epoch's score; epoch 0 never counts."""
    scores = []
    for e in record["epochs"]:
        if e["epoch"] < 1 or plan.task not in e["tasks"]:
            continue
        rec = e["tasks"][plan.task]
        v = rec.get("loss") if plan.metric == "loss" else (rec["metrics"].get(plan.metric) or {}).get("score")
        if v is not None:
            scores.append(float(v))
    if not scores:
        return None
    if plan.spec.objective.at == "last":
        return scores[-1]
    return max(scores) if plan.higher else min(scores)


def suggest(trial, path: str, space) -> Any:
    if isinstance(space, list):
        return trial.suggest_categorical(path, space)
    low, high = space.bounds
    if space.kind == "int":
        return trial.suggest_int(path, low, high)
    return trial.suggest_float(path, low, high, log=space.kind == "log_uniform")


class Worker:
    """The recipe of one worker: `run()` takes trials until the study has none left for anyone."""

    def __init__(self, plan: SweepPlan, opened, sweep_dir: Path, study_name: str, log: Log, quiet_runs: bool,
                 poll_s: float = 5.0):
        self.plan, self.study, self.budget = plan, opened.study, opened.budget
        self.sweep_dir, self.study_name, self.log = sweep_dir, study_name, log
        self.run_log: Log = (lambda msg: None) if quiet_runs else log
        self.poll_s = poll_s
        self.outcome = WorkerOutcome()

    # ------------------------------------------------------------------ the loop
    def run(self) -> WorkerOutcome:
        import optuna

        t0 = time.perf_counter()
        try:
            while True:
                optuna.storages.fail_stale_trials(self.study)   # a lost worker's trial: failed, queued again
                trials = self.study.get_trials(deepcopy=False)
                counted = _counted(trials)
                states = [t.state for t in counted]
                if optuna.trial.TrialState.WAITING in states or len(counted) < self.budget:
                    try:
                        # a trial that fails is recorded FAIL (with its reason) and the worker goes on
                        self.study.optimize(self.objective, n_trials=1, callbacks=[self._finished],
                                            catch=(Exception,))
                    except _Surplus:
                        continue
                elif optuna.trial.TrialState.RUNNING in states:
                    time.sleep(self.poll_s)   # another worker's trial: wait, in case it dies and is queued again
                else:
                    break
        finally:
            self.outcome.wall_s = time.perf_counter() - t0
        return self.outcome

    # ------------------------------------------------------------------ one trial
    def objective(self, trial) -> float:
        import optuna

        spec = self.plan.spec
        params = {path: suggest(trial, path, space) for path, space in spec.params.items()}
        trials = self.study.get_trials(deepcopy=False)
        system = next(t for t in trials if t.number == trial.number).system_attrs
        original = system.get("failed_trial")   # a retry of a trial whose worker was lost
        if original is None and "fixed_params" not in system:
            before = [t for t in _counted(trials) if t.number < trial.number]
            if len(before) >= self.budget:
                trial.set_user_attr("surplus", True)
                raise _Surplus("another worker started the study's last trial at the same moment: this one "
                               "stands down")
        root = trial_dir(self.sweep_dir, original if original is not None else trial.number)
        trial.set_user_attr("dir", str(root.relative_to(self.sweep_dir)))
        values, verdicts = [], []
        for k, seed in enumerate(spec.seeds):
            reporter = EpochReporter(trial, self.plan, k, prune=spec.pruner != "none")
            record = self._run_seed(trial, original, params, seed, root / f"seed-{seed}", reporter)
            if reporter.pruned_at is not None:
                trial.set_user_attr("pruned_at", {"seed": seed, "epoch": reporter.pruned_at})
                raise optuna.TrialPruned(f"pruned after epoch {reporter.pruned_at} of seed {seed}")
            value = objective_value(record, self.plan)
            if value is None:
                raise RuntimeError(f"trial {trial.number} seed {seed}: no trained epoch has a {self.plan.key} score")
            values.append(value)
            verdicts.append((((record.get("diagnostics") or {}).get("forgetting") or {}).get("verdict") or {})
                            .get("status"))
        # one write: each user attribute is a transaction of the shared storage
        trial.set_user_attr("outcome", {"seed_values": values, "forgetting": verdicts,
                                        "constraint": [1.0 if spec.constraints.forgetting and "fail" in verdicts
                                                       else 0.0]})
        return fmean(values)

    def _run_seed(self, trial, original: Optional[int], params: dict, seed: int, run_dir: Path,
                  reporter: EpochReporter) -> dict:
        """One (trial, seed) run: continued when an earlier attempt left it interrupted, reused when it finished."""
        t0 = time.perf_counter()   # the run's own time: the first trial imports torch and transformers here
        import harness.pipeline  # noqa: F401

        self.outcome.runs_s += time.perf_counter() - t0
        suite = trial_suite(self.plan, params, seed, self.study_name)
        info_path = run_dir.parent / TRIAL_FILE
        info = _read_json(info_path) or {"study": self.study_name, "params": params, "objective": self.plan.key,
                                         "seeds": {}}
        info.update(trial=trial.number, retry_of=original)
        resume = _previous_attempt(run_dir)
        if resume == "complete":
            return _record_of(run_dir)
        info["seeds"][str(seed)] = {"run": run_dir.name, "state": "running"}
        write_json(info_path, info)
        t0 = time.perf_counter()
        try:
            results = self._train(suite, run_dir, resume, reporter, trial.number, seed)
        except Exception as e:   # the trial fails (Optuna records why); the worker goes on with the next
            first = str(e).splitlines()[0][:300] if str(e) else ""
            info["seeds"][str(seed)] = {"run": run_dir.name, "state": "failed", "error": f"{type(e).__name__}: {first}"}
            write_json(info_path, info)
            raise
        finally:
            self.outcome.runs_s += time.perf_counter() - t0 - reporter.seconds
        record = results["models"][0]
        info["seeds"][str(seed)] = {"run": run_dir.name, "state": "pruned" if reporter.pruned_at is not None
                                    else "complete", "value": objective_value(record, self.plan),
                                    "pruned_at_epoch": reporter.pruned_at}
        write_json(info_path, info)
        return record

    def _train(self, suite, run_dir: Path, resume: Optional[str], reporter: EpochReporter, number: int,
               seed: int) -> dict:
        from harness.resume import ResumeError

        try:
            return self._tracked(suite, run_dir=None if resume else str(run_dir),
                                 resume=str(run_dir) if resume else None, force=bool(resume),
                                 epoch_callbacks=(reporter,))
        except ResumeError as e:
            if "still running" in str(e):   # its worker lives on (a missed heartbeat): never write over it
                raise
            self.log(f"trial {number} seed {seed}: starting again ({e})")   # nothing to continue from
        shutil.rmtree(run_dir)
        return self._tracked(suite, run_dir=str(run_dir), epoch_callbacks=(reporter,))

    def _tracked(self, suite, resume: Optional[str] = None, **kwargs) -> dict:
        """One trial run, with its own tracker run when the suite tracks (grouped by the study:
        space.py sets tracking.group); a tracker's failure is a warning line, as in train-and-grade."""
        from harness.pipeline import train_and_grade
        from harness.tracking.session import session_for

        tracking = session_for(suite, None, None, lambda msg: self.log(f"warning: {msg}"), resume=resume) \
            if suite.tracking is not None else None
        try:
            return train_and_grade(suite, log=self.run_log, resume=resume, tracking=tracking, **kwargs)[0]
        finally:
            if tracking is not None:
                tracking.close()

    # ------------------------------------------------------------------ progress
    def _finished(self, study, frozen) -> None:
        """One line per finished trial: its objective, the best feasible one so far, pruned or not."""
        if frozen.user_attrs.get("surplus"):
            return
        self.outcome.trials.append(frozen.number)
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in frozen.params.items())
        state = frozen.state.name.lower()
        value = frozen.value if frozen.value is not None else \
            (frozen.intermediate_values[max(frozen.intermediate_values)] if frozen.intermediate_values else None)
        best = best_feasible(study.get_trials(deepcopy=False), self.plan.higher)
        text = f"trial {frozen.number} {state}"
        if state == "pruned":
            at = frozen.user_attrs.get("pruned_at") or {}
            text += f" after epoch {at.get('epoch')}"
        if value is not None:
            text += f": {self.plan.key} {value:.4g}"
        if state == "fail":
            text += f": {frozen.system_attrs.get('fail_reason', 'failed')}"
        if constraint_of(frozen)[0] > 0:
            text += " (forgets a task: infeasible)"
        if best is not None:
            text += f"; best so far {best.value:.4g} (trial {best.number})"
        self.log(f"{text} [{params}]")


def best_feasible(trials, higher: bool):
    """The best complete trial whose constraint holds (no forgetting when the sweep asks so), or None."""
    import optuna

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
            and constraint_of(t)[0] <= 0]
    if not done:
        return None
    return (max if higher else min)(done, key=lambda t: (t.value, -t.number) if higher else (t.value, t.number))


def _counted(trials) -> list:
    """The trials that count toward the budget: not a surplus start, not an attempt a retry replaced."""
    replaced = {n for t in trials for n in (t.system_attrs.get("retry_history") or [])}
    return [t for t in trials if t.number not in replaced and not t.user_attrs.get("surplus")]


def _previous_attempt(run_dir: Path) -> Optional[str]:
    """None: nothing to continue (a fresh run); 'complete': reuse it; 'resume': continue it."""
    if not (run_dir / "results.json").is_file():
        if run_dir.exists():
            shutil.rmtree(run_dir)   # killed before results.json was written: nothing to keep
        return None
    try:
        results, _ = load_results(run_dir)
    except ResultsError:
        shutil.rmtree(run_dir)
        return None
    return "complete" if results.get("status") == "complete" else "resume"


def _read_json(path: Path) -> Optional[dict]:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _record_of(run_dir: Path) -> dict:
    return load_results(run_dir)[0]["models"][0]


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)

