"""TensorBoard: one log directory per run (RUN/tensorboard), one event writer shared with the Trainer.

The Trainer's TensorBoardCallback is handed our writer, so its `train/*` scalars and our
`eval/*` scalars go to one event file in step order (two writers in one directory would make
TensorBoard purge the earlier steps as "out of order").
"""
from __future__ import annotations

from pathlib import Path

from harness.tracking.base import StartContext, relative


class Tracker:
    name = "tensorboard"

    def start(self, ctx: StartContext) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(ctx.resume_id) if ctx.resume_id else ctx.root / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.dir))
        self.last_step = 0
        if not ctx.resume_id:
            self.writer.add_text("suite/params", _table(ctx.params), 0)
            if ctx.tags or ctx.group:
                self.writer.add_text("tags", _table({**ctx.tags, **({"group": ctx.group} if ctx.group else {})}), 0)
            self.writer.flush()
        return {"run_id": str(self.dir), "location": str(self.dir)}

    def trainer_reporting(self) -> tuple[list[str], list]:
        from transformers.integrations import TensorBoardCallback

        return [], [TensorBoardCallback(tb_writer=self.writer)]

    def log_scores(self, step: int, epoch: int, scores: dict[str, float]) -> None:
        for key, value in scores.items():
            self.writer.add_scalar(key, value, step)
        self.writer.add_scalar("epoch", epoch, step)
        self.writer.flush()
        self.last_step = max(self.last_step, step)

    def summary(self, fields: dict) -> None:
        self.writer.add_text("summary", _table(fields), self.last_step)
        self.writer.flush()

    def artifacts(self, root: Path, paths: list[Path]) -> None:
        # TensorBoard keeps no files: name them, they sit beside the log directory
        self.writer.add_text("artifacts", _table({relative(root, p): str(p) for p in paths}), self.last_step)
        self.writer.flush()

    def finish(self, ok: bool) -> None:
        self.writer.close()


def _table(fields: dict) -> str:
    """A Markdown table (TensorBoard's text tab renders it); one line a field."""
    def cell(v) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")

    return "| key | value |\n|---|---|\n" + "".join(f"| {cell(k)} | {cell(v)} |\n" for k, v in fields.items())
