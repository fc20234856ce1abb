"""The harness's own overhead around the model, as ratios measured in one run (CPU).

1. **generation phase**: `harness grade`'s path for one task (`grade_task` on a fresh
   TransformersBackend inside `grading_phase`; on CPU the memory is not counted unless asked)
   against a plain `model.generate` loop over the same batches (the same prompt token ids,
   sorted by length, left-padded, greedy); beside it `--measure-memory` (the representative batch
   counted), every batch counted, and the counted batch alone with and without counting (the
   probe's cost). Rounds are interleaved and medians printed; the outputs are compared.
2. **start-up**: the wall time of whole processes, `harness --help`, `schema`, `gate`, `report`,
   `data check` of a file, `grade --help`, next to a bare `python -c pass` and `import torch`.
3. **grading / training** on the default suite (suites/translation.yaml; --quick: a smaller copy):
   `train-and-grade` run in this process, each epoch's grading timed (TrainingJob.grade); the
   training time is the trainer's own (`models[i].train.seconds`) less the gradings inside it.

4. with `--lm-eval BIN` (lm-evaluation-harness's `lm_eval` command, in its own environment):
   whole processes, `harness grade` against `lm_eval --model hf` on the same items, the same
   checkpoint (the built-in model), the same chat-templated prompts, greedy, batch 50,
   64 new tokens, BLEU; paired rounds, medians, and the outputs compared item by item.

    PYTHONPATH=. python benchmarks/grading_overhead.py [--quick] [--rounds 3] [--skip-train] [--lm-eval BIN]

The job of part 1 is the issue's: 1,000 en→fr items (--quick: 200), BLEU only, batch 50,
`max_new_tokens: 64`, the built-in model. The machine may be shared: each part interleaves its
variants round by round, and only ratios of the same round's medians are printed as results.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

GRADE_SUITE = """name: grading-overhead
models:
  - {{name: tiny-translator, path: builtin:tiny-translator}}
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: {n}}}}}
    metrics: [bleu]
    generation: {{max_new_tokens: 64, batch_size: 50}}
