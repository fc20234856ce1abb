"""Batched generation gives the same greedy outputs as one-at-a-time generation, and the
reference likelihood counts exactly the assistant tokens."""
import math

import pytest
import torch

from harness.backends.transformers_backend import TransformersBackend
from harness.builtin import train_tokenizer
from harness.chat import tokenize_conversation
from harness.messages import Example
from harness.suite import GenerationSpec

TEXTS = ["The black cat eats the red apple.", "Le chat noir mange la pomme rouge.",
         "Translate English to French:", "A dog.", "Un chien sur la table."] * 20


@pytest.fixture(scope="module")
def backend():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    tok = train_tokenizer(TEXTS, 300)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return TransformersBackend(Qwen3ForCausalLM(cfg).eval(), tok, device="cpu")


def _examples():
    prompts = ["A dog.", "The black cat eats the red apple.", "Un chien.", "Translate English to French:\nA dog on the table."]
    return [Example(id=str(i), messages=[{"role": "user", "content": p}, {"role": "assistant", "content": "Un chien."}])
            for i, p in enumerate(prompts)]


def test_batched_equals_sequential(backend):
    gen_batched = backend.generate(_examples(), GenerationSpec(max_new_tokens=12, batch_size=4))
    gen_single = [backend.generate([ex], GenerationSpec(max_new_tokens=12, batch_size=1))[0] for ex in _examples()]
    assert [g.text for g in gen_batched] == [g.text for g in gen_single]
    assert [g.finish_reason for g in gen_batched] == [g.finish_reason for g in gen_single]
    # a random model rarely stops by itself: the finish reason must say so
    assert all(g.finish_reason in ("eos", "length") for g in gen_batched)
    assert any(g.output_tokens for g in gen_batched)


def test_reference_nll_is_token_weighted_over_assistant_tokens(backend):
    exs = _examples()
    got = backend.reference_nll(exs, batch_size=3)
    tok, model = backend.tokenizer, backend.model
    for ex, (nll, n) in zip(exs, got):
        t = tokenize_conversation(tok, ex.messages, 512)
        assert n == sum(1 for l in t.labels if l != -100)   # content + <|im_end|>
        with torch.no_grad():
            logits = model(torch.tensor([t.input_ids])).logits[0, :-1]
        logp = torch.log_softmax(logits, -1)
        want = -sum(logp[i - 1, t.input_ids[i]].item() for i in range(1, len(t.input_ids)) if t.labels[i] != -100)
        assert math.isclose(nll, want, rel_tol=1e-4)


def test_sampling_is_seeded_and_leaves_torchs_generator_where_it_was(backend):
    sampled = GenerationSpec(max_new_tokens=12, batch_size=2, do_sample=True, temperature=1.5, seed=3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = [g.text for g in backend.generate(_examples(), sampled)]
    assert torch.equal(torch.get_rng_state(), state)   # training after grading draws what it would have
    torch.manual_seed(999)                             # whatever came before: the seed decides
    assert [g.text for g in backend.generate(_examples(), sampled)] == first
    other = [g.text for g in backend.generate(_examples(), sampled.model_copy(update={"seed": 4}))]
    assert other != first
