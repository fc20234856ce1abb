"""Batched generation and reference likelihood with a transformers model (CPU or GPU).

Generation: prompts are rendered once by the chat template into token ids (kept, never
re-tokenized from decoded text), sorted by length so a batch wastes little padding,
left-padded, and decoded greedily unless the task asks for sampling. Results come back in
the caller's order.
"""
from __future__ import annotations

import json
from typing import Callable, Optional, Sequence

import torch

from harness.backends.base import Capabilities, Generation, measured_batch, representative_batch
from harness.backends.continuous_batching import generate_continuous
from harness.backends.scoring import SCORE_CHUNK_BYTES, lm_parts, scored_nll
from harness.chat import IGNORE_INDEX, end_of_turn_ids, prompt_ids, tokenize_conversation
from harness.messages import Example
from harness.suite import GenerationSpec, ModelSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model_and_tokenizer(path: str, adapter: Optional[str] = None, dtype: str = "auto",
                             attn_implementation: Optional[str] = None, merge_adapter: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter or path) if adapter and _has_tokenizer(adapter) \
        else AutoTokenizer.from_pretrained(path)
    kwargs = {}
    if dtype != "auto":
        kwargs["dtype"] = DTYPES[dtype]
    elif not torch.cuda.is_available():
        kwargs["dtype"] = torch.float32  # CPU: fp32 is both faster and exact here
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        if merge_adapter:
            model = model.merge_and_unload()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _has_tokenizer(directory: str) -> bool:
    from pathlib import Path

    return (Path(directory) / "tokenizer_config.json").exists()


def parameter_summary(model) -> dict:
    """Total parameters and the trainable share: the adapter's when there is one (fact 7)."""
    total = sum(p.numel() for p in model.parameters())
    adapter = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    trainable = adapter or sum(p.numel() for p in model.parameters() if p.requires_grad) or total
    return {"total": total, "trainable": trainable, "trainable_share": trainable / total if total else 0.0,
            "adapter": bool(adapter)}


