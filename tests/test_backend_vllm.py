"""Orchestration of the vLLM backend, tested against a STAND-IN for vLLM (vLLM cannot run on
these CPU machines): one engine per run, one LoRA request per adapter with distinct ids,
full fine-tunes reloaded in place, sleep between gradings, sampling parameters from the
GenerationSpec, results mapped back to items in order.

`StandInVLLM` below is not vLLM and proves nothing about vLLM's own behaviour: it records the
calls the harness makes on vLLM's documented API (LLM, SamplingParams, LoRARequest, sleep,
wake_up, collective_rpc, reset_prefix_cache) and answers each prompt with tokens derived from
the prompt and from the weights/adapter it currently holds, so a wrong adapter, a missing
reload or a shuffled answer shows in the graded rows.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.backends import vllm_backend
from harness.backends.vllm_backend import VLLMBackend, import_vllm, lora_rank_for
from harness.errors import UserError
from harness.messages import Example
from harness.results import read_jsonl
from harness.suite import GenerationSpec, ModelSpec, parse_suite


# ----------------------------------------------------------------------------- the stand-in
@dataclass
class StandInSamplingParams:
    kwargs: dict

    def __init__(self, **kwargs):
        self.kwargs = kwargs


@dataclass
class StandInLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass
class StandInLLM:
    """Records calls; answers deterministically from (prompt, weights, adapter)."""
    kwargs: dict
    tokenizer: object
    calls: list = field(default_factory=list)
    weights: str = ""
    sleeping: int = 0
    instances: list = field(default_factory=list)

    def __init__(self, tokenizer, registry, **kwargs):
        self.kwargs, self.tokenizer, self.calls = kwargs, tokenizer, []
        self.weights = kwargs["model"]
        self.pending_model = None
        self.sleeping = 0
        registry.append(self)

    def get_tokenizer(self):
        return self.tokenizer

    def sleep(self, level):
        self.calls.append(("sleep", level))
        self.sleeping = level
        if level == 2:
            self.weights = None

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags) if tags else None))
        if tags is None or "kv_cache" in tags:
            self.sleeping = 0

    def collective_rpc(self, method, args=()):
        self.calls.append(("collective_rpc", method, args))
        if method == "update_config":
            self.pending_model = args[0]["model_config"]["model"]
        elif method == "reload_weights":
            self.weights = self.pending_model

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        assert not self.sleeping, "generate called on a sleeping engine"
        assert self.weights, "generate called with no weights loaded"
        self.calls.append(("generate", len(prompts), lora_request, params.kwargs))
        state = f"{self.weights}|{lora_request.lora_path if lora_request else ''}"
        outs = []
        for i, p in enumerate(prompts):
            ids, reason = answer(p["prompt_token_ids"], state, params.kwargs, self.tokenizer)
            logprobs = [None] + [{t: SimpleNamespace(logprob=-0.25 * (1 + k % 3))}
                                 for k, t in enumerate(p["prompt_token_ids"][1:], 1)]
            outs.append(SimpleNamespace(request_id=str(i), prompt_token_ids=list(p["prompt_token_ids"]),
                                        prompt_logprobs=logprobs,
                                        outputs=[SimpleNamespace(token_ids=ids, finish_reason=reason)]))
        return outs


def answer(prompt: list[int], state: str, params: dict, tokenizer) -> tuple[list[int], str]:
    """The stand-in's 'generation': a slice of the prompt chosen by the state; some stop."""
    h = zlib.crc32(state.encode()) + sum(prompt)
    content = [t for t in prompt if t not in tokenizer.all_special_ids]
    ids = content[h % 5: h % 5 + 3 + h % 4]
    if h % 3 == 0 and len(ids) < params["max_tokens"]:
        return ids + [params["stop_token_ids"][0]], "stop"
    return (ids * params["max_tokens"])[: params["max_tokens"]], "length"


def stand_in_vllm(tokenizer):
    registry: list[StandInLLM] = []
    module = SimpleNamespace(LLM=lambda **kw: StandInLLM(tokenizer, registry, **kw),
                             SamplingParams=StandInSamplingParams, LoRARequest=StandInLoRARequest)
    return module, registry


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tokenizer():
    from harness.builtin import train_tokenizer

    return train_tokenizer(["The black cat eats the red apple.", "Le chat noir mange la pomme rouge.",
                            "A dog on the table.", "Un chien sur la table."] * 30, 300)


