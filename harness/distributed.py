"""Several training processes (`accelerate launch`, `torchrun`): who writes, who waits.

Under a launcher every process runs the whole `train-and-grade`; only rank 0 (the main
process) writes the run directory, logs, grades and renders. The others train their shard of
the data and wait at a barrier while rank 0 grades an epoch; then every rank learns from rank 0
whether to stop early. Without a launcher there is one process and every call here is free.

The process group is created through accelerate's `PartialState` (gloo on CPU, NCCL on GPUs),
the same object the Trainer uses afterwards, so both agree on ranks and backend.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

GRADING_TIMEOUT_S = int(os.environ.get("HARNESS_DIST_TIMEOUT_S", 4 * 3600))


@dataclass(frozen=True)
class Processes:
    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            from accelerate import PartialState

            PartialState().wait_for_everyone()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (any picklable value)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_world_size() -> int:
    """Processes started by a launcher (WORLD_SIZE), 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def processes() -> Processes:
    """This process's rank and the world size; under a launcher, the process group is set up."""
    if launched_world_size() <= 1:
        return Processes(0, 1)
    import torch
    from accelerate import PartialState

    # cpu=True is what makes accelerate choose gloo for a multi-process CPU run (the Trainer's
    # use_cpu does the same later; the state is shared, so the first call decides).
    # The timeout bounds every collective, the barrier where ranks wait for rank 0's grading
    # included: torch's default (10 min with NCCL) is shorter than grading a large task can take.
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(seconds=GRADING_TIMEOUT_S))
    return Processes(state.process_index, state.num_processes)


class ShardedBackend:
    """A backend whose items are split across ranks: rank r answers items r, r+N, r+2N, ...;
    the answers are gathered on every rank in the caller's order. Every rank must make the
    same calls in the same order (rank 0 through grade_epoch, the others through
    `follow_grading`), each item is generated once."""

    def __init__(self, inner, procs: Processes):
        self.inner, self.procs = inner, procs
        self.name, self.parameters = inner.name, getattr(inner, "parameters", None)

    def _gather(self, mine: list, n: int) -> list:
        import torch.distributed as dist

        parts: list = [None] * self.procs.world
        dist.all_gather_object(parts, mine)
        out: list = [None] * n
        for r, part in enumerate(parts):
            out[r::self.procs.world] = part
        return out

    def generate(self, examples, gen, on_items=None):
        # progress (rank 0 only): each of this rank's answers stands for one on every rank
        count = (lambda n: on_items(n * self.procs.world)) if on_items else None
        mine = self.inner.generate(list(examples)[self.procs.rank::self.procs.world], gen, count)
        return self._gather(mine, len(examples))

    def reference_nll(self, examples, batch_size):
        mine = self.inner.reference_nll(list(examples)[self.procs.rank::self.procs.world], batch_size)
        return self._gather(mine, len(examples))


def follow_grading(backend: ShardedBackend, tasks) -> None:
    """What a rank other than 0 does while rank 0 runs grade_epoch: the same backend calls, in
    the same order (harness.grade.grade_task: generation, then likelihood, task by task)."""
    for task in tasks:
        if task.needs_generation:
            backend.generate(task.examples, task.spec.generation)
        if task.needs_likelihood:
            backend.reference_nll(task.examples, task.spec.generation.batch_size)
