"""The suite's `sweep:` block: which suite fields to vary, how to search, what to optimise.

Plain pydantic models with no harness imports (harness/suite.py imports them). What needs the
rest of the suite (does `train.lr` name a field? does `en-fr/bleu` name a score?) is checked in
harness/sweep/space.py once the whole suite has loaded.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

Scalar = Union[bool, int, float, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class RangeSpace(_Strict):
    """A continuous or integer range: exactly one of uniform, log_uniform, int, given as [low, high]."""

    uniform: Optional[list[float]] = Field(None, description="[low, high]: any real number between.")
    log_uniform: Optional[list[float]] = Field(None, description="[low, high], both > 0: sampled on a log scale "
                                                                 "(learning rates).")
    integer: Optional[list[int]] = Field(None, alias="int", description="[low, high]: an integer between, both "
                                                                          "included.")

    @model_validator(mode="after")
    def _one_range(self) -> "RangeSpace":
        given = [k for k in ("uniform", "log_uniform", "int") if self._bounds(k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of uniform, log_uniform, int as [low, high] "
                             f"(got {', '.join(given) or 'none'})")
        kind = given[0]
        bounds = self._bounds(kind)
        if len(bounds) != 2:
            raise ValueError(f"{kind} is [low, high]: two numbers (got {len(bounds)})")
        low, high = bounds
        if not low < high:
            raise ValueError(f"{kind} [{low}, {high}] is an empty or inverted range: write [low, high] with low < high")
        if kind == "log_uniform" and low <= 0:
            raise ValueError(f"log_uniform [{low}, {high}] touches 0 or goes below it: a log scale needs low > 0 "
                             f"(e.g. [1e-5, 1e-3])")
        return self

    def _bounds(self, kind: str) -> Optional[list]:
        return self.integer if kind == "int" else getattr(self, kind)

    @property
    def kind(self) -> str:
        return next(k for k in ("uniform", "log_uniform", "int") if self._bounds(k) is not None)

    @property
    def bounds(self) -> list:
        return self._bounds(self.kind)


def _space_kind(v: Any) -> str:
    return "range" if isinstance(v, (dict, RangeSpace)) else "choices"


# a mapping is a range, anything else a list of choices: one error message, not one per union member
ParamSpace = Annotated[Union[Annotated[RangeSpace, Tag("range")], Annotated[list[Scalar], Tag("choices")]],
                       Discriminator(_space_kind)]


class ObjectiveSpec(_Strict):
    metric: str = Field(..., description="'TASK/METRIC' the suite grades (e.g. en-fr/bleu) or 'TASK/loss'; its "
                                         "direction (maximise or minimise) is the metric's own.")
    at: Literal["best", "last"] = Field("best", description="best: the best trained epoch's score; last: the last "
                                                            "epoch's. Epoch 0 (the untrained model) never counts.")


class ConstraintsSpec(_Strict):
    forgetting: Optional[Literal["none"]] = Field(
        None, description="none: a trial whose forgetting verdict (diagnostics.forgetting) is fail on any seed is "
                          "infeasible: it is kept and reported, but can never be the best.")


class SweepSpec(_Strict):
    """`harness sweep SUITE`: one Optuna study over suite fields; every trial is an ordinary run (docs/sweep.md)."""

    params: dict[str, ParamSpace] = Field(
        ..., min_length=1, description="Dotted suite paths → space: a list of choices ([bf16, fp32]) or a range "
                                       "({log_uniform: [1e-5, 1e-3]}, {uniform: [0, 0.1]}, {int: [1, 5]}).")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="train.seed values: every "
                             "sampled config runs once per seed; its objective is the mean over seeds.")
    trials: int = Field(10, ge=1, le=100_000, description="Trials in the study (over every worker; "
                                                          "--trials overrides).")
    sampler: Literal["tpe", "random", "grid"] = Field("tpe", description="grid: every combination of the "
                                                                         "choices once (lists only).")
    pruner: Literal["median", "hyperband", "none"] = Field("median", description="Stops a trial whose graded "
                                                           "epoch's objective trails the other trials' at that epoch.")
    objective: ObjectiveSpec
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec)
    seed: int = Field(0, description="The sampler's seed.")

    @model_validator(mode="after")
    def _choices_not_empty(self) -> "SweepSpec":
        for path, space in self.params.items():
            if isinstance(space, list) and not space:
                raise ValueError(f"params.{path}: an empty list of choices: give at least one value")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a seed: each runs once")
        return self
