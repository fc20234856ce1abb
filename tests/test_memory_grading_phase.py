"""The grading phase inside training: inference mode, the training's autocast, its own measured peak
(harness/memory/grading_phase.py)."""
from __future__ import annotations

import contextlib

import pytest
import torch

from harness import memory as M
from harness.backends.transformers_backend import TransformersBackend
from harness.messages import Example
from harness.suite import GenerationSpec


def test_cpu_probe_counts_live_tensor_bytes_and_composite_intermediates():
    probe = M.GradingProbe("cpu")
    w, x, t = torch.randn(1000, 64), torch.randn(100, 64), torch.randint(0, 1000, (100,))
    with torch.inference_mode():
        with probe.term("scoring"):
            logits = torch.nn.functional.linear(x, w)          # 400,000 B
            nll = torch.nn.functional.cross_entropy(logits, t, reduction="none")   # + log-softmax 400,000 B
            del logits
        with probe.term("generation"):
            a = torch.zeros(250_000)                           # 1,000,000 B
            del a
            b = torch.zeros(100_000)                           # freed memory is not counted twice
            view = b[:10]                                      # a view allocates nothing
    # logits + log-softmax + the 100 NLLs + nll_loss's 4-byte total weight
    assert probe.peaks["scoring"] == 800_000 + nll.untyped_storage().nbytes() + 4
    assert probe.peaks["generation"] == 1_000_000
    assert view.numel() == 10


@pytest.mark.parametrize("precision", ["bf16", None])
def test_grading_phase_is_inference_mode_under_the_training_autocast(precision):
    with M.grading_phase("cpu", precision) as probe:
        assert torch.is_inference_mode_enabled()
        assert torch.is_autocast_enabled("cpu") == (precision == "bf16")
        y = torch.nn.functional.linear(torch.randn(4, 8), torch.randn(8, 8))
    assert y.dtype == (torch.bfloat16 if precision else torch.float32)
    assert not torch.is_inference_mode_enabled() and not torch.is_autocast_enabled("cpu")
    assert isinstance(probe, M.GradingProbe)


def _examples():
    return [Example(id=str(i), messages=[{"role": "user", "content": f"Translate to French: the cat {i}."},
                                         {"role": "assistant", "content": f"Le chat {i}."}]) for i in range(6)]