bootstrap: {{samples: 1000, seed: 0}}
"""


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------- 1. generation phase
def plain_generate(model, tok, prompts: list[list[int]], batch: int, new_tokens: int, eot: list[int]) -> list[str]:
    """The reference: a bare `model.generate` loop over the sorted, left-padded batches."""
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    pad = tok.pad_token_id
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in idx])
            attn = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx])
            new = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=new_tokens, do_sample=False,
                                 eos_token_id=eot, pad_token_id=pad)[:, width:].tolist()
            for row, i in enumerate(idx):
                stop = next((k for k, t in enumerate(new[row]) if t in eot), len(new[row]))
                out[i] = tok.decode(new[row][:stop], skip_special_tokens=True).strip()
    return out


def generation_phase(n: int, rounds: int) -> None:
    from harness import memory as M
    from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
    from harness.builtin import resolve_model_path
    from harness.chat import end_of_turn_ids, prompt_ids
    from harness.grade import grade_task, load_tasks
    from harness.suite import parse_suite

    suite = parse_suite(GRADE_SUITE.format(n=n))
    task = load_tasks(suite)[0]
    model, tok = load_model_and_tokenizer(resolve_model_path("builtin:tiny-translator"))
    model.eval()
    eot = end_of_turn_ids(tok)
    prompts = [prompt_ids(tok, ex.prompt_messages) for ex in task.examples]
    gen = task.spec.generation
    times: dict[str, list[float]] = {"plain generate loop": [], "harness: generation": [],
                                     "harness: grade_task (+ BLEU, bootstrap)": [],
                                     "harness: generation, --measure-memory": [],
                                     "every batch counted": []}
    rep_exs = representative_examples(task.examples, prompts, gen.batch_size)
    alone: dict[str, list[float]] = {"counted": [], "uncounted": []}
    same = None
    plain_generate(model, tok, prompts[:gen.batch_size], gen.batch_size, gen.max_new_tokens, eot)   # warm-up
    for r in range(rounds):
        t0 = time.perf_counter()
        plain = plain_generate(model, tok, prompts, gen.batch_size, gen.max_new_tokens, eot)
        times["plain generate loop"].append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        with M.grading_phase("cpu", measure=False) as off:   # what `harness grade` runs on CPU: a fresh backend
            record, rows = grade_task(off.wrap(TransformersBackend(model, tok, device="cpu")), task, suite.bootstrap)
        times["harness: grade_task (+ BLEU, bootstrap)"].append(time.perf_counter() - t0)
        times["harness: generation"].append(off.seconds["generation"])
        same = sum(a == row["output"] for a, row in zip(plain, rows))

        with M.grading_phase("cpu") as probe:     # --measure-memory: the representative batch counted
            probe.wrap(TransformersBackend(model, tok, device="cpu")).generate(task.examples, gen)
        times["harness: generation, --measure-memory"].append(probe.seconds["generation"])

        every = M.GradingProbe("cpu")             # the former policy: the whole term counted
        t0 = time.perf_counter()
        with M.grading_phase("cpu", one_batch=False):
            every.wrap(TransformersBackend(model, tok, device="cpu")).generate(task.examples, gen)
        times["every batch counted"].append(time.perf_counter() - t0)

        backend = TransformersBackend(model, tok, device="cpu")   # the counted batch alone, with and without
        backend.generate(rep_exs, gen)
        for name, measure in (("uncounted", False), ("counted", True)):
            with M.grading_phase("cpu", measure=measure, one_batch=False) as alone_probe:
                alone_probe.wrap(backend).generate(rep_exs, gen)
            alone[name].append(alone_probe.seconds["generation"])
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    base = median(times["plain generate loop"])
    print(f"\n1. generation phase: {n} en→fr items, batch {gen.batch_size}, max_new_tokens {gen.max_new_tokens}, "
          f"BLEU only (medians of {rounds} interleaved rounds)")
    print(f"   {'':42} {'seconds':>8} {'× plain loop':>13}")
    for k, v in times.items():
        print(f"   {k:42} {median(v):8.2f} {median(v) / base:13.2f}")
    extra = median(alone["counted"]) - median(alone["uncounted"])
    print(f"   --measure-memory: the counted batch ({len(rep_exs)} rows) takes {median(alone['counted']):.2f}s counted, "
          f"{median(alone['uncounted']):.2f}s not: +{extra:.2f}s, "
          f"{extra / median(times['harness: generation']):.1%} of the generation phase")
    print(f"   outputs identical to the plain loop: {same}/{n}; generation memory measured: "
          f"{probe.peaks.get('generation')} B on the batch of {probe.batch_tokens.get('generation')} padded tokens; "
          f"BLEU {record['metrics']['bleu']['score']:.3f}")


def representative_examples(examples, prompts: list[list[int]], batch: int) -> list:
    """The batch the probe counts: the sorted batch with the most padded tokens (the later of equals)."""
    from harness.backends.base import representative_batch
    from harness.backends.transformers_backend import _batches

    batches, sizes = _batches([len(p) for p in prompts], batch)
    return [examples[i] for i in batches[representative_batch(sizes)]]


# --------------------------------------------------------------------------- 2. start-up
def startup(rounds: int) -> None:
    from report_fixtures import make_report_run

    work = Path(tempfile.mkdtemp(prefix="startup-"))
    run = make_report_run(work / "run", epochs=1, n=20, bootstrap=20)
    gates = work / "gates.yaml"
    gates.write_text("gates:\n  - {task: en-fr, metric: bleu, min: 0}\n")
    data = work / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Translate: the cat {i}"},
                                                     {"role": "assistant", "content": f"le chat {i}"}]}) + "\n"
                            for i in range(20)))
    py = [sys.executable]
    commands = {"python -c pass (bare interpreter)": py + ["-c", "pass"],
                "python -c 'import torch, transformers'": py + ["-c", "import torch, transformers"],
                "harness --help": py + ["-m", "harness", "--help"],
                "harness schema": py + ["-m", "harness", "schema", "-o", str(work / "schema.json")],
                "harness gate RUN --gates G": py + ["-m", "harness", "-q", "gate", str(run), "--gates", str(gates)],
                "harness report RUN": py + ["-m", "harness", "-q", "report", str(run), "-o", str(work / "r.html")],
                "harness data check FILE": py + ["-m", "harness", "data", "check", str(data)],
                "harness grade --help": py + ["-m", "harness", "grade", "--help"]}
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, cwd=work, timeout=300)
            times[name].append(time.perf_counter() - t0)
    base = median(times["python -c pass (bare interpreter)"])
    print(f"\n2. start-up, whole process (medians of {rounds} interleaved rounds)")
    print(f"   {'':42} {'seconds':>8} {'× bare python':>14}")
    for k, v in times.items():
        print(f"   {k:42} {median(v):8.2f} {median(v) / base:14.1f}")


# --------------------------------------------------------------------------- 3. grading / training
def grading_vs_training(quick: bool) -> None:
    from harness import epoch_loop
    from harness.pipeline import train_and_grade
    from harness.suite import load_suite, parse_suite

    path = REPO / "suites" / "translation.yaml"
    text = path.read_text(encoding="utf-8")
    if quick:   # a smaller copy: 400 training rows, 2 epochs, 50 items per task
        text = text.replace("n: 2000", "n: 400").replace("epochs: 4", "epochs: 2").replace("n: 100", "n: 50")
        suite = parse_suite(text, str(path), REPO / "suites")
    else:
        suite = load_suite(path)
    graded: dict[int, float] = {}
    plain: dict[int, float] = {}      # the same epoch's model work as plain library calls
    grade = epoch_loop.TrainingJob.grade

    def timed(self, epoch, step, saved=None):
        t0 = time.perf_counter()
        try:
            return grade(self, epoch, step, saved)
        finally:
            graded[epoch] = time.perf_counter() - t0
            t0 = time.perf_counter()
            plain_model_work(self.model, self.tokenizer, self.tasks)
            plain[epoch] = time.perf_counter() - t0

    epoch_loop.TrainingJob.grade = timed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            results, _ = train_and_grade(suite, log=lambda m: None, run_dir=str(Path(tmp) / "run"))
            wall = time.perf_counter() - t0
    finally:
        epoch_loop.TrainingJob.grade = grade
    trainer = results["models"][0]["train"]["seconds"]
    # the trainer's time holds epochs 1..N's gradings and the plain calls timed after them
    training = trainer - sum(graded[e] + plain[e] for e in graded if e > 0)
    grading, model_work = sum(graded.values()), sum(plain.values())
    print(f"\n3. train-and-grade {suite.name}{' (--quick copy)' if quick else ''}: whole run {wall:.1f}s")
    print(f"   training (trainer time less its gradings) {training:.1f}s; grading {grading:.1f}s over "
          f"{len(graded)} gradings ({', '.join(f'epoch {e} {s:.1f}s' for e, s in sorted(graded.items()))})")
    print(f"   grading / training = {grading / training:.3f}")
    print(f"   the same model work as plain library calls (a generate loop over the same batches, a forward "
          f"with labels for the references) / training = {model_work / training:.3f}; the harness's own "
          f"part of grading / training = {(grading - model_work) / training:.3f}")


def plain_model_work(model, tok, tasks) -> None:
    """One grading's model work without the harness: each task's generate loop over the same sorted,
    left-padded batches, and a forward with labels over the reference conversations."""
    import torch

    from harness.chat import IGNORE_INDEX, end_of_turn_ids, prompt_ids, tokenize_conversation

    was_training = model.training
    model.eval()
    eot = end_of_turn_ids(tok)
    with torch.inference_mode():
        for task in tasks:
            gen = task.spec.generation
            plain_generate(model, tok, [prompt_ids(tok, ex.prompt_messages) for ex in task.examples],
                           gen.batch_size, gen.max_new_tokens, eot)
            rows = sorted((tokenize_conversation(tok, ex.messages, 4096) for ex in task.examples),
                          key=lambda r: len(r.input_ids))
            for start in range(0, len(rows), gen.batch_size):
                batch = rows[start:start + gen.batch_size]
                width = max(len(r.input_ids) for r in batch)
                ids = torch.tensor([r.input_ids + [tok.pad_token_id] * (width - len(r.input_ids)) for r in batch])
                labels = torch.tensor([[IGNORE_INDEX] * r.prompt_len + r.labels[r.prompt_len:]
                                       + [IGNORE_INDEX] * (width - len(r.input_ids)) for r in batch])
                mask = torch.tensor([[1] * len(r.input_ids) + [0] * (width - len(r.input_ids)) for r in batch])
                model(input_ids=ids, attention_mask=mask, labels=labels)
    if was_training:
        model.train()


# --------------------------------------------------------------------------- 4. against lm-eval
LM_EVAL_TASK = """task: harness_overhead_enfr
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{ref}}}}"
target_delimiter: ""
generation_kwargs:
  until: []
  max_gen_toks: 64
  do_sample: false
