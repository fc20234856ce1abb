"""The suite's `diagnostics.probe` (what is scored) and `diagnostics.drift` (the verdict's thresholds).

Kept out of harness/suite.py (one concern a file); DiagnosticsSpec references them.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

SOURCES = ("text", "path", "recipe", "hf", "builtin")
DRIFT_SIGNALS = ("kl", "kl_prompts", "nll")   # harness/diagnose/drift.py defines them
DRIFT_TASK = "drift"                            # what a drift gate's task reads as in gate records


class ProbeSource(BaseModel):
    """One probe source: exactly one of text / path / recipe / hf / builtin. No references needed."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    text: Optional[str] = Field(None, description="Plain text file, one probe item a line (optionally .gz); "
                                "every token after the first is scored.")
    path: Optional[str] = Field(None, description="JSONL with `messages` (or prompt/completion): the whole "
                                "conversation is rendered with the chat template; KL on every turn, NLL on the "
                                "assistant turns (every turn when there is none).")
    recipe: Optional[str] = Field(None, description="Data recipe YAML (`harness data build`), read as `path` is.")
    recipe_split: Literal["train", "validation"] = Field("validation", description="Which split of the recipe.")
    hf: Optional[dict[str, Any]] = Field(None, description="Hugging Face dataset {name, config, split, field}: "
                                         "`field` names a text column (else rows are read as messages).")
    builtin: Optional[Literal["translation"]] = Field(
        None, description="An offline probe from the project's own generators: English and French sentences "
        "(no references), a user turn in one language and an unrelated reply in the other.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ProbeSource":
        given = [k for k in SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"probe data: give exactly one of {', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
        return self

    def describe(self) -> str:
        key = next(k for k in SOURCES if getattr(self, k) is not None)
        value = getattr(self, key)
        return f"{key}:{value.get('name') if isinstance(value, dict) else value}"


class ProbeSpec(BaseModel):
    """`diagnostics.probe`: general text scored at every graded epoch (docs/diagnostics.md, "Drift")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: ProbeSource
    n: int = Field(256, ge=2, le=100_000, description="Probe items used (the first N of the source).")
    top_k: int = Field(32, ge=1, le=4096, description="Base log-probabilities kept per position (plus the "
                       "tail's mass): the truncated KL is a lower bound of the exact KL.")


class DriftSpec(BaseModel):
    """`diagnostics.drift`: thresholds of the drift verdict, in nats per scored token.

    An epoch's signal is *significant* when its estimate exceeds the warn threshold and the
    one-sided test (KL: above the warn threshold; NLL: above epoch 0) rejects after Holm's
    adjustment over the run's family (forgetting's tests and these together)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: Optional[bool] = Field(None, description="Measure drift at every graded epoch: KL on the task "
                                    "prompts, and KL and NLL drift on diagnostics.probe. Unset: on when "
                                    "diagnostics.probe is set.")
    kl_warn: float = Field(0.02, ge=0, description="KL(base ‖ epoch), nats/token, from which drift is reported.")
    kl_fail: float = Field(0.1, ge=0, description="KL(base ‖ epoch), nats/token, from which the verdict fails.")
    nll_warn: float = Field(0.02, ge=0, description="NLL drift (epoch − epoch 0), nats/token, that warns.")
    nll_fail: float = Field(0.1, ge=0, description="NLL drift (epoch − epoch 0), nats/token, that fails.")
    prompts: int = Field(128, ge=0, le=100_000, description="Task prompts per task whose KL is measured "
                         "(0: none).")

    @model_validator(mode="after")
    def _ordered(self) -> "DriftSpec":
        if self.kl_fail < self.kl_warn or self.nll_fail < self.nll_warn:
            raise ValueError("drift thresholds: kl_fail must be >= kl_warn and nll_fail >= nll_warn")
        return self


def check_drift_gate(gate) -> None:
    """A gate names a task and a metric, or a drift signal (`{drift: nll, max: 0.1}`) with min/max:
    then its task reads `drift` and its metric the signal, in every gate record."""
    if gate.drift is None:
        if not gate.task or not gate.metric:
            raise ValueError("a gate needs task and metric (or drift: kl|kl_prompts|nll)")
        return
    if gate.task not in ("", DRIFT_TASK) or gate.metric not in ("", gate.drift):
        raise ValueError("a drift gate names no task or metric: give either drift or task and metric")
    if gate.max_drop_from_base is not None or gate.max_drop_from_baseline is not None:
        raise ValueError("a drift gate takes min or max (drift is already measured against the base)")
    object.__setattr__(gate, "task", DRIFT_TASK)
    object.__setattr__(gate, "metric", gate.drift)
