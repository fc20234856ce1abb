"""Generation and reference likelihood with vLLM (CUDA only; `pip install 'harness[vllm]'`).

ONE engine grades a whole checkpoint series: the base model is loaded once, then

- LoRA / QLoRA checkpoints are hot-loaded as `LoRARequest`s, one request id per adapter
  directory, on top of the resident base (vLLM's multi-LoRA serving: no reload of the base);
- full fine-tune checkpoints are loaded into the running engine in place: the workers'
  load config is pointed at the checkpoint directory (`update_config`) and the weights are
  re-read (`reload_weights`), both through the documented `LLM.collective_rpc`. This is the
  in-place reload that vLLM's sleep-mode guide documents for RLHF weight updates; it needs
  neither a second engine nor the private model-runner attributes TRL's colocated mode
  writes into (`llm_engine.model_executor.driver_worker...`), which change between vLLM
  releases. The checkpoint directories exist anyway: the harness saves every epoch.
- During training (train-and-grade) the engine sleeps between gradings, as TRL's
  colocated vLLM does: `sleep(level=1)` for LoRA runs (the base stays in CPU RAM, the KV
  cache is freed), `sleep(level=2)` for full fine-tunes (weights are re-read on wake-up).

Prompts go in as the chat template's token ids, like the transformers backend, and the
answer is cut at the first end-of-turn token by the same rule; reference NLL comes from
`prompt_logprobs` over prompt + reference.

vLLM is never imported at module level. Tests inject a stand-in module through the `vllm`
constructor parameter; nothing here has run against real vLLM on these machines
(docs/generation.md says which parts ran where).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional, Sequence

from harness.backends.base import Capabilities, Generation
from harness.chat import end_of_turn_ids, prompt_ids, tokenize_conversation
from harness.errors import UserError
from harness.messages import Example
from harness.suite import GenerationSpec, ModelSpec

# vLLM accepts these values for max_lora_rank (EngineArgs); an adapter's r is rounded up.
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
NOT_INSTALLED = "backend vllm is not installed: pip install 'harness[vllm]' (needs CUDA)"


def import_vllm():
    """The three names this backend uses, from vLLM's documented public API."""
    from types import SimpleNamespace

    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise UserError(NOT_INSTALLED) from None
    return SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams, LoRARequest=LoRARequest)


def lora_rank_for(ranks: Sequence[int]) -> int:
    top = max(ranks, default=8)
    return next((r for r in LORA_RANKS if r >= top), top)


def adapter_rank(adapter_dir: str) -> int:
    return int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["r"])


