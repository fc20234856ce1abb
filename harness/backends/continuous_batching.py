"""Generation engine `continuous`: transformers' own continuous batching (`generate_batch`).

transformers ≥ 5 schedules requests over a paged KV cache: a finished sequence leaves the
batch at once and the next prompt takes its place, so no step is spent on padding or on
rows that already stopped. The prompts arrive as the same chat-template token ids as the
padded engine's, and the generated ids come back in the caller's order; the backend turns
them into `Generation`s with the same end-of-turn rule, so both engines report
finish_reason and token counts the same way.

The KV cache is sized from the work actually submitted (prompt + max_new_tokens of the
`batch_size` longest requests), never from the machine's free memory, which is what
transformers infers by default (on CPU: most of the RAM).
"""
from __future__ import annotations

import inspect
import math
from typing import Sequence

from harness.suite import GenerationSpec

PAGE_SIZE = 64   # tokens per cache page: short grading answers waste little of a page


def cache_plan(prompt_lengths: Sequence[int], max_new_tokens: int, batch_size: int) -> dict:
    """ContinuousBatchingConfig sizes: at most `batch_size` requests at once, each with room for
    its prompt and every token it may generate; a step holds at most all of their prompts."""
    concurrent = max(1, min(batch_size, len(prompt_lengths)))
    longest = sorted(prompt_lengths, reverse=True)[:concurrent]
    blocks = sum(math.ceil((n + max_new_tokens) / PAGE_SIZE) for n in longest)
    return {"page_size": PAGE_SIZE, "num_blocks": blocks + 1,
            "max_batch_tokens": max(sum(longest), concurrent), "max_requests_per_batch": concurrent}


def generate_continuous(model, prompts: list[list[int]], gen: GenerationSpec, eos_ids: list[int],
                        pad_id: int) -> list[list[int]]:
    """New token ids of each prompt (end-of-turn token included when one stopped it), in order."""
    from transformers import GenerationConfig
    from transformers.generation import ContinuousBatchingConfig

    if not prompts:
        return []
    if not hasattr(model, "generate_batch"):
        raise RuntimeError("generation.engine 'continuous' needs transformers >= 5 (model.generate_batch); "
                           "use engine: padded")
    sampling = {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p} \
        if gen.do_sample else {"do_sample": False}
    config = GenerationConfig(max_new_tokens=gen.max_new_tokens, eos_token_id=list(eos_ids),
                              pad_token_id=pad_id, **sampling)
    plan = cache_plan([len(p) for p in prompts], gen.max_new_tokens, gen.batch_size)
    # auto_switch_to_flash off: the engine must not change the model's attention (the same
    # model object goes on training); warmup only captures CUDA graphs, useless for one call.
    # (older transformers, such as 5.17 on the GPU image, has no such switch.)
    if "auto_switch_to_flash" in inspect.signature(ContinuousBatchingConfig).parameters:
        plan["auto_switch_to_flash"] = False
    cb_config = ContinuousBatchingConfig(**plan)
    outputs = model.generate_batch(prompts, generation_config=config, continuous_batching_config=cb_config,
                                   progress_bar=False, warmup=False)
    # generate_batch returns {request_id: output} in submission order; a failed or missing
    # request would silently shift items, so check every one.
    results = list(outputs.values())
    failed = [o.request_id for o in results if o.error is not None]
    if len(results) != len(prompts) or failed:
        raise RuntimeError(f"continuous batching lost requests ({len(results)} of {len(prompts)} returned"
                           + (f"; failed: {', '.join(failed[:3])}" if failed else "") + ")")
    for o, p in zip(results, prompts):
        if list(o.prompt_ids) != list(p):
            raise RuntimeError(f"continuous batching returned {o.request_id} out of order")
    return [list(o.generated_tokens) for o in results]
