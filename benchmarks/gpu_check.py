"""GPU truth in one call: what has only run on CPU, measured on a lent GPU (docs/gpu_check.md).

    python benchmarks/gpu_check.py --wheels gpu-wheels --out "$OUT"     # on the GPU machine (≤ 8 min, one H100)
    python benchmarks/gpu_check.py --dry-run --out /tmp/check           # CPU, tiny configs, same code (CI)
    python benchmarks/gpu_check.py --markdown gpu_check.json            # the docs' table rows from a result

Sections, each in its own try (one failure keeps the others), the JSON rewritten atomically
after each (`$OUT/gpu_check.json`, or --out); no section starts after 420 s:

1. setup: the carried wheels (benchmarks/gpu_wheels.sh) installed with `pip --no-index` into a
   local folder put on sys.path and PYTHONPATH; the versions of what the harness imports.
2. models: random-initialised Gemma-3-270M (262k vocabulary) and Qwen3-0.6B from
   harness/model_configs/, their token ids set to the built-in tokenizer's, saved once with it.
3. train-and-grade, bf16 (`python -m harness train-and-grade`, a process each): Gemma full
   fine-tune, Qwen3 LoRA, 2 epochs of generated translation data, 200 graded items,
   `generation.batch_size: auto`; from results.json: per phase (training, grading generation,
   grading scoring) the measured peak against the preflight's estimate, and grading ≤ training.
4. out of memory: a grading batch the estimate puts at ≥ 2× the card (long prompts), graded
   through harness.grade.grade_task: the real CUDA OOM, the halving, the batch that worked.
5. `accelerate launch --num_processes 1` of a small train-and-grade suite.
6. engines (last: the most likely to be slow): padded, static and continuous generation of the
   same 200 items: items/s (median of the rounds, rotating order, after an untimed warm-up
   batch each) and greedy outputs identical to padded.

--dry-run shrinks everything (2 layers, 64 wide, 2,048-token vocabulary, a few items) and runs
on CPU, where nothing can run out of memory: section 4 then raises torch.OutOfMemoryError above
batch 3 from the model's generate (as tests/test_out_of_memory.py does) and says so (`simulated`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Nothing from the harness at module level: the carried wheels (pydantic, trl, ...) must be on
# sys.path first.
SCHEMA_VERSION = 1
RESULT_FILE = "gpu_check.json"
# harness.memory.compare's rows for the training job (the CUDA peaks on a GPU only)
TRAINING_ROWS = ["weights+gradients+optimizer", "activations", "logits", "peak_allocated", "peak_reserved", "nvml_used"]
IMPORTS = ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "sacrebleu", "rouge_score",
           "jsonschema", "pydantic", "datasketch", "orjson", "pyarrow", "pandas", "nltk"]


@dataclass
class ModelCase:
    name: str          # shipped config (harness/model_configs/)
    method: str        # full | lora


@dataclass
class CheckPlan:
    """Every size the check uses; --dry-run shrinks them, the code path stays."""
    dry_run: bool
    cases: list = field(default_factory=lambda: [ModelCase("google/gemma-3-270m", "full"),
                                                 ModelCase("Qwen/Qwen3-0.6B", "lora")])
    shrink: bool = False               # 2 layers × 64, vocabulary 2,048 (above the tokenizer's 1,024)
    train_items: int = 800
    train_batch: int = 16
    max_seq_len: int = 256
    epochs: int = 2
    graded_items: int = 200
    max_new_tokens: int = 48
    engine_rounds: int = 2
    engine_batch: int = 64
    oom_prompt_tokens: int = 1024      # long prompts: the prefill alone is far over the card
    oom_new_tokens: int = 4
    launch_items: int = 32
    timeout_s: int = 200               # per train-and-grade process
    budget_s: int = 420                # no section starts after this (the device command's limit: 540 s)

    @classmethod
    def for_mode(cls, dry_run: bool) -> "CheckPlan":
        if not dry_run:
            return cls(dry_run=False)
        return cls(dry_run=True, shrink=True, train_items=16, train_batch=8, max_seq_len=96, epochs=2,
                   graded_items=8, max_new_tokens=8, engine_rounds=1, engine_batch=4, oom_prompt_tokens=32,
                   oom_new_tokens=2, launch_items=8, timeout_s=300, budget_s=3600)


# --------------------------------------------------------------------------- sections
def install_wheels(wheels: Path, work: Path) -> dict:
    """Before anything imports torch (which imports typing_extensions, carried too)."""
    site = work / "site"
    files = sorted(str(p) for p in wheels.glob("*.whl"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *files], check=True)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"folder": str(wheels), "count": len(files), "seconds": round(time.perf_counter() - t0, 1),
            "bytes": sum(Path(f).stat().st_size for f in files)}


def section_setup(plan: CheckPlan, installed) -> dict:
    if isinstance(installed, BaseException):
        raise installed
    out: dict = {"wheels": installed}
    import importlib
    import importlib.metadata as md

    versions, missing = {}, {}
    for name in IMPORTS:
        try:
            importlib.import_module(name)
            versions[name] = md.version({"rouge_score": "rouge-score"}.get(name, name))
        except Exception as e:          # reported, not fatal: the sections that need it fail on their own
            missing[name] = f"{type(e).__name__}: {e}"
    import torch

    out.update(python=sys.version.split()[0], versions=versions, missing=missing,
               device=_device_name(), cuda=torch.version.cuda)
    return out


def section_models(plan: CheckPlan, work: Path) -> dict:
    """Random weights from the shipped configs, the built-in tokenizer; saved once, bf16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness import memory as M
    from harness.builtin import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny-translator"))
    out = {}
    for case in plan.cases:
        t0 = time.perf_counter()
        raw = {k: v for k, v in M.load_model_config(case.name).raw.items() if k != "torch_dtype"}
        if plan.shrink:
            raw.update(num_hidden_layers=2, hidden_size=64, intermediate_size=192, num_attention_heads=4,
                       num_key_value_heads=1, head_dim=16, vocab_size=2048)
            if raw.get("layer_types"):
                raw["layer_types"] = ["sliding_attention", "full_attention"]
            if "query_pre_attn_scalar" in raw:
                raw["query_pre_attn_scalar"] = 16
        # The tokenizer's ids, so generation stops at its end of turn and pads with its pad token.
        raw.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        cfg = M.ModelConfig(raw, "gpu_check", case.name, "-").to_transformers()
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        path = work / "models" / _slug(case.name)
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[case.name] = {"path": str(path), "parameters": sum(p.numel() for p in model.parameters()),
                          "vocab_size": cfg.vocab_size, "layers": cfg.num_hidden_layers,
                          "seconds": round(time.perf_counter() - t0, 1)}
        del model
    return out