class TransformersBackend(Capabilities):
    name = "transformers"
    parameters = None
    measures_grading_memory = True

    def __init__(self, model, tokenizer, device: Optional[str] = None):
        self.model, self.tokenizer = model, tokenizer
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if next(model.parameters()).device.type != self.device and not hasattr(model, "hf_device_map"):
            self.model.to(self.device)
        self.eot = end_of_turn_ids(tokenizer)
        # token ids by the messages they render: every epoch grades the same prompts (tokenized once)
        self._tokenized: dict[tuple, object] = {}

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: str) -> "TransformersBackend":
        model, tok = load_model_and_tokenizer(path, spec.adapter, spec.dtype, spec.attn_implementation)
        backend = cls(model, tok)
        backend.parameters = parameter_summary(model)
        return backend

    def generate(self, examples: Sequence[Example], gen: GenerationSpec,
                 on_items: Optional[Callable[[int], None]] = None) -> list[Generation]:
        if not gen.do_sample:
            return self._in_eval_mode(self._generate, examples, gen, on_items)
        # Sampling draws from torch's generator: seeded, two gradings give the same outputs; forked,
        # the training that resumes after an epoch's grading draws what it would have drawn.
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []   # manual_seed seeds all
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(gen.seed if gen.seed is not None else 0)
            return self._in_eval_mode(self._generate, examples, gen, on_items)

    def reference_nll(self, examples: Sequence[Example], batch_size: int, max_len: int = 4096,
                      chunk_bytes: int = SCORE_CHUNK_BYTES) -> list[tuple[float, int]]:
        """Sum of token NLL over each reference's assistant tokens (incl. its end-of-turn).

        Lean (harness/backends/scoring.py): the decoder's hidden states, the LM head on the
        scored positions only, in chunks of at most `chunk_bytes` of fp32 logits.
        """
        return self._in_eval_mode(self._reference_nll, examples, batch_size, max_len, chunk_bytes)

    def batch_tokens(self, examples: Sequence[Example], gen: GenerationSpec, term: str,
                     max_len: int = 4096) -> int:
        """The padded tokens (rows × longest row) of the largest batch that `generate` (term
        "generation") or `reference_nll` at `gen.batch_size` ("scoring") runs on these examples:
        what the grading probe plans its one counted batch by (harness.memory.grading_phase)."""
        if term == "generation":
            lengths = [len(p) for p in self._prompts(examples)]
            if gen.engine == "continuous":
                return sum(lengths)
        else:
            lengths = [len(r.input_ids) for r in self._conversations(examples, max_len)]
        return max(_batches(lengths, gen.batch_size)[1], default=0)

    def _prompts(self, examples: Sequence[Example]) -> list[list[int]]:
        return [self._once(("prompt", ex.prompt_messages), prompt_ids, ex.prompt_messages) for ex in examples]

    def _conversations(self, examples: Sequence[Example], max_len: int) -> list:
        return [self._once(("conversation", max_len, ex.messages), tokenize_conversation, ex.messages, max_len)
                for ex in examples]

    def _once(self, key: tuple, tokenize, *args):
        """`tokenize(self.tokenizer, *args)`, computed once per distinct `key` (messages are lists of
        dicts: keyed by their JSON)."""
        k = json.dumps(key, ensure_ascii=False, sort_keys=True)
        got = self._tokenized.get(k)
        if got is None:
            got = self._tokenized[k] = tokenize(self.tokenizer, *args)
        return got

    def _in_eval_mode(self, fn, *args):
        """Run fn in eval mode and restore training mode even when it raises (grading during
        training retries a batch that ran out of memory: the model must go back to train())."""
        was_training = self.model.training
        self.model.eval()
        try:
            return fn(*args)
        finally:
            if was_training:
                self.model.train()

    @torch.inference_mode()
    def _generate(self, examples: Sequence[Example], gen: GenerationSpec,
                  on_items: Optional[Callable[[int], None]]) -> list[Generation]:
        prompts = self._prompts(examples)
        out: list[Optional[Generation]] = [None] * len(prompts)
        pad = self.tokenizer.pad_token_id
        if gen.engine == "continuous":   # transformers' paged continuous batching (see its module)
            with measured_batch(sum(len(p) for p in prompts)):   # one schedule: measured whole
                new_ids = generate_continuous(self.model, prompts, gen, self.eot, pad)
            if on_items:   # the engine schedules the whole set at once: done when it returns
                on_items(len(new_ids))
            return [self._finish(ids, len(p)) for ids, p in zip(new_ids, prompts)]
        batches, sizes = _batches([len(p) for p in prompts], gen.batch_size)
        rep = representative_batch(sizes)
        for k, idx in enumerate(batches):
            with measured_batch(sizes[k] if k == rep else None):
                new = self._generate_batch([prompts[i] for i in idx], gen, pad)
            for row, i in enumerate(idx):
                out[i] = self._finish(new[row], len(prompts[i]))
            if on_items:
                on_items(len(idx))
        return out  # type: ignore[return-value]

    def _generate_batch(self, prompts: list[list[int]], gen: GenerationSpec, pad: int) -> list[list[int]]:
        """The new token ids of one batch of prompts, left-padded: generation continues at the right edge."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p)
            attn[row, width - len(p):] = 1
        sampling = {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p} \
            if gen.do_sample else {"do_sample": False}
        return self.model.generate(
            input_ids=ids.to(self.device), attention_mask=attn.to(self.device),
            max_new_tokens=gen.max_new_tokens, eos_token_id=self.eot, pad_token_id=pad,
            **({"cache_implementation": "static"} if gen.engine == "static" else {}), **sampling,
        )[:, width:].tolist()

    def _finish(self, new_ids: list[int], n_prompt: int) -> Generation:
        stop = next((k for k, t in enumerate(new_ids) if t in self.eot), None)
        kept = new_ids if stop is None else new_ids[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return Generation(text, "length" if stop is None else "eos", len(kept) + (stop is not None), n_prompt)

    @torch.inference_mode()
    def _reference_nll(self, examples: Sequence[Example], batch_size: int, max_len: int,
                       chunk_bytes: int) -> list[tuple[float, int]]:
        rows = self._conversations(examples, max_len)
        # score only the last assistant turn: that is the graded reference
        labels_all = []
        for r in rows:
            labels = [IGNORE_INDEX] * r.prompt_len + r.labels[r.prompt_len:]
            labels_all.append(labels)
        out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
        pad = self.tokenizer.pad_token_id
        parts = lm_parts(self.model)
        batches, sizes = _batches([len(r.input_ids) for r in rows], batch_size)
        rep = representative_batch(sizes)
        for k, idx in enumerate(batches):
            width = max(len(rows[i].input_ids) for i in idx)
            with measured_batch(sizes[k] if k == rep else None):
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                lab = torch.full((len(idx), width), IGNORE_INDEX, dtype=torch.long)
                attn = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    n = len(rows[i].input_ids)
                    ids[row, :n] = torch.tensor(rows[i].input_ids)
                    lab[row, :n] = torch.tensor(labels_all[i])
                    attn[row, :n] = 1
                sums, counts = scored_nll(self.model, ids.to(self.device), attn.to(self.device), lab.to(self.device),
                                          chunk_bytes, parts)
            for row, i in enumerate(idx):
                out[i] = (float(sums[row]), int(counts[row]))
        return out


def _batches(lengths: list[int], batch_size: int) -> tuple[list[list[int]], list[int]]:
    """Indices sorted by length (little padding in a batch), cut into batches of `batch_size`, and
    each batch's padded tokens (rows × its longest row)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return batches, [len(idx) * max(lengths[i] for i in idx) for idx in batches]
