"""Remedies: the practitioners' changes (MISSION.md fact 9), tried in order until the job fits.

Each change is a `Knob`: its levels (level 0 is the plan as given, then ever stronger), how a
level is applied to a plan, and how the change and its cost are described to the user.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from harness.memory.estimate import estimate
from harness.memory.plan import TrainPlan

GC_COST = "+25% step time (the forward runs twice; 20-30% in practice)"


@dataclass
class FixStep:
    knob: str
    change: str
    cost: str
    total_after: int = 0
    fits: bool = True

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Knob:
    """One practitioners' change with its levels, mildest first (levels[0]: the plan as given)."""

    name: str
    levels: list
    # set(base, plan, value): put the level's value into `plan` (a copy of `base`)
    set: Callable[[TrainPlan, TrainPlan, Any], None]
    # describe(base, old, new, final): (the change, its cost), `final` the plan with every change made
    describe: Callable[[TrainPlan, Any, Any, TrainPlan], tuple]
    # whether the knob means anything for a plan (LoRA rank: not for full fine-tuning)
    applies: Callable[[TrainPlan], bool] = lambda plan: True


def _quantile(values: list, q: float) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]


def _halvings(start: int, floor: int = 1) -> list:
    levels = [start]
    while levels[-1] > floor:
        levels.append(max(floor, levels[-1] // 2))
    return levels


# ---- 1. shorter max length: to the data's p99/p95/p90 when known, else halve (not below 128)
def _set_max_seq_len(base: TrainPlan, p: TrainPlan, v: int) -> None:
    p.max_seq_len = v
    p.seq_len = v if (base.packing and base.seq_len >= base.max_seq_len) else min(base.seq_len, v)


def _describe_max_seq_len(base: TrainPlan, old: int, new: int, final: TrainPlan) -> tuple:
    if base.lengths:
        cut = sum(n > new for n in base.lengths) / len(base.lengths)
        bound = "" if base.lengths_exact else " (byte-count bound: an overestimate)"
        cost = (f"truncates {cut:.1%} of training rows{bound}; their ends are not learned" if cut
                else f"none: no training row is longer{bound}")
    else:
        cost = f"rows longer than {new} tokens are truncated"
    return f"max_seq_len {old} → {new}", cost


def _max_seq_len_knob(base: TrainPlan) -> Knob:
    lengths = [base.max_seq_len]
    if base.lengths:
        for q in (1.0, 0.99, 0.95, 0.90):
            v = int(math.ceil(_quantile(base.lengths, q) / 8) * 8)
            if v < min(lengths[-1], base.seq_len if not base.packing else base.max_seq_len):
                lengths.append(v)
    else:
        while len(lengths) < 4 and lengths[-1] // 2 >= 128:
            lengths.append(lengths[-1] // 2)
    return Knob("max_seq_len", lengths, _set_max_seq_len, _describe_max_seq_len)


# ---- 2. half batch, double accumulation (same effective batch)
def _set_batch(base: TrainPlan, p: TrainPlan, v: tuple) -> None:
    p.batch_size, p.grad_accum = v


def _describe_batch(base: TrainPlan, old: tuple, new: tuple, final: TrainPlan) -> tuple:
    (b0, a0), (b1, a1) = old, new
    return (f"batch_size {b0} → {b1}, grad_accum {a0} → {a1} (same effective batch {b1 * a1})",
            f"{a1 // a0}× more micro-steps per update: slower (roughly +10-30% step time)")


def _batch_knob(base: TrainPlan) -> Knob:
    batches = [(base.batch_size, base.grad_accum)]
    while batches[-1][0] > 1:
        b, a = batches[-1]
        batches.append((max(1, b // 2), a * 2))
    return Knob("batch", batches, _set_batch, _describe_batch)


# ---- 3. gradient checkpointing
def _gc_knob(base: TrainPlan) -> Knob:
    return Knob("gradient_checkpointing", [base.gradient_checkpointing, True],
                lambda b, p, v: setattr(p, "gradient_checkpointing", v),
                lambda b, old, new, final: ("gradient_checkpointing: true", GC_COST))


# ---- 4. 8-bit optimizer (bitsandbytes, CUDA only)
def _optimizer_knob(base: TrainPlan) -> Knob:
    levels = [base.optimizer] + (["adamw_8bit"] if base.optimizer == "adamw" and base.device == "cuda" else [])
    return Knob("optimizer", levels, lambda b, p, v: setattr(p, "optimizer", v),
                lambda b, old, new, final: (f"optimizer {old} → {new}",
                                            "needs bitsandbytes on CUDA; quality close to 32-bit AdamW"))


# ---- 5. lower LoRA rank
def _describe_lora_r(base: TrainPlan, old: int, new: int, final: TrainPlan) -> tuple:
    before = final.inventory.lora_params(final.lora_targets, old)
    after = final.inventory.lora_params(final.lora_targets, new)
    return f"lora.r {old} → {new}", f"trainable params {before:,} → {after:,}: less capacity"


def _lora_r_knob(base: TrainPlan) -> Knob:
    ranks = [base.lora_r]
    while ranks[-1] > 4:
        ranks.append(ranks[-1] // 2)
    return Knob("lora_r", ranks, lambda b, p, v: setattr(p, "lora_r", v), _describe_lora_r,
                applies=lambda plan: plan.method != "full")


# ---- 6. lower the grading batch
def _set_eval_batch(base: TrainPlan, p: TrainPlan, v: int) -> None:
    p.eval_batch_size = p.eval_batch_fixed = v


def _eval_batch_knob(base: TrainPlan) -> Knob:
    # generation.batch_size: auto already keeps grading at or below training: nothing to lower
    levels = [base.eval_batch_fixed] if base.eval_batch_auto else _halvings(base.eval_batch_size)
    return Knob("eval batch", levels, _set_eval_batch,
                lambda b, old, new, final: (f"grading batch {old} → {new} (generation.batch_size on each task; "
                                            "auto keeps grading at or below training)",
                                            "slower grading (more, smaller batches)"))


# ---- 7. a lighter method
def _describe_method(base: TrainPlan, old: str, new: str, final: TrainPlan) -> tuple:
    share = final.trainable_params / max(1, final.total_params)
    if new == "lora":
        return (f"method {old} → lora (r={final.lora_r})",
                f"trains {share:.2%} of the parameters; on very small models LoRA learns slower than full "
                "fine-tuning (MISSION.md fact 7)")
    return (f"method {old} → qlora (r={final.lora_r})",
            f"4-bit NF4 base: ~+30% step time (dequantization), small quality cost; trains {share:.2%}; "
            "needs bitsandbytes on CUDA")


def _method_knob(base: TrainPlan) -> Knob:
    methods = [base.method]
    if base.method == "full":
        methods.append("lora")
    if base.method in ("full", "lora") and base.device == "cuda":
        methods.append("qlora")
    return Knob("method", methods, lambda b, p, v: setattr(p, "method", v), _describe_method)


def knobs_for(base: TrainPlan) -> list:
    """The practitioners' changes, in their order (MISSION.md fact 9), each with its levels."""
    if not base.train:
        return [_eval_batch_knob(base)]
    return [_max_seq_len_knob(base), _batch_knob(base), _gc_knob(base), _optimizer_knob(base),
            _lora_r_knob(base), _eval_batch_knob(base), _method_knob(base)]


def apply_levels(base: TrainPlan, knobs: list, levels: list) -> TrainPlan:
    """A copy of `base` with knob k at level levels[k]."""
    p = copy.copy(base)
    p.notes = list(base.notes)
    for knob, i in zip(knobs, levels):
        knob.set(base, p, knob.levels[i])
    return p


def suggest_fix(plan: TrainPlan, budget_bytes: int) -> list:
    """The first configuration that fits, trying the practitioners' changes in their order.

    Each change is pushed further (shorter length, smaller batch...) until the estimate fits or
    the change is exhausted, then the next one is added. Once a configuration fits, changes
    that turn out not to be needed are undone, the costliest (latest in the order) first, each
    back to its mildest level that still fits. Returns [] when the plan already fits; when
    nothing fits, the most aggressive configuration with `fits=False` on its steps.
    """
    cache: dict[tuple, int] = {}

    def total(levels) -> int:
        key = tuple(levels)
        if key not in cache:
            cache[key] = estimate(apply_levels(plan, knobs, list(levels))).total
        return cache[key]

    knobs = knobs_for(plan)
    levels = [0] * len(knobs)
    if total(levels) <= budget_bytes:
        return []
    fitted = False
    for k, knob in enumerate(knobs):
        if len(knob.levels) < 2 or not knob.applies(apply_levels(plan, knobs, levels)):
            continue
        for i in range(1, len(knob.levels)):
            levels[k] = i
            if total(levels) <= budget_bytes:
                fitted = True
                break
        if fitted:
            break
    if fitted:
        # Undo what is not needed: the costliest changes (last in the practitioners' order) first,
        # each back to its mildest level that still fits.
        for _ in range(2):
            for k in reversed(range(len(knobs))):
                for i in range(levels[k]):
                    trial = levels[:k] + [i] + levels[k + 1:]
                    if total(trial) <= budget_bytes:
                        levels = trial
                        break
    final = apply_levels(plan, knobs, levels)
    after = total(levels)
    steps = []
    for knob, i in zip(knobs, levels):
        if i:
            change, cost = knob.describe(plan, knob.levels[0], knob.levels[i], final)
            steps.append(FixStep(knob.name, change, cost, after, fitted))
    return steps
