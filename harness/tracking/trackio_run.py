"""trackio: the run is found by project and name. The Trainer's TrackioCallback opens the same
name with resume="allow" (and finishes it when training ends), so this adapter reopens it by name
whenever it has to log and no run of that name is current.

trackio has no summary fields: verdicts go into the run's config (which trackio stores with the
run's next log row, so they are also logged once, at the last step).
Local runs are stored in TRACKIO_DIR (default HF_HOME/trackio), one SQLite file per project.
"""
from __future__ import annotations

from pathlib import Path

from harness.tracking.base import StartContext, relative

STEP = "train/global_step"
QUIET = {"embed": False, "auto_log_cpu": False, "auto_log_gpu": False}


class Tracker:
    name = "trackio"

    def start(self, ctx: StartContext) -> dict:
        import trackio
        from trackio.utils import TRACKIO_DIR

        self.project, self.run_name, self.params = ctx.project, ctx.resume_id or ctx.run_name, ctx.params
        self.last_step = 0
        trackio.init(project=self.project, name=self.run_name, group=ctx.group,
                     config=None if ctx.resume_id else {**ctx.params, **{f"tag/{k}": v for k, v in ctx.tags.items()}},
                     resume="must" if ctx.resume_id else "allow", **QUIET)
        return {"run_id": self.run_name, "location": str(TRACKIO_DIR)}

    def trainer_reporting(self) -> tuple[list[str], list]:
        return ["trackio"], []

    def trainer_args(self) -> dict:
        return {"project": self.project, "run_name": self.run_name}

    def _current(self, config: dict | None = None):
        import trackio
        from trackio import context_vars

        run = context_vars.current_run.get()
        if run is None or run.name != self.run_name or config is not None:
            trackio.init(project=self.project, name=self.run_name, resume="must", config=config, **QUIET)
        return trackio

    def log_scores(self, step: int, epoch: int, scores: dict[str, float]) -> None:
        self._current().log({**scores, "epoch": epoch, STEP: step})
        self.last_step = max(self.last_step, step)

    def summary(self, fields: dict) -> None:
        from trackio.sqlite_storage import SQLiteStorage

        stored = SQLiteStorage.get_run_config(self.project, self.run_name) or {}
        kept = {k: v for k, v in stored.items() if not k.startswith("_")}   # the Trainer's config too
        self._current(config={**kept, **self.params, **fields}).log({**fields, STEP: self.last_step})

    def artifacts(self, root: Path, paths: list[Path]) -> None:
        import trackio

        artifact = trackio.Artifact(f"harness-run-{self.run_name}", type="harness-run")
        for p in paths:
            artifact.add_file(str(p), name=relative(root, p))
        self._current().log_artifact(artifact)

    def finish(self, ok: bool) -> None:
        from trackio import context_vars

        run = context_vars.current_run.get()
        if run is not None:
            import trackio

            trackio.finish()
