"""MLflow: the run started here is the active run, so the Trainer's MLflowCallback logs into it
(it starts a run of its own only when none is active) and does not end it.

The tracking store is MLflow's own setting (MLFLOW_TRACKING_URI; default ./mlruns); the
experiment is `tracking.project`.
"""
from __future__ import annotations

from pathlib import Path

from harness.tracking.base import StartContext, relative

MAX_TAG = 5000   # MLflow tag values are at most 8,000 characters


class Tracker:
    name = "mlflow"

    def start(self, ctx: StartContext) -> dict:
        import mlflow

        if ctx.resume_id:
            run = mlflow.start_run(run_id=ctx.resume_id)
        else:
            mlflow.set_experiment(ctx.project)
            tags = {**ctx.tags, "harness.run_dir": str(ctx.root)}
            if ctx.group:
                tags["group"] = ctx.group
            run = mlflow.start_run(run_name=ctx.run_name, tags=tags)
            items = list(ctx.params.items())
            for i in range(0, len(items), 100):   # at most 100 params a batch
                mlflow.log_params(dict(items[i:i + 100]))
        self.run_id = run.info.run_id
        return {"run_id": self.run_id, "location": mlflow.get_tracking_uri()}

    def trainer_reporting(self) -> tuple[list[str], list]:
        return ["mlflow"], []

    def log_scores(self, step: int, epoch: int, scores: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics({**scores, "epoch": epoch}, step=step, run_id=self.run_id)

    def summary(self, fields: dict) -> None:
        import mlflow

        mlflow.set_tags({k: str(v)[:MAX_TAG] for k, v in fields.items()})

    def artifacts(self, root: Path, paths: list[Path]) -> None:
        import mlflow

        for p in paths:
            parent = str(Path(relative(root, p)).parent)
            mlflow.log_artifact(str(p), artifact_path=None if parent == "." else parent, run_id=self.run_id)

    def finish(self, ok: bool) -> None:
        import mlflow

        mlflow.end_run(status="FINISHED" if ok else "FAILED")