class VLLMBackend(Capabilities):
    name = "vllm"
    parameters = None
    serves_many_checkpoints = sleeps_during_training = True

    @classmethod
    def unavailable(cls) -> Optional[str]:
        import importlib.util

        return None if importlib.util.find_spec("vllm") else NOT_INSTALLED

    def __init__(self, path: str, dtype: str = "auto", enable_lora: bool = False, max_lora_rank: int = 16,
                 quantization: Optional[str] = None, gpu_memory_utilization: float = 0.9,
                 enable_sleep_mode: bool = False, vllm=None):
        self.vllm = vllm or import_vllm()
        kwargs = {"model": path, "dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization}
        if enable_lora:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=1)
        if quantization:
            kwargs["quantization"] = quantization
        if enable_sleep_mode:
            kwargs["enable_sleep_mode"] = True
        self.llm = self.vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.eot = end_of_turn_ids(self.tokenizer)
        self.weights_path: Optional[str] = path   # whose full weights the engine holds now
        self._lora = None                 # LoRARequest applied to every request, or None
        self._lora_ids: dict[str, int] = {}
        self._asleep_level = 0
        self._dropped: Optional[str] = None       # weights a level-2 sleep discarded

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: str, vllm=None) -> "VLLMBackend":
        rank = adapter_rank(spec.adapter) if spec.adapter else 8
        backend = cls(path, spec.dtype, enable_lora=spec.adapter is not None, max_lora_rank=lora_rank_for([rank]),
                      vllm=vllm)
        backend.use_adapter(spec.adapter)
        return backend

    @classmethod
    def for_models(cls, models: Sequence[tuple[ModelSpec, str]], vllm=None) -> "VLLMBackend":
        """One engine for several checkpoints/adapters (`harness grade --backend vllm`): started on
        the first model's weights, LoRA enabled when any of them has an adapter."""
        ranks = [adapter_rank(spec.adapter) for spec, _ in models if spec.adapter]
        first, path = models[0]
        return cls(path, first.dtype, enable_lora=bool(ranks), max_lora_rank=lora_rank_for(ranks), vllm=vllm)

    @classmethod
    def for_training(cls, spec: ModelSpec, path: str, method: str, lora_r: int,
                     gpu_memory_utilization: float, vllm=None) -> "VLLMBackend":
        """The engine that grades every epoch of one train-and-grade model, next to the trainer."""
        return cls(path, spec.dtype, enable_lora=method in ("lora", "qlora"), max_lora_rank=lora_rank_for([lora_r]),
                   quantization="bitsandbytes" if method == "qlora" else None,
                   gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=True, vllm=vllm)

    # ------------------------------------------------------------------ which weights
    def select(self, path: str, adapter: Optional[str]) -> None:
        """Grade `path` (+ `adapter`) next: reload full weights only when they change."""
        self.use_weights(path)
        self.use_adapter(adapter)

    def use_weights(self, path: str) -> None:
        """Load a full checkpoint's weights into the running engine (no new engine)."""
        if path == self.weights_path:
            return
        self.llm.collective_rpc("update_config", args=({"model_config": {"model": path}},))
        self.llm.collective_rpc("reload_weights")
        self.llm.reset_prefix_cache()   # cached KV blocks were computed by the old weights
        self.weights_path = path

    def use_adapter(self, adapter: Optional[str]) -> None:
        """Apply a LoRA adapter directory to every later request; None = the bare weights.
        Each distinct directory gets its own id: vLLM caches adapters by id."""
        if adapter is None:
            self._lora = None
            return
        adapter = str(adapter)
        lora_id = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
        self._lora = self.vllm.LoRARequest(f"adapter-{lora_id}", lora_id, adapter)

    # ------------------------------------------------------------------ between gradings
    def sleep(self, keep_weights: bool) -> None:
        """Free the GPU for training: level 1 keeps the weights in CPU RAM, level 2 drops them."""
        self._asleep_level = 1 if keep_weights else 2
        if not keep_weights:
            self._dropped, self.weights_path = self.weights_path, None
        self.llm.sleep(level=self._asleep_level)

    def wake_up(self, checkpoint: Optional[str] = None) -> None:
        """Before grading. After a level-2 sleep: weight memory first, the weights re-read in place
        (from `checkpoint`, else what was dropped), then the KV cache: the KV cache is never
        allocated next to a half-loaded model (vLLM's sleep-mode guide, RLHF weight updates)."""
        level, self._asleep_level = self._asleep_level, 0
        if level == 2:
            self.llm.wake_up(tags=["weights"])
            self.use_weights(checkpoint or self._dropped)
            self.llm.wake_up(tags=["kv_cache"])
        else:
            if level == 1:
                self.llm.wake_up()
            if checkpoint:
                self.use_weights(checkpoint)

    def grade_checkpoint(self, checkpoint: str, method: str) -> None:
        """Make the engine grade one epoch's checkpoint of a train-and-grade run."""
        if method == "full":
            self.wake_up(checkpoint)
        else:
            self.wake_up()
            self.use_adapter(checkpoint)

    def pause_for_training(self, method: str) -> None:
        self.sleep(keep_weights=method != "full")

    # ------------------------------------------------------------------ grading
    def sampling_params(self, gen: GenerationSpec):
        return self.vllm.SamplingParams(
            max_tokens=gen.max_new_tokens, stop_token_ids=list(self.eot),
            temperature=gen.temperature if gen.do_sample else 0.0, top_p=gen.top_p if gen.do_sample else 1.0,
            skip_special_tokens=True, **({"seed": gen.seed} if gen.do_sample else {}))

    def generate(self, examples: Sequence[Example], gen: GenerationSpec,
                 on_items: Optional[Callable[[int], None]] = None) -> list[Generation]:
        prompts = [prompt_ids(self.tokenizer, ex.prompt_messages) for ex in examples]
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], self.sampling_params(gen),
                                 lora_request=self._lora, use_tqdm=False)
        if len(outs) != len(prompts):
            raise RuntimeError(f"vllm returned {len(outs)} outputs for {len(prompts)} prompts")
        # LLM.generate returns outputs in the order of its inputs; checking the prompt ids keeps a
        # silent reordering from attaching answers to the wrong items
        for o, p in zip(outs, prompts):
            if list(o.prompt_token_ids) != p:
                raise RuntimeError(f"vllm output {o.request_id} does not belong to its prompt")
        if on_items:   # vLLM schedules the whole set at once: it is done when it returns
            on_items(len(outs))
        return [self._finish(list(o.outputs[0].token_ids), o.outputs[0].finish_reason, len(p))
                for o, p in zip(outs, prompts)]

    def _finish(self, new_ids: list[int], finish_reason: str, n_prompt: int) -> Generation:
        """The transformers backend's rule: cut at the first end-of-turn token, count it."""
        stop = next((k for k, t in enumerate(new_ids) if t in self.eot), None)
        kept = new_ids if stop is None else new_ids[:stop]
        # vLLM may leave the matched stop token out of token_ids; its finish_reason still says so
        stopped = stop is not None or finish_reason == "stop"
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return Generation(text, "eos" if stopped else "length", len(kept) + stopped, n_prompt)

    def reference_nll(self, examples: Sequence[Example], batch_size: int):
        rows = [tokenize_conversation(self.tokenizer, ex.messages, 1 << 16) for ex in examples]
        params = self.vllm.SamplingParams(max_tokens=1, prompt_logprobs=0)
        outs = self.llm.generate([{"prompt_token_ids": r.input_ids} for r in rows], params,
                                 lora_request=self._lora, use_tqdm=False)
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
