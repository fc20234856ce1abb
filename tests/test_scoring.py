"""Lean reference scoring equals the full-logits computation it replaced, and generation keeps
no vocabulary-wide fp32 tensor beyond the last position.

The full-logits NLL (the model's forward over every position, fp32 copy, cross-entropy) lives
only here, as the reference. Models: the built-in tiny translator, and randomly initialised
shipped configs (Qwen3-0.6B, Gemma-3-270M) shrunk in depth and width but with their real
150k/262k vocabularies, so the LM head really runs in several chunks.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from harness.backends.scoring import chunk_tokens, lm_parts
from harness.backends.transformers_backend import TransformersBackend
from harness.chat import IGNORE_INDEX, tokenize_conversation
from harness.messages import Example
from harness.suite import GenerationSpec

SOURCES = ["The black cat eats the red apple.", "A dog.", "Un chien sur la table.",
           "The small house is near the river and the old bridge.", "Hello.", "Le chat noir."]


def _examples() -> list[Example]:
    return [Example(id=str(i), messages=[{"role": "user", "content": f"Translate to French: {s}"},
                                         {"role": "assistant", "content": SOURCES[(i + 1) % len(SOURCES)]}])
            for i, s in enumerate(SOURCES)]


def full_logits_nll(backend: TransformersBackend, examples, batch_size: int) -> list[tuple[float, int]]:
    """The former reference_nll: logits for every position, copied to fp32, cross-entropy."""
    tok, model = backend.tokenizer, backend.model
    rows = [tokenize_conversation(tok, ex.messages, 4096) for ex in examples]
    out = [(0.0, 0)] * len(rows)
    for start in range(0, len(rows), batch_size):
        idx = list(range(start, min(len(rows), start + batch_size)))
        width = max(len(rows[i].input_ids) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        lab = torch.full((len(idx), width), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            r = rows[i]
            ids[row, :len(r.input_ids)] = torch.tensor(r.input_ids)
            lab[row, :len(r.input_ids)] = torch.tensor([IGNORE_INDEX] * r.prompt_len + r.labels[r.prompt_len:])
            attn[row, :len(r.input_ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        target = lab[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                ignore_index=IGNORE_INDEX, reduction="none").view(target.shape)
        counted = target != IGNORE_INDEX
        for row, i in enumerate(idx):
            out[i] = (float(nll[row][counted[row]].sum()), int(counted[row].sum()))
    return out


def _assert_same(lean, full):
    assert [n for _, n in lean] == [n for _, n in full]
    assert all(n > 0 for _, n in lean)
    for (a, _), (b, _) in zip(lean, full):
        assert math.isclose(a, b, rel_tol=1e-4), (a, b)


def _shrunk(name: str, **extra):
    """A shipped config, random weights, 2 layers and a narrow width, its full vocabulary kept."""
    from transformers import AutoModelForCausalLM

    from harness.memory import ModelConfig, load_model_config

    raw = dict(load_model_config(name).raw)
    raw.update(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=2,
               num_key_value_heads=1, head_dim=32, **extra)
    if raw.get("layer_types"):
        raw["layer_types"] = ["sliding_attention", "full_attention"]
    raw.pop("torch_dtype", None)
    cfg = ModelConfig(raw, "test", name, "-").to_transformers()
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_and_tokenizer):
    return tiny_model_and_tokenizer[1]


def test_lean_nll_equals_full_logits_on_the_builtin_model(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    backend = TransformersBackend(model, tok, device="cpu")
    full = full_logits_nll(backend, _examples(), 4)
    for batch in (1, 3, 6):
        _assert_same(backend.reference_nll(_examples(), batch), full)
    # chunks of 7 scored positions: several per batch, and chunks that straddle rows
    _assert_same(backend.reference_nll(_examples(), 6, chunk_bytes=7 * 4 * model.config.vocab_size), full)


@pytest.mark.parametrize("name,extra", [("Qwen/Qwen3-0.6B", {}),
                                        ("google/gemma-3-270m", {"final_logit_softcapping": 30.0})])
def test_lean_nll_equals_full_logits_on_shipped_configs(name, extra, tokenizer):
    model = _shrunk(name, **extra)
    vocab = model.config.vocab_size
    assert vocab > 150_000
    backend = TransformersBackend(model, tokenizer, device="cpu")
    full = full_logits_nll(backend, _examples(), 3)
    # 8 MiB chunks: 13 (Qwen3) or 8 (Gemma3) scored positions at a time
    assert chunk_tokens(vocab, 8 * 2 ** 20) < sum(n for _, n in full) / 2
    _assert_same(backend.reference_nll(_examples(), 3, chunk_bytes=8 * 2 ** 20), full)
    _assert_same(backend.reference_nll(_examples(), 6), full)


def test_gemma_softcapping_is_applied():
    model = _shrunk("google/gemma-3-270m", final_logit_softcapping=0.5)
    _, _, after_head = lm_parts(model)
    x = torch.tensor([[-100.0, 0.0, 100.0]])
    assert torch.allclose(after_head(x), torch.tensor([[-0.5, 0.0, 0.5]]))


def test_lean_nll_through_a_peft_adapter(tiny_model_dir, tokenizer):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plain = full_logits_nll(TransformersBackend(base, tokenizer, device="cpu"), _examples(), 6)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                            init_lora_weights=False)).eval()
    backend = TransformersBackend(model, tokenizer, device="cpu")
    full = full_logits_nll(backend, _examples(), 6)
    assert full[0][0] != pytest.approx(plain[0][0], rel=1e-3)     # the adapter changes the scores
    _assert_same(backend.reference_nll(_examples(), 4), full)


class _Shapes(TorchDispatchMode):
    """Every tensor an op returns: (shape, dtype)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[tuple, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (list, tuple)) else [out]):
            if isinstance(t, torch.Tensor):
                self.seen.append((tuple(t.shape), t.dtype))
        return out