def section_train_and_grade(plan: CheckPlan, work: Path, models: dict, case: ModelCase) -> dict:
    """One `harness train-and-grade` process; per phase the measured peak against the estimate."""
    suite = work / f"suite-{_slug(case.name)}.yaml"
    suite.write_text(_train_suite(plan, models[case.name]["path"], case))
    run = work / "runs" / _slug(case.name)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "-q", "train-and-grade", str(suite), "--run-dir", str(run),
                           "--overwrite", "--no-report", "--measure-memory"], capture_output=True, text=True, timeout=plan.timeout_s,
                          cwd=REPO, env=_env())
    out = {"suite": suite.read_text(), "exit_code": proc.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr[-3000:]
        return out
    results = json.loads((run / "results.json").read_text())
    m = results["models"][0]
    mem = m.get("memory") or {}
    grading = mem.get("grading") or {}
    cmp = mem.get("comparison") or {}
    phases = {f"training: {k}": cmp[k] for k in TRAINING_ROWS if k in cmp}
    for term in ("generation", "scoring"):
        est, meas = (grading.get("estimate") or {}).get(term), (grading.get("measured") or {}).get(term)
        phases[f"grading: {term}"] = {"estimate": est, "measured": meas,
                                      "ratio": round(meas / est, 4) if meas and est else None,
                                      "what": "the term's own peak (GradingProbe)"}
    # The training phase as the auto batch bounds grading: gradients + activations + logits.
    train_phase = [cmp.get(k, {}).get("measured") for k in ("gradients", "activations", "logits")]
    train_phase = sum(train_phase) if None not in train_phase else None
    grading_peak = max((v for v in (grading.get("measured") or {}).values() if v is not None), default=None)
    last = m["epochs"][-1]
    out.update(
        status=results.get("status"),
        epochs=[e["epoch"] for e in m["epochs"]],
        last_checkpoint=str(run / last["checkpoint"]) if last.get("checkpoint") else None,
        graded_items={t: r.get("n") for t, r in last["tasks"].items()},
        batch={t: r.get("batch") for t, r in last["tasks"].items()},
        grading_batch=grading.get("batch_size"), grading_batch_auto=grading.get("batch_size_auto"),
        grading_batch_why=grading.get("why"),
        phases=phases, peaks=mem.get("peaks"), peak_phase=mem.get("peak_phase"),
        training_phase_measured=train_phase, grading_measured=grading_peak,
        grading_le_training=None if train_phase is None or grading_peak is None else grading_peak <= train_phase,
        train_seconds=(m.get("train") or {}).get("seconds"),
        grading_seconds=[sum((e.get("grading_memory") or {}).get("seconds", {}).values()) for e in m["epochs"]],
        scores={t: {k: v.get("score") for k, v in r["metrics"].items()} for t, r in last["tasks"].items()},
    )
    return out


def section_engines(plan: CheckPlan, models: dict, results: dict) -> dict:
    """padded / static / continuous on the same items: items/s and greedy agreement with padded."""
    import sacrebleu
    import torch

    from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
    from harness.grade import load_tasks
    from harness.suite import parse_suite

    case = plan.cases[0]          # the full fine-tune: its checkpoint is a whole model
    trained = (results.get(f"train_and_grade:{case.name} {case.method}") or {}).get("last_checkpoint")
    path = trained or models[case.name]["path"]
    suite = parse_suite(_graded_suite(plan, path, plan.engine_batch))
    task = load_tasks(suite)[0]
    cuda = torch.cuda.is_available()
    model, tok = load_model_and_tokenizer(path, dtype="bfloat16" if cuda else "float32")
    backend = TransformersBackend(model, tok)
    engines = ["padded", "static", "continuous"]
    seconds: dict = {e: [] for e in engines}
    outputs: dict = {}
    errors: dict = {}
    for e in engines:                  # untimed warm-up: one batch each (kernels, allocator, static cache)
        try:
            backend.generate(task.examples[:plan.engine_batch], task.spec.generation.model_copy(update={"engine": e}))
        except Exception as exc:
            errors[e] = f"{type(exc).__name__}: {exc}"[:500]
    for r in range(plan.engine_rounds):
        for e in engines[r % 3:] + engines[:r % 3]:
            if e in errors:
                continue
            gen = task.spec.generation.model_copy(update={"engine": e})
            try:
                _sync()
                t0 = time.perf_counter()
                outputs[e] = backend.generate(task.examples, gen)
                _sync()
                seconds[e].append(time.perf_counter() - t0)
            except Exception as exc:
                errors[e] = f"{type(exc).__name__}: {exc}"[:500]
    n, refs = len(task.examples), [ex.reference for ex in task.examples]
    rows = []
    base = outputs.get("padded")
    for e in engines:
        if e in errors:
            rows.append({"engine": e, "error": errors[e]})
            continue
        t = statistics.median(seconds[e])
        same = sum(a.text == b.text for a, b in zip(outputs[e], base)) if base else None
        rows.append({"engine": e, "items": n, "seconds": round(t, 3), "items_per_s": round(n / t, 2),
                     "x_padded": round(statistics.median(seconds["padded"]) / t, 3) if base else None,
                     "identical": same, "bleu": round(sacrebleu.corpus_bleu([o.text for o in outputs[e]], [refs]).score, 2),
                     "output_tokens": sum(o.output_tokens for o in outputs[e])})
    del backend, model
    _free()
    out = {"model": path, "trained": bool(trained), "batch_size": plan.engine_batch,
           "max_new_tokens": plan.max_new_tokens, "rounds": plan.engine_rounds, "rows": rows}
    if errors:                         # the other engines' rows are kept; the section counts as failed
        out["failed"] = "; ".join(f"{e}: {msg}" for e, msg in errors.items())
    return out


def section_out_of_memory(plan: CheckPlan, work: Path, models: dict) -> dict:
    """A grading batch the estimate puts far over the card; grade_task halves it until it fits."""
    import torch

    from harness import memory as M
    from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
    from harness.grade import grade_task, load_tasks
    from harness.suite import parse_suite

    case = plan.cases[-1]
    path = models[case.name]["path"]
    cuda = torch.cuda.is_available()
    model, tok = load_model_and_tokenizer(path, dtype="bfloat16" if cuda else "float32")
    backend = TransformersBackend(model, tok)
    per_100 = len(tok("maison " * 100, add_special_tokens=False)["input_ids"]) / 100
    prompt = "Translate English to French:\n" + "maison " * max(1, int(plan.oom_prompt_tokens / per_100))
    prompt_len = len(tok(prompt)["input_ids"])
    card = torch.cuda.mem_get_info()[1] if cuda else None
    mc = M.load_model_config(path)
    est_plan = M.make_plan(mc, train=False, device="cuda" if cuda else "cpu", weight_dtype="bf16" if cuda else "fp32",
                           eval_dtype="bf16" if cuda else "fp32", eval_batch_size=1, eval_prompt_len=prompt_len + 8,
                           eval_new_tokens=plan.oom_new_tokens, eval_score_len=prompt_len + 16, eval_answer_len=8)
    requested = 16
    if cuda:                                  # the smallest power of 2 the estimate puts at ≥ 2× the card
        while M.grading_bytes(est_plan, requested)["generation"] < 2 * card and requested < 65536:
            requested *= 2
    items = work / "oom-items.jsonl"
    with items.open("w") as f:
        for i in range(requested):
            f.write(json.dumps({"id": f"oom-{i}", "messages": [{"role": "user", "content": prompt},
                                                              {"role": "assistant", "content": "la maison"}]}) + "\n")
    suite = parse_suite(f"name: oom\nmodels: [{{path: {path}}}]\ntasks:\n  - name: long\n"
                        f"    data: {{path: {items}}}\n    metrics: [chrf]\n"
                        f"    generation: {{max_new_tokens: {plan.oom_new_tokens}, batch_size: {requested}}}\n"
                        f"bootstrap: {{samples: 20}}\n")
    task = load_tasks(suite)[0]
    simulated = not cuda
    if simulated:                              # CPU has no allocator limit to hit: the dry run's stand-in
        real_generate = model.generate

        def generate(*, input_ids, **kw):
            if len(input_ids) > 3:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated by the dry run)")
            return real_generate(input_ids=input_ids, **kw)
        model.generate = generate
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    record, _ = grade_task(backend, task, suite.bootstrap)
    seconds = time.perf_counter() - t0
    used = record["batch"]["used"]
    out = {"simulated": simulated, "model": case.name, "prompt_tokens": prompt_len, "items": requested,
           "card_bytes": card, "batch": record["batch"], "seconds": round(seconds, 1),
           "estimate_requested": M.grading_bytes(est_plan, requested)["generation"],
           "estimate_used": M.grading_bytes(est_plan, used)["generation"],
           "peak_allocated": torch.cuda.max_memory_allocated() if cuda else None}
    del backend, model
    _free()
    return out


