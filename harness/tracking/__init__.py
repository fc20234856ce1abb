"""Experiment trackers: the harness's scores where the user already looks (docs/tracking.md).

One catalogue, everything derived: `TRACKERS` names each backend's module, the `report_to`
name the Trainer knows it by, and the extra that installs it. Nothing here imports a tracker
package; `harness.tracking.session` runs the backends, `harness.tracking.keys` names what they log.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class TrackerEntry:
    module: str      # harness.tracking.<module>: its adapter class `Tracker`
    package: str     # the import that must succeed
    extra: str       # pip install 'harness[EXTRA]'


TRACKERS: dict[str, TrackerEntry] = {
    "tensorboard": TrackerEntry("tensorboard_run", "tensorboard", "tensorboard"),
    "mlflow": TrackerEntry("mlflow_run", "mlflow", "mlflow"),
    "wandb": TrackerEntry("wandb_run", "wandb", "wandb"),
    "trackio": TrackerEntry("trackio_run", "trackio", "trackio"),
}


def missing_package(name: str) -> str | None:
    """None when backend `name` can be imported, else the one line that says how to install it."""
    entry = TRACKERS[name]
    try:
        absent = sys.modules.get(entry.package, True) is None or importlib.util.find_spec(entry.package) is None
    except (ImportError, ValueError):
        absent = True
    if absent:
        return f"tracking backend {name} needs the {entry.package} package: pip install 'harness[{entry.extra}]'"
    return None


def tracker_class(name: str) -> type:
    """The adapter class of backend `name` (its module imports the tracker package lazily)."""
    return importlib.import_module(f"harness.tracking.{TRACKERS[name].module}").Tracker