def test_measured_grading_terms_next_to_the_estimate(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    backend = TransformersBackend(model, tok, device="cpu")
    with M.grading_phase("cpu") as probe:
        wrapped = probe.wrap(backend)
        gens = wrapped.generate(_examples(), GenerationSpec(max_new_tokens=6, batch_size=3))
        nll = wrapped.reference_nll(_examples(), 3)
    assert len(gens) == 6 and len(nll) == 6 and wrapped.tokenizer is tok
    rec = probe.record({"batch": 3, "auto": True, "generation": 1_000_000, "scoring": 2_000_000})
    assert rec["batch_size"] == 3 and rec["device"] == "cpu" and "TorchDispatchMode" in rec["how"]
    # the KV cache of 3 rows alone: 2 layers × 1 kv head × 32 × (K + V) × 4 B per token
    assert rec["measured"]["generation"] > 3 * 2 * 32 * 2 * 4 * 10
    assert rec["measured"]["scoring"] > 0
    assert rec["ratio"]["scoring"] == round(rec["measured"]["scoring"] / 2_000_000, 4)


def test_scores_and_greedy_outputs_do_not_depend_on_the_grading_batch(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    backend = TransformersBackend(model, tok, device="cpu")
    outs = [[g.text for g in backend.generate(_examples(), GenerationSpec(max_new_tokens=6, batch_size=b))]
            for b in (1, 4, 6)]
    nlls = [[n for n, _ in backend.reference_nll(_examples(), b)] for b in (1, 4, 6)]
    assert outs[0] == outs[1] == outs[2]
    assert nlls[0] == pytest.approx(nlls[1], rel=1e-5) and nlls[0] == pytest.approx(nlls[2], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: CUDA peaks around grading are measured "
                                                          "with torch.cuda.max_memory_allocated")
def test_cuda_grading_peak_is_measured_and_the_run_peak_kept():
    torch.cuda.reset_peak_memory_stats()
    big = torch.empty(64 * 2 ** 20, device="cuda")
    del big
    before = M.MemoryProbe.cuda_peaks()["cuda_peak_allocated"]
    probe = M.GradingProbe("cuda")
    with probe.term("scoring"):
        x = torch.empty(2 ** 20, device="cuda")
        del x
    assert probe.peaks["scoring"] >= 4 * 2 ** 20
    assert M.MemoryProbe.cuda_peaks()["cuda_peak_allocated"] >= before


def _uneven_examples():
    """Prompts of different lengths, so the batches differ in padded tokens."""
    words = "the black cat eats a small red apple in the green garden".split()
    return [Example(id=str(i), messages=[{"role": "user", "content": "Translate to French: " + " ".join(words[:2 + i])},
                                         {"role": "assistant", "content": f"Le chat {i}."}]) for i in range(7)]


def test_the_backend_hands_the_probe_one_batch_per_term_the_one_with_most_padded_tokens(tiny_model_and_tokenizer):
    from harness.backends.base import MEASURE_BATCH
    from harness.chat import prompt_ids, tokenize_conversation

    model, tok = tiny_model_and_tokenizer
    backend = TransformersBackend(model, tok, device="cpu")
    asked: list[int] = []
    token = MEASURE_BATCH.set(lambda size: asked.append(size) or contextlib.nullcontext())
    try:
        backend.generate(_uneven_examples(), GenerationSpec(max_new_tokens=3, batch_size=3))
        backend.reference_nll(_uneven_examples(), 3)
    finally:
        MEASURE_BATCH.reset(token)
    lengths = sorted(len(prompt_ids(tok, ex.prompt_messages)) for ex in _uneven_examples())
    full = sorted(len(tokenize_conversation(tok, ex.messages, 4096).input_ids) for ex in _uneven_examples())
    # batches of 3 over the sorted lengths: [0:3], [3:6], [6:7]; the size is rows × the longest row
    expect = lambda ls: max(len(ls[k:k + 3]) * max(ls[k:k + 3]) for k in range(0, len(ls), 3))  # noqa: E731
    assert asked == [expect(lengths), expect(full)]


def test_cpu_grading_measures_the_representative_batch_only_and_records_it(tiny_model_and_tokenizer):
    """The figure is the representative batch's peak (what counting that batch alone gives), the
    other batches run uncounted, and the outputs are those of an unmeasured grading."""
    from harness.chat import prompt_ids

    model, tok = tiny_model_and_tokenizer
    backend = TransformersBackend(model, tok, device="cpu")
    exs, gen = _uneven_examples(), GenerationSpec(max_new_tokens=4, batch_size=3)
    plain = [g.text for g in backend.generate(exs, gen)]
    plain_nll = backend.reference_nll(exs, 3)
    with M.grading_phase("cpu") as probe:
        wrapped = probe.wrap(backend)
        one = [g.text for g in wrapped.generate(exs, gen)]
        one_nll = wrapped.reference_nll(exs, 3)
    whole = M.GradingProbe("cpu")           # every batch counted, as grading measured before
    with torch.inference_mode():
        every = [g.text for g in whole.wrap(backend).generate(exs, gen)]
        every_nll = whole.wrap(backend).reference_nll(exs, 3)
    assert one == plain == every and one_nll == plain_nll == every_nll
    rec = probe.record({"batch": 3, "auto": False, "generation": 10 ** 6, "scoring": 10 ** 6})
    assert rec["measured"]["generation"] > 0 and rec["measured"]["scoring"] > 0
    assert "representative batch" in rec["how"] and set(rec["measured_batch_tokens"]) == {"generation", "scoring"}
    # the longest prompts' batch, counted alone with every batch of it counted: the same peak
    order = sorted(range(len(exs)), key=lambda i: len(prompt_ids(tok, exs[i].prompt_messages)))
    alone = M.GradingProbe("cpu")
    with torch.inference_mode():
        alone.wrap(backend).generate([exs[i] for i in order[3:6]], gen)
    assert rec["measured"]["generation"] == alone.peaks["generation"]
    assert whole.peaks["generation"] >= rec["measured"]["generation"]


def test_a_later_task_with_a_larger_batch_replaces_the_measured_one(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    backend = TransformersBackend(model, tok, device="cpu")
    gen = GenerationSpec(max_new_tokens=3, batch_size=3)
    with M.grading_phase("cpu") as probe:
        wrapped = probe.wrap(backend)
        wrapped.generate(_uneven_examples()[:2], gen)
        small = probe.batch_tokens["generation"]
        wrapped.generate(_uneven_examples(), gen)
        large = probe.batch_tokens["generation"]
        wrapped.generate(_uneven_examples()[:2], gen)     # smaller again: not counted, the figure kept
    assert large > small and probe.batch_tokens["generation"] == large


def test_a_grading_of_several_tasks_counts_only_its_largest_batch_of_each_term(tiny_model_and_tokenizer, tmp_path):
    """grade_epoch tells the probe every task's batches first: the small task's batches run uncounted
    and the large task's largest is the one counted (once per term), whatever the task order."""
    from harness.grade import LoadedTask, grade_epoch
    from harness.metrics import build_metrics, metric_options_from
    from harness.results import RunDir
    from harness.suite import BootstrapSpec, TaskSpec

    model, tok = tiny_model_and_tokenizer
    backend = TransformersBackend(model, tok, device="cpu")

    def task(name, exs):
        spec = TaskSpec.model_validate({"name": name, "data": {"path": "unused.jsonl"}, "metrics": ["bleu", "perplexity"],
                                        "generation": {"max_new_tokens": 3, "batch_size": 3}})
        return LoadedTask(spec, exs, build_metrics(["bleu", "perplexity"], metric_options_from({})))

    small, large = task("small", _uneven_examples()[:2]), task("large", _uneven_examples())
    gen = large.spec.generation
    counted: list[str] = []
    with M.grading_phase("cpu") as probe:
        original = probe._counted
        probe._counted = lambda name: counted.append(name) or original(name)
        grade_epoch(probe.wrap(backend), [small, large], BootstrapSpec(samples=10), RunDir(tmp_path), "m", 0)
    assert sorted(counted) == ["generation", "scoring"]
    assert probe.batch_tokens == {"generation": backend.batch_tokens(large.examples, gen, "generation"),
                                  "scoring": backend.batch_tokens(large.examples, gen, "scoring")}
    assert probe.batch_tokens["generation"] > backend.batch_tokens(small.examples, gen, "generation")


def test_ops_run_whole_count_what_decomposing_them_counts():
    """linear, matmul, `to`, reshape and contiguous run whole (decomposing them was most of the
    counting's cost): the same peak as their decompositions; linear and matmul of a strided input
    are decomposed (a copy on the way, or none, as matmul decides)."""
    import importlib

    G = importlib.import_module("harness.memory.grading_phase")
    w, x = torch.randn(256, 64), torch.randn(8, 32, 64)

    def work():
        a = torch.nn.functional.linear(x[:, ::2].transpose(0, 1), w)   # non-contiguous (half of x): copied first
        b = a.to(torch.float64)                                 # a new storage
        c = b.to(torch.float64)                                 # the same storage: nothing new
        d = torch.matmul(a, w).reshape(-1)                      # reshape of a contiguous result: a view
        e = a.transpose(0, 1).contiguous()                      # a copy
        return a, b, c, d, e

    def strided():   # matmul's batched path: a strided 4-D input is copied to (batch, rows, cols) first
        return torch.matmul(torch.randn(4, 8, 512, 64)[:, :, ::2].transpose(1, 2), torch.randn(64, 2))

    peaks = []
    for fn, whole in ((work, G._WHOLE_OPS), (work, ()), (strided, G._WHOLE_OPS), (strided, ())):
        saved = G._WHOLE_OPS
        G._WHOLE_OPS = whole
        try:
            counter = G._LiveTensorBytes()
        finally:
            G._WHOLE_OPS = saved
        with torch.inference_mode(), counter.mode:
            out = fn()
        peaks.append(counter.peak)
    assert peaks[0] == peaks[1] > 0
    assert peaks[2] == peaks[3] and out.shape == (4, 256, 8, 2)
