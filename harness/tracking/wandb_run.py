"""Weights & Biases: `wandb.init` before the Trainer, so its WandbCallback finds `wandb.run` and
logs into it. Our scores use the callback's x axis (`train/global_step`, declared here too,
since epoch 0 is logged before the Trainer exists).

Offline runs (WANDB_MODE=offline) are written under WANDB_DIR, else the run directory.
"""
from __future__ import annotations

import os
from pathlib import Path

from harness.tracking.base import StartContext, relative

STEP = "train/global_step"


class Tracker:
    name = "wandb"

    def start(self, ctx: StartContext) -> dict:
        import wandb

        kwargs = {"id": ctx.resume_id, "resume": "allow"} if ctx.resume_id else {
            "name": ctx.run_name, "group": ctx.group, "config": ctx.params,
            "tags": [f"{k}:{v}" if v else k for k, v in ctx.tags.items()] or None}
        self.run = wandb.init(project=ctx.project, dir=os.environ.get("WANDB_DIR") or str(ctx.root), **kwargs)
        self.run.define_metric(STEP)
        self.run.define_metric("*", step_metric=STEP, step_sync=True)
        return {"run_id": self.run.id, "location": str(Path(self.run.dir).parent) if self.run.offline else self.run.url}

    def trainer_reporting(self) -> tuple[list[str], list]:
        return ["wandb"], []

    def log_scores(self, step: int, epoch: int, scores: dict[str, float]) -> None:
        self.run.log({**scores, "epoch": epoch, STEP: step})

    def summary(self, fields: dict) -> None:
        self.run.summary.update(fields)

    def artifacts(self, root: Path, paths: list[Path]) -> None:
        import wandb

        artifact = wandb.Artifact(f"harness-run-{self.run.id}", type="harness-run")
        for p in paths:
            artifact.add_file(str(p), name=relative(root, p))
        self.run.log_artifact(artifact)

    def finish(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)
