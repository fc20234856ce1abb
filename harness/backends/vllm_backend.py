"""Generation and reference likelihood with vLLM (CUDA only; `pip install 'harness[vllm]'`).

Prompts go in as token ids rendered by the chat template, like the transformers backend;
reference NLL comes from `prompt_logprobs` over prompt + reference.
"""
from __future__ import annotations

from typing import Sequence

from harness.backends.base import Generation
from harness.chat import end_of_turn_ids, prompt_ids, tokenize_conversation
from harness.data import Example
from harness.errors import UserError
from harness.suite import GenerationSpec, ModelSpec


class VLLMBackend:
    name = "vllm"
    parameters = None

    def __init__(self, path: str, adapter: str | None = None, dtype: str = "auto"):
        try:
            from vllm import LLM
        except ImportError:
            raise UserError("backend vllm is not installed: pip install 'harness[vllm]' (needs CUDA)") from None
        self.llm = LLM(model=path, dtype=dtype, enable_lora=adapter is not None)
        self.tokenizer = self.llm.get_tokenizer()
        self.adapter = adapter
        self.eot = end_of_turn_ids(self.tokenizer)

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: str) -> "VLLMBackend":
        return cls(path, spec.adapter, spec.dtype)

    def _lora(self):
        if not self.adapter:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest("adapter", 1, self.adapter)

    def generate(self, examples: Sequence[Example], gen: GenerationSpec) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=gen.max_new_tokens, stop_token_ids=self.eot,
                                temperature=gen.temperature if gen.do_sample else 0.0, top_p=gen.top_p)
        prompts = [{"prompt_token_ids": prompt_ids(self.tokenizer, ex.prompt_messages)} for ex in examples]
        outs = self.llm.generate(prompts, params, lora_request=self._lora(), use_tqdm=False)
        return [Generation(o.outputs[0].text.strip(),
                           "length" if o.outputs[0].finish_reason == "length" else "eos",
                           len(o.outputs[0].token_ids), len(o.prompt_token_ids)) for o in outs]

    def reference_nll(self, examples: Sequence[Example], batch_size: int):
        from vllm import SamplingParams

        rows = [tokenize_conversation(self.tokenizer, ex.messages, 1 << 16) for ex in examples]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0)
        outs = self.llm.generate([{"prompt_token_ids": r.input_ids} for r in rows], params,
                                 lora_request=self._lora(), use_tqdm=False)
        result = []
        for r, o in zip(rows, outs):
            nll, n = 0.0, 0
            for pos in range(r.prompt_len, len(r.input_ids)):
                if r.labels[pos] == -100 or o.prompt_logprobs[pos] is None:
                    continue
                nll -= o.prompt_logprobs[pos][r.input_ids[pos]].logprob
                n += 1
            result.append((nll, n))
        return result
