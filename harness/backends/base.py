"""What a generation backend provides to grading: batched generation and, if it can,
the likelihood of reference answers (for perplexity)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

from harness.messages import Example
from harness.suite import GenerationSpec


@dataclass
class Generation:
    text: str
    finish_reason: str            # "eos" (stopped on end-of-turn) | "length" (hit max_new_tokens)
    output_tokens: int = 0
    prompt_tokens: int = 0


class Backend(Protocol):
    name: str

    def generate(self, examples: Sequence[Example], gen: GenerationSpec,
                 on_items: Optional[Callable[[int], None]] = None) -> list[Generation]:
        """Answer each example's prompt messages (its last assistant turn is the reference).

        `on_items(n)` is called as answers come in (n: how many more are done), for progress.
        """

    def reference_nll(self, examples: Sequence[Example], batch_size: int) -> Optional[list[tuple[float, int]]]:
        """(sum of NLL, token count) of each reference answer's assistant tokens; None if unsupported."""
