"""Running out of GPU memory: grading halves its batch and retries; training stops with a remedy.

Grading (`call_halving_batch`): a `torch.OutOfMemoryError` from a generation or likelihood
batch frees the allocator's cache and retries the whole call at half the batch, down to 1;
the batch that worked and the number of halvings go into the task's record. At batch 1 it is
a `GradingOutOfMemory` (exit code 3).

Training (`training_remedy`): the pipeline ends the run with a `TrainingOutOfMemory` (exit
code 3) whose line carries the memory preflight's first configuration that fits
(harness.memory), so the user knows what to change in the suite.
"""
from __future__ import annotations

from typing import Callable, Optional, TypeVar

from harness import memory
from harness.errors import DoesNotFit

T = TypeVar("T")

# The practitioners' order (MISSION.md fact 9), when the preflight cannot say more.
GENERIC_REMEDY = ("shorten train.max_seq_len; halve train.batch_size and double train.grad_accum; "
                  "lower train.lora.r; set train.gradient_checkpointing: true")


class GradingOutOfMemory(DoesNotFit):
    """Grading ran out of GPU memory even one example at a time (exit code 3)."""


class TrainingOutOfMemory(DoesNotFit):
    """Training ran out of GPU memory; the graded epochs are kept (exit code 3)."""


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError)


def _free_cached_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def call_halving_batch(call: Callable[[int], T], batch_size: int, what: str) -> tuple[T, int, int]:
    """call(batch) → (its result, the batch that worked, how many halvings it took)."""
    batch, halvings = batch_size, 0
    while True:
        try:
            return call(batch), batch, halvings
        except Exception as e:
            if not is_out_of_memory(e):
                raise
        _free_cached_memory()   # outside the except: the traceback no longer pins the failed batch
        if batch == 1:
            raise GradingOutOfMemory(
                f"{what}: out of GPU memory even at batch 1 (from {batch_size}): lower "
                f"generation.max_new_tokens, shorten the task's inputs, or grade on a larger GPU")
        batch, halvings = max(1, batch // 2), halvings + 1


def training_remedy(suite, spec, gpu_memory: Optional[str] = None, shared=None) -> str:
    """The memory preflight's first configuration that fits, as one line of changes
    (`shared`: the model's harness.memory.SharedPlan, as the run built it).

    When the estimate already fitted the budget (or there is no budget: the estimate was too
    low for what the GPU really had free), the target is three quarters of the estimate: the
    first configuration the preflight expects to need 25% less memory.
    """
    try:
        r = memory.preflight(suite, spec, gpu_memory, shared=shared)
        steps = r.fix or memory.suggest_fix(r.plan, int(r.estimate.total * 0.75))
    except Exception:   # no model config or tokenizer offline: the generic order still helps
        return GENERIC_REMEDY
    if not steps:
        return GENERIC_REMEDY
    return "; ".join(f"{s.change} ({s.cost})" for s in steps)
