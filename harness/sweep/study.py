"""The study every worker shares: its storage, sampler and pruner, created once and loaded after.

The storage is Optuna's RDBStorage: by default a SQLite file in the sweep directory (one
machine, nothing to set up); `--storage postgresql://...` (any SQLAlchemy URL Optuna takes) for
workers on several machines. Workers beat a heartbeat into it; a trial whose worker stops
beating for `grace` seconds is failed by the next worker that looks, and Optuna's retry callback
queues it again (harness/sweep/runner.py resumes its run from its last epoch checkpoint).
Optuna is imported inside the functions: `harness --help` does not pay for it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.errors import UserError
from harness.sweep.space import SweepPlan, grid_points

HEARTBEAT_S = 60          # Optuna's suggestion; a lost worker's trial is retried after GRACE_FACTOR beats
GRACE_FACTOR = 5
MAX_RETRIES = 3           # a trial that kills its worker every time is given up after this many retries
CREATE_ATTEMPTS = 4       # opening a new database: tries while another worker creates the tables
READY_WAIT_S = 120        # how long a worker waits for the one that created the study to finish setting it up


class StorageError(UserError):
    """--storage names a database that cannot be reached or used (exit code 2)."""


def quiet_optuna() -> None:
    """Optuna's notices of experimental features (the heartbeat) and its per-trial INFO lines are
    not the user's business: the worker prints its own line per trial."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(url: str, heartbeat: int = HEARTBEAT_S):
    """RDBStorage at `url` with the heartbeat and the retry of trials whose worker was lost."""
    import optuna

    quiet_optuna()
    retry_kw = ({"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRIES, inherit_intermediate_values=True)}
                if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback") else   # optuna >= 4.9
                {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(
                    max_retry=MAX_RETRIES, inherit_intermediate_values=True)})
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(_with_driver(url), heartbeat_interval=heartbeat,
                                              grace_period=heartbeat * GRACE_FACTOR,
                                              engine_kwargs=_engine_kwargs(url), **retry_kw)
        except Exception as e:   # sqlalchemy's OperationalError, ArgumentError, a missing driver...
            # workers started together on an empty database race to create Optuna's tables: the
            # loser finds them made by the winner when it tries again
            if attempt + 1 < CREATE_ATTEMPTS and ("already exists" in str(e) or type(e).__name__ == "IntegrityError"):
                time.sleep(1.0 + attempt)
                continue
            reason = " ".join(str(e).split())[:300]
            raise StorageError(f"--storage {redact(url)}: cannot open the study storage ({type(e).__name__}: "
                               f"{reason}); check the URL, that the server runs and accepts this user, and that its "
                               f"driver is installed (PostgreSQL: pip install 'harness[sweep-postgres]')") from None
    raise AssertionError("unreachable")


def _with_driver(url: str) -> str:
    """A bare postgresql:// URL with the driver that is installed: SQLAlchemy 2.1 defaults to
    psycopg 3, the `sweep-postgres` extra installs psycopg2."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _engine_kwargs(url: str) -> dict:
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    if url.startswith("sqlite"):   # several workers on one file: wait for the lock rather than fail
        return {"connect_args": {"timeout": 60}}
    return {}


def redact(url: str) -> str:
    """The URL without its password, for messages and sweep.json."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


@dataclass
class OpenedStudy:
    study: object         # optuna.Study
    created: bool         # this worker created it (and queued the grid)
    budget: int           # trials in the study, over every worker


def open_study(plan: SweepPlan, storage, name: str, trials: Optional[int]) -> OpenedStudy:
    """Create the study, or load it when another worker did; its sweep block must be this one."""
    import optuna

    spec = plan.spec
    fingerprint = spec.model_dump(mode="json", by_alias=True)
    budget = trials or spec.trials
    grid = grid_points(spec) if spec.sampler == "grid" else None
    if grid is not None:
        budget = min(budget, len(grid))
    kw = dict(study_name=name, storage=storage, sampler=_sampler(plan), pruner=_pruner(plan))
    try:
        study = optuna.create_study(direction=plan.direction, load_if_exists=False, **kw)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study, created = optuna.load_study(**kw), False
    if created:
        study.set_user_attr("sweep", fingerprint)
        study.set_user_attr("objective", plan.key)
        study.set_user_attr("budget", budget)
        for point in grid[:budget] if grid is not None else []:   # every combination queued once, by one worker
            study.enqueue_trial(point, skip_if_exists=True)
        study.set_user_attr("ready", True)
        return OpenedStudy(study, True, budget)
    deadline = time.monotonic() + READY_WAIT_S
    while not study.user_attrs.get("ready") and time.monotonic() < deadline:
        time.sleep(0.5)
    attrs = study.user_attrs
    if attrs.get("sweep") != fingerprint or study.direction.name.lower() != plan.direction:
        raise UserError(f"--study {name}: the study exists in this storage with another sweep block; give another "
                        f"--study name, or the suite it was started with")
    return OpenedStudy(study, False, int(attrs.get("budget", budget)))


def _sampler(plan: SweepPlan):
    import optuna

    spec = plan.spec
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=min(10, max(2, spec.trials // 3)),
                                          constraints_func=constraint_of if spec.constraints.forgetting else None)
    return optuna.samplers.RandomSampler(seed=spec.seed)   # grid: every point is queued, nothing is sampled


def constraint_of(trial) -> tuple[float, ...]:
    """Optuna's constraint of a finished trial (<= 0 feasible): 1 when a seed of it forgot a task
    (harness/sweep/runner.py writes it in the trial's `outcome` user attribute)."""
    return tuple((trial.user_attrs.get("outcome") or {}).get("constraint", (0.0,)))


def _pruner(plan: SweepPlan):
    import optuna

    spec = plan.spec
    if spec.pruner == "median":
        # a trial is compared only once two others reached its epoch; epoch 1 is never pruned alone
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


def default_storage(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"
