"""The suite's `tracking:` block (docs/tracking.md); harness/suite.py holds one field of this type."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

Backend = Literal["tensorboard", "mlflow", "wandb", "trackio"]   # the keys of harness.tracking.TRACKERS


class TrackingSpec(BaseModel):
    """Send the run to experiment trackers: the Trainer's own logs and the harness's scores in one run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backends: list[Backend] = Field(
        default_factory=list, description="Trackers to log to: tensorboard, mlflow, wandb, trackio "
        "(each an extra: pip install 'harness[mlflow]').")
    project: str = Field("harness", min_length=1, description="MLflow experiment, W&B project, trackio project.")
    run_name: Optional[str] = Field(None, min_length=1,
                                    description="The tracker run's name (default: the run directory's name).")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags set on the tracker run.")
    group: Optional[str] = Field(None, min_length=1, description="Group of runs (a sweep sets it to the study name).")

    @field_validator("backends")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        repeated = sorted({b for b in v if v.count(b) > 1})
        if repeated:
            raise ValueError(f"backends listed twice: {repeated}")
        return v
