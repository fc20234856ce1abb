"""Chat-template tokenization with assistant-only labels, shared by training and grading.

The chat template is applied by the tokenizer, never written into data. Which tokens are
the assistant's is found by rendering growing prefixes of the conversation: the tokens
an assistant turn adds after `add_generation_prompt=True` are its content plus its
end-of-turn token. That works for any template (no `{% generation %}` markers needed),
and it is exactly the span the model must learn to produce at generation time.
"""
from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]           # IGNORE_INDEX except on assistant tokens
    assistant_mask: list[int]   # 1 on assistant tokens (before any loss masking choice)
    truncated: bool
    prompt_len: int             # tokens before the last assistant turn (the generation prompt)
    full_length: int = 0        # tokens before truncation


def _render_ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
    )
    return list(out["input_ids"])


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the prompt for generating the next assistant turn."""
    return _render_ids(tokenizer, messages, add_generation_prompt=True)


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn (generation stops on any of them)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for tok in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)


def tokenize_conversation(
    tokenizer, messages: list[dict], max_len: int, assistant_only: bool = True
) -> TokenizedExample:
    """Render the whole conversation; label every assistant turn's own tokens.

    Tokens after an assistant turn's end-of-turn token that the template adds (such as
    Qwen's newline) belong to the template, not to the assistant, and get no label.
    """
    full = _render_ids(tokenizer, messages, add_generation_prompt=False)
    mask = [0] * len(full)
    eot = set(end_of_turn_ids(tokenizer))
    last_prompt_len = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(_render_ids(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(_render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False))
        # keep the content and the first end-of-turn token; drop template tail after it
        stop = end
        for j in range(start, end):
            if full[j] in eot:
                stop = j + 1
                break
        for j in range(start, min(stop, len(full))):
            mask[j] = 1
        last_prompt_len = start
    length = len(full)
    truncated = length > max_len
    full, mask = full[:max_len], mask[:max_len]
    labels = [t if (mask[k] or not assistant_only) else IGNORE_INDEX for k, t in enumerate(full)]
    return TokenizedExample(full, labels, mask, truncated, min(last_prompt_len, max_len), length)
