"""The grading phase inside training: inference mode, the training's autocast, its own measured peak
(harness/memory/grading_phase.py)."""
from __future__ import annotations

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