def test_scoring_and_generation_never_hold_vocabulary_wide_fp32_rows(tokenizer):
    """Scoring: fp32 logits only a chunk at a time. Generation: fp32 logits of the last position
    only, and nothing (KV cache included) wider than the batch actually used."""
    model = _shrunk("Qwen/Qwen3-0.6B")
    vocab = model.config.vocab_size
    backend = TransformersBackend(model, tokenizer, device="cpu")
    exs = _examples()
    with _Shapes() as shapes:
        backend.reference_nll(exs, 6, chunk_bytes=8 * 2 ** 20)
    rows = [math.prod(s[:-1]) for s, dt in shapes.seen if s and s[-1] == vocab and dt == torch.float32]
    assert rows and max(rows) == chunk_tokens(vocab, 8 * 2 ** 20)
    with _Shapes() as shapes:
        backend.generate(exs[:5], GenerationSpec(max_new_tokens=4, batch_size=4))
    wide = [s for s, dt in shapes.seen if s and s[-1] == vocab]
    assert wide and max(math.prod(s[:-1]) for s in wide) == 4        # batch × 1 position, never × length
    assert max(s[0] for s, _ in shapes.seen if len(s) == 4) == 4      # KV cache: (batch, kv heads, len, dim)


@pytest.mark.parametrize("sampling", [{}, {"do_sample": True, "temperature": 0.7},
                                      {"do_sample": True, "temperature": 0.7, "top_p": 0.9}])
def test_the_generation_estimate_matches_the_measured_peak_greedy_or_sampled(tokenizer, sampling):
    """Gemma 3's 262k vocabulary makes the last-position buffers the peak: greedy keeps this step's
    fp32 copy and the previous step's; sampling's processors add more (3.8x greedy's with top-p)."""
    from harness import memory as M
    from harness.chat import prompt_ids

    model = _shrunk("google/gemma-3-270m")
    backend = TransformersBackend(model, tokenizer, device="cpu")
    exs = _examples()
    probe = M.GradingProbe("cpu")
    with torch.inference_mode():
        probe.wrap(backend).generate(exs, GenerationSpec(max_new_tokens=6, batch_size=6, **sampling))
    config = M.ModelConfig(model.config.to_dict(), "test", "gemma-3-270m shrunk", "-")
    plan = M.make_plan(config, train=False, device="cpu", weight_dtype="fp32", eval_dtype="fp32",
                       eval_batch_size=6, eval_new_tokens=6,
                       eval_prompt_len=max(len(prompt_ids(tokenizer, ex.prompt_messages)) for ex in exs),
                       eval_sampling=("sample_top_p" if "top_p" in sampling else "sample") if sampling else "greedy")
    estimate, _ = M.generation_bytes(plan, 6)
    assert probe.peaks["generation"] == pytest.approx(estimate, rel=0.02)