def section_accelerate_launch(plan: CheckPlan, work: Path) -> dict:
    """`accelerate launch --num_processes 1` of a small train-and-grade suite (built-in model)."""
    import torch

    suite = work / "suite-launch.yaml"
    precision = "bf16" if torch.cuda.is_available() else "fp32"
    suite.write_text(f"""name: launch
models: [{{name: tiny, path: "builtin:tiny-translator"}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: {plan.launch_items}}}}}]
  epochs: 1
  batch_size: 8
  max_seq_len: 96
  precision: {precision}
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: {plan.launch_items // 2}}}}}
    metrics: [bleu, chrf, perplexity]
    generation: {{max_new_tokens: 16}}
bootstrap: {{samples: 20}}
""")
    run = work / "runs" / "launch"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "harness", "-q", "train-and-grade", str(suite),
           "--run-dir", str(run), "--overwrite", "--no-report"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=plan.timeout_s, cwd=REPO, env=_env())
    out = {"command": " ".join(cmd[1:]), "exit_code": proc.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr[-3000:]
        return out
    results = json.loads((run / "results.json").read_text())
    m = results["models"][0]
    # results.json names the processes only when there are several (harness/pipeline.py)
    out.update(status=results.get("status"), processes=results.get("environment", {}).get("processes", 1),
               epochs=[e["epoch"] for e in m["epochs"]],
               device=results.get("environment", {}).get("device"))
    return out


# --------------------------------------------------------------------------- suites
def _graded_task(plan: CheckPlan, batch) -> str:
    return (f"  - name: en-fr\n"
            f"    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: {plan.graded_items}}}}}\n"
            f"    metrics: [bleu, chrf, perplexity]\n"
            f"    generation: {{max_new_tokens: {plan.max_new_tokens}, batch_size: {batch}}}\n")


def _graded_suite(plan: CheckPlan, path: str, batch) -> str:
    return f"name: engines\nmodels: [{{path: {path}}}]\ntasks:\n{_graded_task(plan, batch)}bootstrap: {{samples: 20}}\n"


def _train_suite(plan: CheckPlan, path: str, case: ModelCase) -> str:
    import torch

    precision = "bf16" if torch.cuda.is_available() else "fp32"
    return (f"name: gpu-check-{_slug(case.name)}\nmodels: [{{name: {_slug(case.name)}, path: {path}}}]\n"
            f"train:\n  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, "
            f"n: {plan.train_items}, seed: 1}}}}]\n"
            f"  method: {case.method}\n  epochs: {plan.epochs}\n  lr: 1.0e-4\n  batch_size: {plan.train_batch}\n"
            f"  max_seq_len: {plan.max_seq_len}\n  precision: {precision}\n  save_checkpoints: true\n"
            f"tasks:\n{_graded_task(plan, 'auto')}bootstrap: {{samples: 50}}\n")


# --------------------------------------------------------------------------- report
def _gib(b) -> str:
    if b is None:
        return "—"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(b) >= size:
            return f"{b / size:.2f} {unit}"
    return f"{b} B"


def markdown(result: dict) -> str:
    """The docs' rows (docs/memory.md and docs/generation.md, "Measured on GPU")."""
    s = result.get("sections", {})
    env = s.get("setup", {}).get("result", {})
    lines = [f"Device: {env.get('device')}; torch {env.get('versions', {}).get('torch')}, CUDA {env.get('cuda')}, "
             f"transformers {env.get('versions', {}).get('transformers')}, trl {env.get('versions', {}).get('trl')}; "
             f"{result.get('finished_at', '?')}{' (DRY RUN on CPU: not GPU numbers)' if result.get('dry_run') else ''}.",
             "", "Memory (train-and-grade, bf16, generation.batch_size: auto; ratio = measured / estimate):", "",
             "| model | phase | estimate | measured | ratio | grading batch | grading ≤ training |",
             "|---|---|---|---|---|---|---|"]
    for key, sec in s.items():
        if not key.startswith("train_and_grade") or "result" not in sec:
            continue
        r = sec["result"]
        for phase, row in (r.get("phases") or {}).items():
            lines.append(f"| {key.split(':', 1)[1]} | {phase} | {_gib(row['estimate'])} | {_gib(row['measured'])} | "
                         f"{row['ratio'] if row['ratio'] is not None else '—'} | {r.get('grading_batch')} | "
                         f"{r.get('grading_le_training')} |")
        if "phases" not in r:
            lines.append(f"| {key.split(':', 1)[1]} | failed (exit {r.get('exit_code')}) | | | | | |")
    oom = s.get("out_of_memory", {}).get("result")
    if oom:
        b = oom["batch"]
        lines += ["", f"Out of memory{' (simulated)' if oom['simulated'] else ''}: requested batch {b['requested']} "
                  f"({oom['items']} items × {oom['prompt_tokens']} prompt tokens, estimate {_gib(oom['estimate_requested'])} "
                  f"on a {_gib(oom['card_bytes'])} card) → worked at {b['used']} after {b['halvings']} halvings "
                  f"(estimate there {_gib(oom['estimate_used'])}, peak allocated over the attempts {_gib(oom['peak_allocated'])}), "
                  f"{oom['seconds']} s."]
    eng = s.get("engines", {}).get("result")
    if eng:
        lines += ["", f"Generation engines ({eng['rows'][0].get('items', '?')} items, greedy, max_new_tokens "
                  f"{eng['max_new_tokens']}, batch_size {eng['batch_size']}, median of {eng['rounds']} rounds, "
                  f"{'trained' if eng['trained'] else 'random-init'} model):", "",
                  "| engine | items/s | × padded | identical greedy outputs | BLEU |", "|---|---|---|---|---|"]
        for row in eng["rows"]:
            if "error" in row:
                lines.append(f"| {row['engine']} | failed: {row['error'][:80]} | | | |")
            else:
                lines.append(f"| {row['engine']} | {row['items_per_s']} | {row['x_padded']} | "
                             f"{row['identical']}/{row['items']} | {row['bleu']} |")
    la = s.get("accelerate_launch", {}).get("result")
    if la:
        lines += ["", f"accelerate launch --num_processes 1: exit {la['exit_code']}, status {la.get('status')}, "
                  f"processes {la.get('processes')}, {la['seconds']} s."]
    failed = [k for k, v in s.items() if "error" in v]
    if failed:
        lines += ["", "Failed sections: " + ", ".join(f"{k} ({s[k]['error'].splitlines()[-1][:120]})" for k in failed)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver
def run_check(plan: CheckPlan, out_dir: Path, installed, work: Path) -> dict:
    result = {"schema_version": SCHEMA_VERSION, "dry_run": plan.dry_run, "plan": asdict(plan), "sections": {}}
    path = out_dir / RESULT_FILE
    start = time.perf_counter()

    def record(name: str, fn, *args):
        t0 = time.perf_counter()
        print(f"[gpu_check] {name} ...", flush=True)
        if t0 - start > plan.budget_s:   # a section begun now could be killed with the device command
            entry = {"error": f"skipped: {t0 - start:.0f} s spent, over the check's budget of {plan.budget_s} s"}
        else:
            entry = _run_section(fn, args)
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        result["sections"][name] = entry
        result["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        _write(path, result)
        print(f"[gpu_check] {name}: {'FAILED' if 'error' in entry else 'ok'} in {entry['seconds']} s", flush=True)
        return entry.get("result")

    record("setup", section_setup, plan, installed)
    models = record("models", section_models, plan, work) or {}
    trained = {}
    for case in plan.cases:
        name = f"train_and_grade:{case.name} {case.method}"
        trained[name] = record(name, section_train_and_grade, plan, work, models, case)
    record("out_of_memory", section_out_of_memory, plan, work, models)
    record("accelerate_launch", section_accelerate_launch, plan, work)
    record("engines", section_engines, plan, models, trained)     # last: the one most likely to be slow
    return result


def _run_section(fn, args) -> dict:
    try:
        entry = {"result": fn(*args)}
    except Exception:                  # one section's failure keeps the others
        return {"error": traceback.format_exc()[-4000:]}
    if isinstance(entry["result"], dict) and entry["result"].get("failed"):
        entry["error"] = entry["result"]["failed"]
    return entry


def _write(path: Path, result: dict) -> None:
    try:
        from harness.results import write_json
    except Exception:                  # the harness itself failed to import: still keep the record
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=str))
        os.replace(tmp, path)
        return
    write_json(path, result)


def _env() -> dict:
    pp = os.pathsep.join(p for p in [os.environ.get("PYTHONPATH", ""), str(REPO)] if p)
    return {**os.environ, "PYTHONPATH": pp, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.mem_get_info()[1] / 2**30:.1f} GiB)"
    return "cpu"


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _slug(name: str) -> str:
    return name.split("/")[-1].lower()