filter_list:
  - name: strip
    filter:
      - function: remove_whitespace
      - function: take_first
metric_list:
  - metric: bleu
    aggregation: bleu
    higher_is_better: true
"""


def against_lm_eval(lm_eval: str, n: int, rounds: int) -> None:
    from harness.builtin import resolve_model_path
    from harness.grade import load_tasks
    from harness.suite import parse_suite

    work = Path(tempfile.mkdtemp(prefix="lm-eval-"))
    (work / "suite.yaml").write_text(GRADE_SUITE.format(n=n), encoding="utf-8")
    task = load_tasks(parse_suite(GRADE_SUITE.format(n=n)))[0]
    with open(work / "items.jsonl", "w", encoding="utf-8") as f:
        for ex in task.examples:
            (msg,) = ex.prompt_messages   # one user turn: lm-eval's chat template renders the same prompt
            f.write(json.dumps({"id": ex.id, "prompt": msg["content"], "ref": ex.reference}, ensure_ascii=False) + "\n")
    (work / "tasks").mkdir()
    (work / "tasks" / "enfr.yaml").write_text(LM_EVAL_TASK.format(data=work / "items.jsonl"), encoding="utf-8")
    model = resolve_model_path("builtin:tiny-translator")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    times: dict[str, list[float]] = {"harness grade": [], "lm_eval": []}
    for r in range(rounds):
        cmds = {"harness grade": [sys.executable, "-m", "harness", "-q", "grade", str(work / "suite.yaml"),
                                  "--run-dir", str(work / f"run-{r}"), "--no-report"],
                "lm_eval": [lm_eval, "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
                            "--tasks", "harness_overhead_enfr", "--include_path", str(work / "tasks"),
                            "--batch_size", "50", "--apply_chat_template", "--device", "cpu",
                            "--output_path", str(work / f"lm-{r}"), "--log_samples"]}
        for name in (list(cmds) if r % 2 == 0 else list(cmds)[::-1]):   # paired, the order alternated
            t0 = time.perf_counter()
            proc = subprocess.run(cmds[name], capture_output=True, text=True, env=env, cwd=work, timeout=3600)
            times[name].append(time.perf_counter() - t0)
            if proc.returncode != 0:
                print(f"   {name} failed:\n{proc.stderr[-2000:]}")
                return
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), flush=True)
    ours = {json.loads(line)["id"]: json.loads(line)["output"]
            for line in (work / "run-0" / "samples" / "tiny-translator" / "epoch-0" / "en-fr.jsonl").open()}
    theirs = {}
    for f in (work / "lm-0").rglob("samples_*.jsonl"):
        for line in f.open():
            row = json.loads(line)
            out = row["filtered_resps"][0]
            theirs[row["doc"]["id"]] = (out[0] if isinstance(out, list) else out).strip()
    results = json.loads((work / "run-0" / "results.json").read_text())
    bleu = results["models"][0]["epochs"][0]["tasks"]["en-fr"]["metrics"]["bleu"]["score"]
    same = sum(theirs.get(k) == v for k, v in ours.items())
    h, lm = median(times["harness grade"]), median(times["lm_eval"])
    print(f"\n4. whole process, {n} en→fr items, BLEU only, batch 50, 64 new tokens (medians of {rounds} paired rounds)")
    print(f"   harness grade {h:.1f}s, lm_eval {lm:.1f}s: ratio {h / lm:.2f}×; outputs identical {same}/{n}; "
          f"harness BLEU {bleu:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 items, 1 round of start-ups per command, a small suite")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick 1)")
    ap.add_argument("--skip-train", action="store_true", help="leave out part 3 (train-and-grade)")
    ap.add_argument("--lm-eval", metavar="BIN", help="lm-evaluation-harness's lm_eval command: adds part 4")
    ap.add_argument("--only-lm-eval", action="store_true", help="run part 4 alone")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    import torch

    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}")
    n = 200 if args.quick else 1000
    if not args.only_lm_eval:
        generation_phase(n, rounds)
        startup(max(rounds, 2) if not args.quick else 1)
        if not args.skip_train:
            grading_vs_training(args.quick)
    if args.lm_eval:
        against_lm_eval(args.lm_eval, n, rounds)


if __name__ == "__main__":
    main()
