"""The one interface every tracker adapter implements (harness.tracking.TRACKERS lists them).

A tracker adapter is a small object with one job: hold one tracker run and put the harness's
numbers in it. `harness.tracking.session` calls it, catches what it raises and turns that into a
warning, so an adapter raises freely.

    start(ctx)               open the run (or reopen ctx.resume_id); return {"run_id", "location"}
    trainer_reporting()      what the Trainer needs to log into that same run: (report_to names, callbacks)
    log_scores(step, epoch, scores)   one graded epoch's scores at the Trainer's global step
    summary(fields)          verdicts, best and recommended epoch (summary fields or tags)
    artifacts(root, paths)   the run's files at the end (report.html, results.json, samples)
    finish(ok)               close the run (failed when not ok)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class StartContext:
    run_name: str                  # the tracker run's name
    root: Path                     # the harness run directory
    project: str
    tags: dict[str, str] = field(default_factory=dict)
    group: Optional[str] = None
    params: dict[str, str] = field(default_factory=dict)   # harness.tracking.keys.params
    resume_id: Optional[str] = None                        # log into this existing run (--track-run)


def relative(root: Path, path: Path) -> str:
    """A run file's name inside the tracker: its path under the run directory."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