def _sum(d: dict):
    return sum(v for v in d.values() if v is not None) if any(v is not None for v in d.values()) else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny configs on CPU, the same code path (seconds)")
    ap.add_argument("--wheels", type=Path, help="folder of carried wheels to install offline first (gpu_wheels.sh)")
    ap.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                    help=f"folder for {RESULT_FILE} (default: $OUT, else a temporary folder)")
    ap.add_argument("--work", type=Path, help="scratch folder for models and runs (default: a temporary folder)")
    ap.add_argument("--markdown", type=Path, metavar="JSON", help="print the Markdown rows of a result and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        try:
            print(markdown(json.loads(args.markdown.read_text())))
        except (OSError, ValueError) as e:
            print(f"gpu_check.py: --markdown {args.markdown}: not a readable gpu_check JSON ({e})", file=sys.stderr)
            return 2
        return 0
    if args.wheels and not list(args.wheels.glob("*.whl")):
        print(f"gpu_check.py: --wheels {args.wheels}: no .whl files there: make them with "
              "benchmarks/gpu_wheels.sh and carry the folder", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    out = args.out or work
    plan = CheckPlan.for_mode(args.dry_run)
    installed = None
    if args.wheels:
        try:
            installed = install_wheels(args.wheels, work)
        except Exception as e:         # recorded by the setup section; the others run without them
            installed = e
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check.py: no CUDA device: run with --dry-run on CPU", file=sys.stderr)
            return 2
    result = run_check(plan, out, installed, work)
    print(markdown(result))
    print(f"\nresults: {out / RESULT_FILE}")
    return 0 if not any("error" in v for v in result["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