def _examples(n=7):
    sources = ["A dog.", "The black cat eats the red apple.", "Un chien.", "Le chat noir.",
               "The red apple.", "Un chien sur la table.", "A cat on the table."]
    return [Example(id=str(i), messages=[{"role": "user", "content": sources[i % len(sources)] + " " * (i // 7)},
                                         {"role": "assistant", "content": "Un chien."}]) for i in range(n)]


def _adapter(tmp_path: Path, name: str, r: int) -> str:
    d = tmp_path / name
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": r}))
    return str(d)


# ----------------------------------------------------------------------------- unit
def test_missing_vllm_is_one_clear_line():
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(UserError) as err:
        import_vllm()
    assert str(err.value) == "backend vllm is not installed: pip install 'harness[vllm]' (needs CUDA)"


def test_vllm_is_not_imported_at_module_level():
    src = Path(vllm_backend.__file__).read_text()
    top = [line for line in src.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top if "vllm" in line.split()[1]]


def test_sampling_params_and_results_in_item_order(tokenizer):
    module, engines = stand_in_vllm(tokenizer)
    backend = VLLMBackend("/models/base", vllm=module)
    gen = GenerationSpec(max_new_tokens=6, batch_size=4)
    examples = _examples(7)
    got = backend.generate(examples, gen)
    (_, n, lora, params), = [c for c in engines[0].calls if c[0] == "generate"]
    assert n == 7 and lora is None
    assert params == {"max_tokens": 6, "stop_token_ids": backend.eot, "temperature": 0.0, "top_p": 1.0,
                      "skip_special_tokens": True}
    from harness.chat import prompt_ids

    for ex, g in zip(examples, got):   # each answer is the one computed for this item's own prompt
        p = prompt_ids(tokenizer, ex.prompt_messages)
        ids, reason = answer(p, "/models/base|", params, tokenizer)
        kept = ids[:-1] if reason == "stop" else ids
        assert g.text == tokenizer.decode(kept, skip_special_tokens=True).strip()
        assert g.finish_reason == ("eos" if reason == "stop" else "length")
        assert g.output_tokens == len(ids) and g.prompt_tokens == len(p)
    assert {g.finish_reason for g in got} == {"eos", "length"}
    sampled = GenerationSpec(max_new_tokens=6, do_sample=True, temperature=0.7, top_p=0.9, seed=5)
    backend.generate(examples[:1], sampled)
    assert engines[0].calls[-1][3]["temperature"] == 0.7 and engines[0].calls[-1][3]["top_p"] == 0.9
    assert engines[0].calls[-1][3]["seed"] == 5    # sampling is seeded: two gradings agree


def test_reference_nll_reads_prompt_logprobs_of_assistant_tokens(tokenizer):
    from harness.chat import tokenize_conversation

    module, _ = stand_in_vllm(tokenizer)
    backend = VLLMBackend("/models/base", vllm=module)
    ex = _examples(1)[0]
    (nll, n), = backend.reference_nll([ex], batch_size=4)
    t = tokenize_conversation(tokenizer, ex.messages, 512)
    positions = [k for k in range(t.prompt_len, len(t.input_ids)) if t.labels[k] != -100]
    assert n == len(positions) > 0
    assert nll == pytest.approx(sum(0.25 * (1 + k % 3) for k in positions))


def test_adapters_become_lora_requests_with_distinct_ids(tokenizer, tmp_path):
    module, engines = stand_in_vllm(tokenizer)
    a, b = _adapter(tmp_path, "a", 4), _adapter(tmp_path, "b", 16)
    backend = VLLMBackend.for_models([(ModelSpec(path="/m"), "/m"), (ModelSpec(path="/m", adapter=a), "/m"),
                                      (ModelSpec(path="/m", adapter=b), "/m")], vllm=module)
    assert engines[0].kwargs["enable_lora"] and engines[0].kwargs["max_lora_rank"] == 16
    seen = []
    for adapter in (None, a, b, a):
        backend.select("/m", adapter)
        backend.generate(_examples(2), GenerationSpec(max_new_tokens=4))
        seen.append(engines[0].calls[-1][2])
    assert seen[0] is None
    assert [(r.lora_path, r.lora_int_id) for r in seen[1:]] == [(a, 1), (b, 2), (a, 1)]
    assert len(engines) == 1 and not [c for c in engines[0].calls if c[0] == "collective_rpc"]


def test_full_checkpoints_reload_in_place_only_when_they_change(tokenizer):
    module, engines = stand_in_vllm(tokenizer)
    backend = VLLMBackend("/run/epoch-0", vllm=module)
    for path in ("/run/epoch-0", "/run/epoch-1", "/run/epoch-1", "/run/epoch-2"):
        backend.select(path, None)
        backend.generate(_examples(1), GenerationSpec(max_new_tokens=4))
    rpc = [c for c in engines[0].calls if c[0] in ("collective_rpc", "reset_prefix_cache")]
    assert rpc == [("collective_rpc", "update_config", ({"model_config": {"model": "/run/epoch-1"}},)),
                   ("collective_rpc", "reload_weights", ()), ("reset_prefix_cache",),
                   ("collective_rpc", "update_config", ({"model_config": {"model": "/run/epoch-2"}},)),
                   ("collective_rpc", "reload_weights", ()), ("reset_prefix_cache",)]
    assert len(engines) == 1 and engines[0].weights == "/run/epoch-2"


def test_sleep_between_gradings_full_and_lora(tokenizer):
    module, engines = stand_in_vllm(tokenizer)
    full = VLLMBackend.for_training(ModelSpec(path="/b"), "/b", "full", 16, 0.3, vllm=module)
    full.pause_for_training("full")
    full.grade_checkpoint("/run/ckpt-1", "full")
    full.generate(_examples(1), GenerationSpec(max_new_tokens=3))
    assert engines[0].kwargs == {"model": "/b", "dtype": "auto", "gpu_memory_utilization": 0.3,
                                 "enable_sleep_mode": True}
    assert [c[:2] for c in engines[0].calls[:-1]] == [
        ("sleep", 2), ("wake_up", ("weights",)), ("collective_rpc", "update_config"),
        ("collective_rpc", "reload_weights"), ("reset_prefix_cache",), ("wake_up", ("kv_cache",))]

    lora = VLLMBackend.for_training(ModelSpec(path="/b"), "/b", "qlora", 12, 0.3, vllm=module)
    assert engines[1].kwargs["quantization"] == "bitsandbytes" and engines[1].kwargs["max_lora_rank"] == 16
    lora.pause_for_training("qlora")
    lora.grade_checkpoint("/run/ckpt-1", "qlora")
    lora.generate(_examples(1), GenerationSpec(max_new_tokens=3))
    assert [c[:2] for c in engines[1].calls[:-1]] == [("sleep", 1), ("wake_up", None)]
    assert engines[1].calls[-1][2].lora_path == "/run/ckpt-1"


def test_lora_rank_rounds_up_to_what_vllm_accepts():
    assert [lora_rank_for([r]) for r in (1, 8, 9, 33, 256)] == [8, 8, 16, 64, 256]


def test_grading_backend_is_validated_at_load():
    from harness.suite import SuiteError

    base = "name: t\nmodels: [{path: builtin:tiny-translator}]\ntasks: [{name: x, data: {synthetic: {n: 1}}}]\n"
    assert parse_suite(base + "grading: {backend: vllm}").grading.backend == "vllm"
    with pytest.raises(SuiteError, match=r"grading.backend.*'transformers' or 'vllm'"):
        parse_suite(base + "grading: {backend: openai}", "s.yaml")
    with pytest.raises(SuiteError, match=r"s.yaml:\d+: field 'tasks.0.generation.engine'"):
        parse_suite("name: t\nmodels: [{path: builtin:tiny-translator}]\ngrading: {backend: vllm}\n"
                    "tasks: [{name: x, data: {synthetic: {n: 1}}, generation: {engine: continuous}}]\n", "s.yaml")


# ----------------------------------------------------------------------------- through the pipeline
SUITE = """
name: tiny
models: [{{name: tiny, path: {model}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 32}}}}]
  method: {method}
  epochs: 2
  lr: 2.0e-3
  batch_size: 16
  max_seq_len: 96
  lora: {{r: 4}}
  save_checkpoints: {save}
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 6}}}}
    metrics: [bleu, perplexity]
    generation: {{max_new_tokens: 8}}
grading: {{backend: vllm}}
bootstrap: {{samples: 0}}
"""


@pytest.mark.parametrize("method,save", [("lora", "true"), ("full", "false")])
def test_train_and_grade_uses_one_engine_for_every_epoch(tiny_model_dir, tiny_model_and_tokenizer, tmp_path,
                                                          monkeypatch, method, save):
    from harness.chat import prompt_ids
    from harness.grade import load_tasks
    from harness.pipeline import train_and_grade

    tok = tiny_model_and_tokenizer[1]
    module, engines = stand_in_vllm(tok)
    monkeypatch.setattr(vllm_backend, "import_vllm", lambda: module)
    suite = parse_suite(SUITE.format(model=tiny_model_dir, method=method, save=save), base_dir=tmp_path)
    results, run = train_and_grade(suite, log=lambda m: None, run_dir=str(tmp_path / "run"))

    assert len(engines) == 1, "one engine for the whole run"
    engine = engines[0]
    assert engine.kwargs["model"] == str(tiny_model_dir) and engine.kwargs["enable_sleep_mode"]
    epochs = results["models"][0]["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    gens = [c for c in engine.calls if c[0] == "generate" and c[3]["max_tokens"] == 8]
    assert len(gens) == 3
    ckpts = [str(run.checkpoint_path("tiny", e)) for e in (1, 2)]
    if method == "lora":   # epoch 0 is the bare base; then one LoRA request per epoch, distinct ids
        assert gens[0][2] is None
        assert [(g[2].lora_path, g[2].lora_int_id) for g in gens[1:]] == [(ckpts[0], 1), (ckpts[1], 2)]
        assert not [c for c in engine.calls if c[0] == "collective_rpc"]
        assert [c for c in engine.calls if c[0] == "sleep"] == [("sleep", 1)] * 3
    else:                  # each epoch's weights reloaded into the running engine, base never re-created
        assert all(g[2] is None for g in gens)
        updates = [c[2][0]["model_config"]["model"] for c in engine.calls if c[:2] == ("collective_rpc", "update_config")]
        assert updates == ckpts
        assert [c for c in engine.calls if c[0] == "sleep"] == [("sleep", 2)] * 3
        assert not any(Path(c).exists() for c in ckpts), "save_checkpoints: false leaves no checkpoint behind"
    # every graded row holds the answer the engine gave for THAT item's prompt at THAT epoch
    task = load_tasks(suite)[0]
    params = gens[0][3]
    states = [f"{tiny_model_dir}|"] + [f"{tiny_model_dir}|{c}" if method == "lora" else f"{c}|" for c in ckpts]
    for e, state in zip(epochs, states):
        rows = read_jsonl(run.root / e["tasks"]["en-fr"]["samples"])
        assert [r["id"] for r in rows] == [ex.id for ex in task.examples]
        for ex, row in zip(task.examples, rows):
            ids, reason = answer(prompt_ids(tok, ex.prompt_messages), state, params, tok)
            kept = ids[:-1] if reason == "stop" else ids
            assert row["output"] == tok.decode(kept, skip_special_tokens=True).strip()
        assert e["tasks"]["en-fr"]["loss"] is not None


def test_grade_several_checkpoints_and_adapters_with_one_engine(tiny_model_dir, tiny_model_and_tokenizer,
                                                                 tmp_path, monkeypatch):
    import shutil

    from harness.pipeline import grade_models

    tok = tiny_model_and_tokenizer[1]
    module, engines = stand_in_vllm(tok)
    monkeypatch.setattr(vllm_backend, "import_vllm", lambda: module)
    second = tmp_path / "second"
    shutil.copytree(tiny_model_dir, second)
    adapter = _adapter(tmp_path, "adapter", 8)
    suite = parse_suite(SUITE.format(model=tiny_model_dir, method="full", save="true"), base_dir=tmp_path)
    models = [ModelSpec(name="a", path=str(tiny_model_dir)), ModelSpec(name="b", path=str(tiny_model_dir), adapter=adapter),
              ModelSpec(name="c", path=str(second))]
    results, run = grade_models(suite, models, log=lambda m: None, run_dir=str(tmp_path / "g"), backend_name="vllm")
    assert len(engines) == 1 and engines[0].kwargs["enable_lora"]
    gens = [c for c in engines[0].calls if c[0] == "generate" and c[3]["max_tokens"] == 8]
    assert [g[2].lora_path if g[2] else None for g in gens] == [None, adapter, None]
    updates = [c[2][0]["model_config"]["model"] for c in engines[0].calls if c[:2] == ("collective_rpc", "update_config")]
    assert updates == [str(second)]
    assert [m["name"] for m in results["models"]] == ["a", "b", "c"]
