"""Generation engines `continuous` (transformers' generate_batch) and `static` give the padded
engine's greedy outputs, Generation fields and order, on the tiny fixture model and on a random one."""
import random

import pytest
import sacrebleu
import torch

from harness.backends.continuous_batching import PAGE_SIZE, cache_plan
from harness.backends.transformers_backend import TransformersBackend
from harness.builtin import train_tokenizer
from harness.chat import end_of_turn_ids
from harness.data import load_rows
from harness.suite import DataSpec, GenerationSpec, parse_suite

GEN = GenerationSpec(max_new_tokens=24, batch_size=8)


@pytest.fixture(scope="module")
def examples():
    suite = parse_suite("name: t\nmodels: [{path: builtin:tiny-translator}]\n"
                        "tasks: [{name: x, data: {synthetic: {n: 1}}}]\n")
    rows = []
    for direction in ("en-fr", "fr-en"):
        rows += load_rows(DataSpec(synthetic={"direction": direction, "split": "val", "n": 25}), suite)
    return rows


@pytest.fixture(scope="module")
def fixture_backend(tiny_model_and_tokenizer):
    """The session's tiny pre-trained translator (few steps: its answers repeat a lot)."""
    model, tok = tiny_model_and_tokenizer
    return TransformersBackend(model, tok, device="cpu")


@pytest.fixture(scope="module")
def random_backend(examples):
    """A random model whose answers differ item by item and about a third of which end on
    <|im_end|>: the strictest item-by-item comparison, both finish reasons exercised."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = train_tokenizer([m["content"] for ex in examples for m in ex.messages] * 5, 400)
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():   # an untied, wider head: the next token depends on the context
        model.lm_head.weight.normal_(0, 0.2)
        model.lm_head.weight[end_of_turn_ids(tok)] *= 3
    return TransformersBackend(model, tok, device="cpu")


@pytest.fixture(scope="module")
def padded(random_backend, examples):
    return random_backend.generate(examples, GEN)


@pytest.fixture(scope="module")
def backend(random_backend):
    return random_backend


def test_random_model_answers_are_varied(padded):
    # the comparisons below would prove little on constant answers or on a single finish reason
    assert len({g.text for g in padded}) > len(padded) * 0.8
    assert 5 <= sum(g.finish_reason == "eos" for g in padded) <= len(padded) - 5


@pytest.mark.parametrize("engine", ["continuous", "static"])
@pytest.mark.parametrize("which", ["fixture_backend", "random_backend"])
def test_engine_agrees_with_padded(request, examples, which, engine):
    backend = request.getfixturevalue(which)
    padded = backend.generate(examples, GEN)
    got = backend.generate(examples, GEN.model_copy(update={"engine": engine}))
    assert len(got) == len(padded)
    same = sum(a.text == b.text for a, b in zip(got, padded))
    assert same / len(padded) >= 0.98, f"{engine}: {same}/{len(padded)} greedy outputs identical"
    refs = [ex.reference for ex in examples]
    bleu = lambda gens: sacrebleu.corpus_bleu([g.text for g in gens], [refs]).score  # noqa: E731
    assert abs(bleu(got) - bleu(padded)) <= 0.5
    # end-of-turn handling and counts are the backend's, whatever the engine
    for a, b in zip(got, padded):
        if a.text == b.text:
            assert (a.finish_reason, a.output_tokens, a.prompt_tokens) == \
                   (b.finish_reason, b.output_tokens, b.prompt_tokens)


def test_continuous_keeps_the_callers_order(backend, examples, padded):
    order = list(range(len(examples)))
    random.Random(3).shuffle(order)
    got = backend.generate([examples[i] for i in order], GEN.model_copy(update={"engine": "continuous"}))
    assert [g.text for g in got] == [padded[i].text for i in order]
    assert [g.prompt_tokens for g in got] == [padded[i].prompt_tokens for i in order]


def test_continuous_hits_length_limit_like_padded(backend, examples):
    short = GenerationSpec(max_new_tokens=3, batch_size=4)
    padded = backend.generate(examples[:6], short)
    got = backend.generate(examples[:6], short.model_copy(update={"engine": "continuous"}))
    assert [(g.text, g.finish_reason, g.output_tokens) for g in got] == \
           [(g.text, g.finish_reason, g.output_tokens) for g in padded]
    assert any(g.finish_reason == "length" and g.output_tokens == 3 for g in got)


def test_continuous_leaves_the_model_as_it_found_it(backend, examples):
    model = backend.model
    attn = model.config._attn_implementation
    model.train()
    try:
        backend.generate(examples[:4], GEN.model_copy(update={"engine": "continuous"}))
        assert model.training, "a model graded mid-training goes back to train mode"
        assert model.config._attn_implementation == attn
    finally:
        model.eval()


def test_cache_plan_is_sized_by_the_batch_not_the_machine():
    plan = cache_plan([10, 70, 30, 200], max_new_tokens=40, batch_size=2)
    # two requests at once: the two longest prompts, each with room for 40 new tokens
    assert plan["max_requests_per_batch"] == 2
    assert plan["num_blocks"] == -(-(200 + 40) // PAGE_SIZE) + -(-(70 + 40) // PAGE_SIZE) + 1
    assert plan["max_batch_tokens"] == 270
    assert cache_plan([5], 8, 32)["max_requests_per_batch"] == 1


def test_unknown_engine_is_a_suite_error():
    from harness.suite import SuiteError

    with pytest.raises(SuiteError, match="engine"):
        parse_suite("name: t\nmodels: [{path: builtin:tiny-translator}]\n"
                    "tasks: [{name: x, data: {synthetic: {n: 1}}, generation: {engine: paged}}]\n")


def test_sampling_runs_through_continuous_batching(backend, examples):
    torch.manual_seed(0)
    got = backend.generate(examples[:6], GenerationSpec(max_new_tokens=8, batch_size=3, do_sample=True,
                                                        temperature=0.7, top_p=0.9, engine="continuous"))
    assert len(got) == 6
    assert all(g.finish_reason in ("eos", "length") and 1 <= g.output_tokens <= 8 for g in got)


def test_continuous_through_a_peft_model_applies_the_adapter(random_backend, examples):
    """A LoRA run grades the PeftModel itself: generate_batch must run with the adapter active."""
    import copy

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    peft_model = get_peft_model(copy.deepcopy(random_backend.model),
                                LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora = TransformersBackend(peft_model.eval(), random_backend.tokenizer, device="cpu")
    padded = lora.generate(examples[:12], GEN)
    got = lora.generate(examples[:12], GEN.model_copy(update={"engine": "continuous"}))
    assert [g.text for g in got] == [g.text for g in padded]
    base = random_backend.generate(examples[:12], GEN)
    assert [g.text for g in padded] != [g.text for g in base], "the adapter changes the answers"
