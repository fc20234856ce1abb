"""What a generation backend provides to grading: batched generation and, if it can,
the likelihood of reference answers (for perplexity)."""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ContextManager, Optional, Protocol, Sequence

if TYPE_CHECKING:   # annotations only: the backend table is read by every command's parser, without pydantic
    from harness.messages import Example
    from harness.suite import GenerationSpec


@dataclass
class Generation:
    text: str
    finish_reason: str            # "eos" (stopped on end-of-turn) | "length" (hit max_new_tokens)
    output_tokens: int = 0
    prompt_tokens: int = 0


# Set by the grading-memory probe on CPU (harness/memory/grading_phase.py) while a term runs: given a
# batch's size in padded tokens, the context that batch runs in (counted, or not). A backend that runs
# batches calls `measured_batch` around each; on CPU only the representative batch is counted.
MEASURE_BATCH: ContextVar[Optional[Callable[[int], ContextManager]]] = ContextVar("measure_batch", default=None)


def representative_batch(sizes: Sequence[int]) -> int:
    """Index of the batch the grading estimate describes: the most padded tokens (rows × longest
    row; the estimate takes the full batch at the longest prompt), the later of equals (longer rows)."""
    return max(range(len(sizes)), key=lambda k: (sizes[k], k)) if sizes else -1


def measured_batch(size: Optional[int]) -> ContextManager:
    """The context a batch of `size` padded tokens runs in: the probe's when one is set and `size`
    is given (the representative batch), else nothing."""
    factory = MEASURE_BATCH.get()
    return factory(size) if (factory is not None and size is not None) else contextlib.nullcontext()


class Capabilities:
    """What a backend class can do, read by the CLI and the pipeline instead of its name.

    Class attributes only, so they are read without starting the backend or importing its library
    (vLLM, the openai client). A backend class inherits these defaults and overrides what differs.
    """

    remote = False                    # a server answers under a model name: no local weights to check,
                                      # an endpoint needed (`from_spec(..., endpoint=)`)
    serves_many_checkpoints = False   # one engine grades every model of a run (`for_models`, `select`)
    sleeps_during_training = False    # grades each epoch beside the trainer on its own engine (`for_training`)
    measures_grading_memory = False   # runs in this process: its grading batch is planned and its peak measured

    @classmethod
    def unavailable(cls) -> Optional[str]:
        """Why this backend cannot run here (its library is not installed, and how to install it), or None."""
        return None


class Backend(Protocol):
    name: str

    def generate(self, examples: Sequence[Example], gen: GenerationSpec,
                 on_items: Optional[Callable[[int], None]] = None) -> list[Generation]:
        """Answer each example's prompt messages (its last assistant turn is the reference).

        `on_items(n)` is called as answers come in (n: how many more are done), for progress.
        """

    def reference_nll(self, examples: Sequence[Example], batch_size: int) -> Optional[list[tuple[float, int]]]:
        """(sum of NLL, token count) of each reference answer's assistant tokens; None if unsupported."""
