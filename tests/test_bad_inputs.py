"""A catalogue of malformed inputs, as a careless or hostile user gives them, across every command.

Each case writes one defect into an otherwise valid workspace (suite, data, predictions, a graded
run and its baseline) and runs the CLI in-process. Every case must end the same way: exit code 2,
exactly one line on stderr naming the problem, no traceback, and the workspace byte for byte as it
was (no file changed, none created: every check runs before the run directory exists). No case
reaches model training or loading: the built-in model is named, never built.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Callable

import pytest

from harness.cli import main
from run_fixtures import damage, make_run, sentences

ROWS = [{"id": f"s{i}", "prompt": src, "completion": ref} for i, (src, ref) in enumerate([
    ("The cat sleeps.", "Le chat dort."), ("The dog eats.", "Le chien mange."),
    ("A red apple.", "Une pomme rouge."), ("The small house.", "La petite maison.")])]

BASE_SUITE = """\
name: cat
models:
  - path: builtin:tiny-translator
train:
  data:
    - path: train.jsonl
  epochs: 1
  batch_size: 2
tasks:
  - name: en-fr
    data: {path: val.jsonl}
    metrics: [bleu, chrf, usability, rouge, exact_match]
output_dir: runs
"""


def _jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


class Workspace:
    """A valid starting point: every case breaks exactly one thing."""

    def __init__(self, root: Path):
        self.root = root
        (root / "train.jsonl").write_text(_jsonl(ROWS))
        (root / "val.jsonl").write_text(_jsonl(ROWS))
        (root / "schema.json").write_text('{"type": "object"}')
        (root / "preds.jsonl").write_text(_jsonl({"task": "en-fr", "id": r["id"], "output": r["completion"]}
                                                 for r in ROWS))
        self.suite = root / "suite.yaml"
        self.suite.write_text(BASE_SUITE)
        refs = {"en-fr": sentences(12, seed=1)}
        gates = [{"task": "en-fr", "metric": "bleu", "min": 1, "max_drop_from_baseline": 50}]
        self.run = make_run(root / "run", {0: {"en-fr": damage(refs["en-fr"], 0.3, seed=0)}}, refs, gates=gates)
        self.baseline = make_run(root / "base", {0: {"en-fr": damage(refs["en-fr"], 0.3, seed=2)}}, refs,
                                 gates=gates)

    def p(self, name: str) -> str:
        return str(self.root / name)

    def edit_suite(self, old: str, new: str) -> str:
        text = self.suite.read_text()
        assert old in text, old
        self.suite.write_text(text.replace(old, new, 1))
        return str(self.suite)

    def edit_results(self, run: Path, change: Callable[[dict], None]) -> None:
        path = run / "results.json"
        results = json.loads(path.read_text())
        change(results)
        path.write_text(json.dumps(results))


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------- the defects
# A suite defect: (id, edit(ws) -> None, words the message must contain). The suite path is
# what every suite-reading command is then given.
def _replace(old: str, new: str):
    return lambda ws: ws.edit_suite(old, new)


def _write(name: str, data, ws_attr: str = ""):
    def go(ws):
        target = ws.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data)
    return go


def _mkdir(name: str):
    return lambda ws: (ws.root / name).mkdir(parents=True, exist_ok=True)


def _both(*edits):
    def go(ws):
        for e in edits:
            e(ws)
    return go


def _suite_is_dir(ws):
    ws.suite.unlink()
    ws.suite.mkdir()


def _suite_gone(ws):
    ws.suite.unlink()


TASK = "  - name: en-fr\n    data: {path: val.jsonl}\n    metrics: [bleu, chrf, usability, rouge, exact_match]\n"
METRICS = "    metrics: [bleu, chrf, usability, rouge, exact_match]\n"

SUITE_DEFECTS = [
    ("suite-missing", _suite_gone, "suite file not found"),
    ("suite-is-dir", _suite_is_dir, "is a directory"),
    ("suite-latin1", lambda ws: ws.suite.write_bytes(BASE_SUITE.replace("name: cat", "name: caf\xe9").encode("latin-1")),
     "not UTF-8"),
    ("yaml-syntax", _replace("name: cat", "name: [cat"), "not valid YAML"),
    ("dup-key-top", _replace("name: cat\n", "name: cat\nname: dog\n"), "duplicate key 'name'"),
    ("dup-key-nested", _replace("  epochs: 1\n", "  epochs: 1\n  epochs: 3\n"), "duplicate key 'epochs'"),
    ("dup-key-flow", _replace("data: {path: val.jsonl}", "data: {path: val.jsonl, path: train.jsonl}"),
     "duplicate key 'path'"),
    ("not-a-mapping", lambda ws: ws.suite.write_text("- name: cat\n"), "a suite is a YAML mapping"),
    ("empty-suite", lambda ws: ws.suite.write_text(""), "a suite is a YAML mapping"),
    ("unknown-top-key", _replace("output_dir: runs", "output_dri: runs"), "did you mean 'output_dir'"),
    ("unknown-train-key", _replace("  epochs: 1\n", "  epoch: 1\n"), "did you mean 'epochs'"),
    ("unknown-metric", _replace("[bleu, chrf,", "[bleux, chrf,"), "did you mean 'bleu'"),
    ("metric-option-typo", _replace(METRICS, METRICS + "    metric_options: {rouge: {tokenizr: char}}\n"),
     "did you mean 'tokenizer'"),
    ("metric-option-value", _replace(METRICS, METRICS + "    metric_options: {rouge: {tokenizer: jieba}}\n"),
     "metric_options.rouge.tokenizer"),
    ("metric-option-type", _replace(METRICS, METRICS + "    metric_options: {exact_match: {tol: lots}}\n"),
     "metric_options.exact_match.tol"),
    ("metric-option-bool-number", _replace(METRICS, METRICS + "    metric_options: {exact_match: {tol: true}}\n"),
     "must be a number"),
    ("metric-option-negative", _replace(METRICS, METRICS + "    metric_options: {exact_match: {tol: -1}}\n"),
     "greater than or equal to 0"),
    ("metric-option-unknown-metric", _replace(METRICS, METRICS + "    metric_options: {rogue: {tokenizer: char}}\n"),
     "did you mean 'rouge'"),
    ("rouge-stemmer-char", _replace(METRICS, METRICS + "    metric_options: {rouge: {tokenizer: char, use_stemmer: true}}\n"),
     "default tokenizer only"),
    ("bleu-tokenizer", _replace(METRICS, METRICS + "    metric_options: {bleu: {tokenize: 14a}}\n"),
     "metric_options.bleu.tokenize"),
    ("chrf-word-order", _replace(METRICS, METRICS + "    metric_options: {chrf: {word_order: many}}\n"),
     "metric_options.chrf.word_order"),
    ("ter-option", _replace(METRICS, METRICS + "    metric_options: {ter: {normalised: true}}\n"),
     "did you mean 'normalized'"),
    ("usability-option", _replace(METRICS, METRICS + "    metric_options: {usability: {strict: true}}\n"),
     "metric_options.usability.strict"),
    ("json-inline-schema-invalid", _replace(METRICS, METRICS + "    metric_options: {json_validity: {schema: {type: integr}}}\n"),
     "Draft 2020-12"),
    ("json-max-chars-zero", _replace(METRICS, METRICS + "    metric_options: {json_validity: {max_chars: 0}}\n"),
     "max_chars"),
    ("schema-not-json", _both(_write("schema.json", "{type: object"), _replace(METRICS, METRICS + "    json_schema: schema.json\n")),
     "not valid JSON"),
    ("schema-invalid", _both(_write("schema.json", '{"type": "integr"}'), _replace(METRICS, METRICS + "    json_schema: schema.json\n")),
     "not a valid Draft 2020-12 JSON Schema"),
    ("schema-a-list", _both(_write("schema.json", '[1, 2]'), _replace(METRICS, METRICS + "    json_schema: schema.json\n")),
     "a JSON Schema is an object"),
    ("schema-is-dir", _both(_mkdir("schemadir"), _replace(METRICS, METRICS + "    json_schema: schemadir\n")),
     "is a directory"),
    ("schema-missing", _replace(METRICS, METRICS + "    json_schema: nope.json\n"), "file not found"),
    ("schema-latin1", _both(_write("schema.json", '{"description": "caf\xe9"}'.encode("latin-1")),
                            _replace(METRICS, METRICS + "    json_schema: schema.json\n")), "not UTF-8"),
    ("data-is-dir", _both(_mkdir("valdir"), _replace("{path: val.jsonl}", "{path: valdir}")), "is a directory"),
    ("data-missing", _replace("{path: val.jsonl}", "{path: nope.jsonl}"), "file not found"),
    ("train-data-is-dir", _both(_mkdir("traindir"), _replace("- path: train.jsonl", "- path: traindir")),
     "is a directory"),
    ("parallel-source-dir", _both(_mkdir("src"), _write("tgt.txt", "Bonjour\n"),
                                  _replace("{path: val.jsonl}", "{parallel: {source: src, target: tgt.txt}, direction: en-fr}")),
     "is a directory"),
    ("parallel-no-direction", _both(_write("src.txt", "Hi\n"), _write("tgt.txt", "Salut\n"),
                                    _replace("{path: val.jsonl}", "{parallel: {source: src.txt, target: tgt.txt}}")),
     "needs `direction`"),
    ("direction-malformed", _both(_write("src.txt", "Hi\n"), _write("tgt.txt", "Salut\n"),
                                  _replace("{path: val.jsonl}", "{parallel: {source: src.txt, target: tgt.txt}, direction: english>french}")),
     "direction is 'SRC-TGT'"),
    ("direction-no-dash", _both(_write("src.txt", "Hi\n"), _write("tgt.txt", "Salut\n"),
                                _replace("{path: val.jsonl}", "{parallel: {source: src.txt, target: tgt.txt}, direction: enfr}")),
     "direction is 'SRC-TGT'"),
    ("prompt-unknown-placeholder", _replace("{path: val.jsonl}", "{synthetic: {n: 4, split: val}, prompt: 'Translate {src}'}"),
     "unknown placeholder {src}"),
    ("prompt-unbalanced", _replace("{path: val.jsonl}", "{synthetic: {n: 4, split: val}, prompt: 'Translate {source'}"),
     "prompt template"),
    ("prompt-positional", _replace("{path: val.jsonl}", "{synthetic: {n: 4, split: val}, prompt: 'Translate {}'}"),
     "unknown placeholder"),
    ("synthetic-huge", _replace("{path: val.jsonl}", "{synthetic: {n: 100000000, split: val}}"),
     "less than or equal to 100000"),
    ("bootstrap-huge", _replace("output_dir: runs", "output_dir: runs\nbootstrap: {samples: 1000000000}"),
     "less than or equal to 100000"),
    ("max-new-tokens-huge", _replace(METRICS, METRICS + "    generation: {max_new_tokens: 100000000}\n"),
     "less than or equal to 32768"),
    ("synthetic-direction", _replace("{path: val.jsonl}", "{synthetic: {n: 4, direction: de-en}}"),
     "synthetic.direction"),
    ("builtin-unknown", _replace("builtin:tiny-translator", "builtin:tiny-translater"),
     "did you mean 'builtin:tiny-translator'"),
    ("model-dir-missing", _replace("builtin:tiny-translator", "./models/none"), "model directory not found"),
    ("model-is-file", _replace("builtin:tiny-translator", "./train.jsonl"), "is a file, expected a model directory"),
    ("model-dir-empty", _both(_mkdir("empty_model"), _replace("builtin:tiny-translator", "./empty_model")), "is empty"),
    ("model-dir-no-config", _both(_write("junk_model/notes.txt", "x"), _replace("builtin:tiny-translator", "./junk_model")),
     "holds no model"),
    ("model-id-garbage", _replace("builtin:tiny-translator", "'my model?'"), "neither a local directory nor a hub id"),
    ("adapter-missing", _replace("  - path: builtin:tiny-translator\n", "  - path: builtin:tiny-translator\n    adapter: ./lora\n"),
     "adapter directory not found"),
    ("adapter-no-config", _both(_write("lora/w.bin", "x"),
                                _replace("  - path: builtin:tiny-translator\n", "  - path: builtin:tiny-translator\n    adapter: ./lora\n")),
     "no adapter_config.json"),
    ("output-dir-is-file", _both(_write("runsfile", "x"), _replace("output_dir: runs", "output_dir: runsfile")),
     "is a file, expected a directory"),
    ("dup-task-names", _replace(TASK, TASK + TASK), "task names must be unique"),
    ("task-names-clash", _replace(TASK, TASK.replace("en-fr", "a/b") + TASK.replace("en-fr", "a_b")),
     "same sample file name"),
    ("early-stopping-unknown", _replace("  epochs: 1\n", "  epochs: 1\n  early_stopping: {metric: en-fr/blue}\n"),
     "did you mean 'en-fr/bleu'"),
    ("gate-unknown-task", _replace("output_dir: runs", "output_dir: runs\ngates: [{task: de-en, metric: bleu, min: 1}]"),
     "field 'gates.0.task': the suite grades no task 'de-en'; use one of en-fr"),
    ("gate-task-typo", _replace("output_dir: runs", "output_dir: runs\ngates:\n  - {task: en-fr, metric: bleu, min: 1}\n"
                                                    "  - {task: en_fr, metric: chrf, min: 1}"),
     "suite.yaml:16: field 'gates.1.task': the suite grades no task 'en_fr'; did you mean 'en-fr'?"),
    ("epochs-zero", _replace("  epochs: 1\n", "  epochs: 0\n"), "train.epochs"),
    ("missing-name", _replace("name: cat\n", ""), "missing required field 'name'"),
    ("models-empty", _replace("models:\n  - path: builtin:tiny-translator\n", "models: []\n"), "models"),
]

SUITE_COMMANDS = {
    "preflight": lambda ws: ["preflight", str(ws.suite)],
    "audit": lambda ws: ["audit", str(ws.suite)],
    "train-and-grade": lambda ws: ["train-and-grade", str(ws.suite), "--no-report"],
    "grade": lambda ws: ["grade", str(ws.suite), "--predictions", ws.p("preds.jsonl"), "--no-report"],
}

# Data defects only show when the data is read: not by preflight.
DATA_DEFECTS = [
    ("val-latin1", _write("val.jsonl", _jsonl(ROWS).replace("Le chat", "L\xe9 chat").encode("latin-1")),
     "val.jsonl:1: not UTF-8"),
    ("val-bad-json", _write("val.jsonl", _jsonl(ROWS) + '{"prompt": "x", \n'), "val.jsonl:5: not valid JSON"),
    ("val-a-list", _write("val.jsonl", _jsonl(ROWS) + "[1, 2]\n"), "val.jsonl:5: each line must be a JSON object"),
    ("val-no-completion", _write("val.jsonl", _jsonl(ROWS) + '{"prompt": "x"}\n'), "val.jsonl:5:"),
    ("val-bad-role", _write("val.jsonl", _jsonl(ROWS) + json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n"),
     "use one of system, user, assistant"),
    ("val-dup-ids", _write("val.jsonl", _jsonl(ROWS + ROWS[:1])), "appears twice"),
    ("val-id-null", _write("val.jsonl", _jsonl(ROWS) + json.dumps({"id": None, "prompt": "a", "completion": "b"}) + "\n"),
     "field 'id' must be a string"),
    ("val-empty", _write("val.jsonl", "\n\n"), "no rows loaded"),
    ("gz-corrupt", _both(_write("val.jsonl.gz", b"this is not gzip at all"), _replace("{path: val.jsonl}", "{path: val.jsonl.gz}")),
     "corrupt or truncated gzip"),
    ("gz-truncated", _both(_write("val.jsonl.gz", gzip.compress(_jsonl(ROWS * 50).encode())[:200]),
                           _replace("{path: val.jsonl}", "{path: val.jsonl.gz}")), "corrupt or truncated gzip"),
    ("parallel-uneven", _both(_write("src.txt", "Hi\nBye\n"), _write("tgt.txt", "Salut\n"),
                              _replace("{path: val.jsonl}", "{parallel: {source: src.txt, target: tgt.txt}, direction: en-fr}")),
     "differ in length"),
    ("parallel-gz-latin1", _both(_write("src.txt.gz", gzip.compress("caf\xe9\n".encode("latin-1"))), _write("tgt.txt", "Salut\n"),
                                 _replace("{path: val.jsonl}", "{parallel: {source: src.txt.gz, target: tgt.txt}, direction: en-fr}")),
     "not UTF-8"),
    ("train-latin1", _write("train.jsonl", _jsonl(ROWS).replace("Le chat", "L\xe9 chat").encode("latin-1")), "train.jsonl:1: not UTF-8"),
]
DATA_COMMANDS = {k: v for k, v in SUITE_COMMANDS.items() if k != "preflight"}


def _preds(lines: str):
    return _write("preds.jsonl", lines)


P = [json.dumps({"task": "en-fr", "id": r["id"], "output": r["completion"]}) for r in ROWS]

GRADE_DEFECTS = [
    ("preds-missing", lambda ws: (ws.root / "preds.jsonl").unlink(), "predictions file not found"),
    ("preds-is-dir", lambda ws: ((ws.root / "preds.jsonl").unlink(), (ws.root / "preds.jsonl").mkdir()), "is a directory"),
    ("preds-latin1", _write("preds.jsonl", ("\n".join(P) + '\n{"task": "en-fr", "id": "s9", "output": "caf\xe9"}\n').encode("latin-1")),
     "preds.jsonl:5: not UTF-8"),
    ("preds-bad-json", _preds("\n".join(P) + "\n{nope}\n"), "preds.jsonl:5: not valid JSON"),
    ("preds-a-list", _preds("\n".join(P) + "\n[1]\n"), "preds.jsonl:5: each line is a JSON object"),
    ("preds-a-string", _preds('"hello"\n'), "preds.jsonl:1: each line is a JSON object"),
    ("preds-no-output", _preds('{"task": "en-fr", "id": "s0"}\n'), "missing field(s) output"),
    ("preds-unknown-task", _preds('{"task": "de-en", "id": "s0", "output": "x"}\n'), "unknown task 'de-en'"),
    ("preds-task-not-string", _preds('{"task": ["en-fr"], "id": "s0", "output": "x"}\n'), "unknown task"),
    ("preds-id-bool", _preds('{"task": "en-fr", "id": true, "output": "x"}\n'), "field 'id' must be a string"),
    ("preds-id-float-list", _preds('{"task": "en-fr", "id": [1], "output": "x"}\n'), "field 'id' must be a string"),
    ("preds-output-number", _preds('{"task": "en-fr", "id": "s0", "output": 3}\n'), "field 'output' must be a string"),
    ("preds-output-null", _preds('{"task": "en-fr", "id": "s0", "output": null}\n'), "field 'output' must be a string"),
    ("preds-reference-number", _preds("\n".join(P[1:]) + '\n{"task": "en-fr", "id": "s0", "output": "x", "reference": 1}\n'),
     "field 'reference' must be a string"),
    ("preds-dup-id", _preds("\n".join(P + P[:1]) + "\n"), "duplicate id 's0'"),
    ("preds-dup-id-later", _preds("\n".join(P) + '\n{"task": "en-fr", "id": "s1", "output": "y"}\n'), "duplicate id 's1'"),
    ("preds-missing-ids", _preds("\n".join(P[:2]) + "\n"), "no prediction for 2 of 4 items (first: s2, s3)"),
    ("preds-extra-id-no-ref", _preds("\n".join(P) + '\n{"task": "en-fr", "id": "zz", "output": "y"}\n'),
     "id 'zz' is not in the task data"),
    ("preds-empty", _preds(""), "no prediction for 4 of 4"),
    ("preds-lone-surrogate", _preds("\n".join(P[1:]) + '\n{"task": "en-fr", "id": "s0", "output": "Le chat \\ud800"}\n'),
     "preds.jsonl:4: field 'output' holds a lone surrogate escape"),
    ("preds-lone-surrogate-reference",
     _preds("\n".join(P[1:]) + '\n{"task": "en-fr", "id": "s0", "output": "x", "reference": "\\udc80"}\n'),
     "preds.jsonl:4: field 'reference' holds a lone surrogate"),
    ("preds-deep-json", _preds("[" * 100000 + "]" * 100000 + "\n"), "preds.jsonl:1:"),
]

MODEL_ARG_DEFECTS = [
    ("model-arg-missing", ["--model", "./nowhere"], "model directory not found"),
    ("model-arg-file", ["--model", "TRAIN"], "is a file, expected a model directory"),
    ("model-arg-empty", ["--model", "EMPTY"], "is empty"),
    ("model-arg-no-model", ["--model", "JUNK"], "holds no model"),
    ("model-arg-builtin", ["--model", "builtin:nope"], "unknown built-in model 'nope'"),
    ("model-arg-hub-offline", ["--model", "SomeOrg/not-cached-model"], "HF_HUB_OFFLINE"),
    ("model-arg-garbage", ["--model", "what is this?"], "neither a local directory nor a hub id"),
    ("adapter-first", ["--adapter", "./lora"], "give the base model first"),
    ("openai-no-endpoint", ["--model", "served-name", "--backend", "openai"], "backend openai needs --endpoint"),
    ("endpoint-without-openai", ["--model", "builtin:tiny-translator", "--endpoint", "http://127.0.0.1:9"],
     "--endpoint is for --backend openai"),
    ("adapter-arg-missing", ["--model", "builtin:tiny-translator", "--adapter", "./lora-none"], "adapter directory not found"),
    ("adapter-arg-file", ["--model", "builtin:tiny-translator", "--adapter", "TRAIN"], "is a file, expected an adapter directory"),
]


def _make_model_dirs(ws):
    (ws.root / "empty").mkdir()
    (ws.root / "junk").mkdir()
    (ws.root / "junk" / "README").write_text("not a model")


def _status(status):
    return lambda ws: ws.edit_results(ws.run, lambda r: r.update(status=status))


def _task_field(run_attr: str, **fields):
    def go(ws):
        def change(r):
            r["models"][0]["epochs"][0]["tasks"]["en-fr"].update(fields)
        ws.edit_results(getattr(ws, run_attr), change)
    return go


GATE_DEFECTS = [
    ("results-missing", lambda ws: ["gate", ws.p("nope/results.json")], "results file not found"),
    ("results-dir-empty", lambda ws: ((ws.root / "emptyrun").mkdir(), ["gate", ws.p("emptyrun")])[1], "results file not found"),
    ("results-not-json", lambda ws: (_write("run/results.json", "{oops")(ws), ["gate", str(ws.run)])[1], "not valid JSON"),
    ("results-latin1", lambda ws: (_write("run/results.json", '{"x": "caf\xe9"}'.encode("latin-1"))(ws), ["gate", str(ws.run)])[1],
     "not UTF-8"),
    ("results-no-version", lambda ws: (_write("run/results.json", '{"models": []}')(ws), ["gate", str(ws.run)])[1],
     "no schema_version"),
    ("results-future-version", lambda ws: (ws.edit_results(ws.run, lambda r: r.update(schema_version=99)), ["gate", str(ws.run)])[1],
     "newer than this harness reads"),
    ("results-models-damaged", lambda ws: (ws.edit_results(ws.run, lambda r: r.update(models={"a": 1})), ["gate", str(ws.run)])[1],
     "field 'models' is not a list"),
    ("results-epoch-damaged", lambda ws: (ws.edit_results(ws.run, lambda r: r["models"][0].update(epochs=[3])),
                                          ["gate", str(ws.run)])[1], "an epoch record is not {epoch, tasks}"),
    ("results-score-not-number", lambda ws: (ws.edit_results(ws.run, lambda r: r["models"][0]["epochs"][0]["tasks"]
                                                             ["en-fr"]["metrics"]["bleu"].update(score="12")),
                                             ["gate", str(ws.run)])[1], "is not a number: the file is damaged"),
    ("results-a-list", lambda ws: (_write("run/results.json", "[]")(ws), ["gate", str(ws.run)])[1], "no schema_version"),
    ("baseline-missing", lambda ws: ["gate", str(ws.run), "--baseline", ws.p("nobase")], "results file not found"),
    ("gates-file-missing", lambda ws: ["gate", str(ws.run), "--gates", ws.p("nogates.yaml")], "gates file not found"),
    ("gates-file-dir", lambda ws: ((ws.root / "gatesdir").mkdir(), ["gate", str(ws.run), "--gates", ws.p("gatesdir")])[1],
     "is a directory"),
    ("gates-file-latin1", lambda ws: (_write("g.yaml", "gates:\n  - {task: caf\xe9, metric: bleu, min: 1}\n".encode("latin-1"))(ws),
                                      ["gate", str(ws.run), "--gates", ws.p("g.yaml")])[1], "not UTF-8"),
    ("gates-dup-key", lambda ws: (_write("g.yaml", "gates:\n  - {task: en-fr, metric: bleu, min: 1, min: 2}\n")(ws),
                                  ["gate", str(ws.run), "--gates", ws.p("g.yaml")])[1], "duplicate key 'min'"),
    ("gates-unknown-key", lambda ws: (_write("g.yaml", "gates:\n  - {task: en-fr, metric: bleu, minimum: 1}\n")(ws),
                                      ["gate", str(ws.run), "--gates", ws.p("g.yaml")])[1], "did you mean 'min'"),
    ("gates-empty", lambda ws: (_write("g.yaml", "gates: []\n")(ws), ["gate", str(ws.run), "--gates", ws.p("g.yaml")])[1],
     "nothing to gate"),
    ("gates-json-bad", lambda ws: (_write("g.json", '{"gates": [}')(ws), ["gate", str(ws.run), "--gates", ws.p("g.json")])[1],
     "not valid JSON"),
    ("gates-unknown-task", lambda ws: (_write("g.yaml", "gates:\n  - {task: de-en, metric: bleu, min: 1}\n")(ws),
                                       ["gate", str(ws.run), "--gates", ws.p("g.yaml")])[1], "task 'de-en' not in the results"),
    ("gate-unknown-model", lambda ws: ["gate", str(ws.run), "--model", "nobody"], "no model 'nobody'"),
    ("gate-junit-dir", lambda ws: ((ws.root / "junitdir").mkdir(), ["gate", str(ws.run), "--junit", ws.p("junitdir")])[1],
     "is a directory"),
    ("run-running", lambda ws: (_status("running")(ws), ["gate", str(ws.run)])[1], "run unknown (says running"),
    ("run-failed", lambda ws: (_status("failed")(ws), ["gate", str(ws.run)])[1], "run failed"),
    ("run-interrupted", lambda ws: (_status("interrupted")(ws), ["gate", str(ws.run)])[1], "--allow-incomplete"),
    ("baseline-running", lambda ws: (ws.edit_results(ws.baseline, lambda r: r.update(status="running")),
                                     ["gate", str(ws.run), "--baseline", str(ws.baseline)])[1], "baseline unknown (says running"),
    ("overridden-refs", lambda ws: (_task_field("run", references_overridden=3)(ws), ["gate", str(ws.run)])[1],
     "--allow-overridden-references"),
    ("partial-coverage", lambda ws: (_task_field("run", coverage={"graded": 6, "total": 12})(ws), ["gate", str(ws.run)])[1],
     "covered 6 of 12 items"),
    ("baseline-other-data", lambda ws: (_task_field("run", data_hash="sha256:aaaa")(ws), _task_field("baseline", data_hash="sha256:bbbb")(ws),
                                        ["gate", str(ws.run), "--baseline", str(ws.baseline)])[2], "graded on different items"),
]

REPORT_DEFECTS = [
    ("report-run-missing", lambda ws: ["report", ws.p("norun")], "results file not found"),
    ("report-run-corrupt", lambda ws: (_write("run/results.json", "{")(ws), ["report", str(ws.run)])[1], "not valid JSON"),
    ("report-run-latin1", lambda ws: (_write("run/results.json", b'{"a": "\xe9"}')(ws), ["report", str(ws.run)])[1], "not UTF-8"),
    ("report-out-dir", lambda ws: ((ws.root / "outdir").mkdir(), ["report", str(ws.run), "-o", ws.p("outdir")])[1], "is a directory"),
    ("report-out-under-file", lambda ws: ["report", str(ws.run), "-o", ws.p("train.jsonl/r.html")], "is a file"),
    ("report-epoch-damaged", lambda ws: (ws.edit_results(ws.run, lambda r: r["models"][0]["epochs"][0].update(tasks=[1])),
                                         ["report", str(ws.run)])[1], "an epoch record is not {epoch, tasks}"),
    ("report-second-run-missing", lambda ws: ["report", str(ws.run), ws.p("nope")], "results file not found"),
    ("report-samples-damaged", lambda ws: (_damage_samples(ws), ["report", str(ws.run)])[1],
     "en-fr.jsonl:3: not a JSON object: the samples file is damaged"),
    ("report-score-not-number", lambda ws: (ws.edit_results(ws.run, lambda r: r["models"][0]["epochs"][0]["tasks"]["en-fr"]
                                                            ["metrics"]["bleu"].update(score="high")),
                                            ["report", str(ws.run)])[1], "metric 'bleu': score \"high\" is not a number"),
    ("report-score-bool", lambda ws: (ws.edit_results(ws.run, lambda r: r["models"][0]["epochs"][0]["tasks"]["en-fr"]
                                                      ["metrics"]["chrf"].update(score=True)),
                                      ["report", str(ws.run)])[1], "the file is damaged"),
]

def _damage_samples(ws):
    path = next((ws.run / "samples").rglob("en-fr.jsonl"))
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = '{"id": "s2", "output": \n'   # a write cut short
    path.write_text("".join(lines))


RUN_DIR_DEFECTS = [
    ("run-dir-existing-run", lambda ws: str(ws.run), "is an existing run: pass --resume"),
    ("run-dir-nonempty", lambda ws: str(ws.root), "not empty and holds no run"),
    ("run-dir-is-file", lambda ws: ws.p("train.jsonl"), "is a file"),
    ("run-dir-under-file", lambda ws: ws.p("train.jsonl/run"), "is a file"),
]

MACHINE_DEFECTS = [   # train-and-grade on this CPU machine (preflight plans them for a GPU: see below)
    ("fp16-on-cpu", "  epochs: 1\n", "  epochs: 1\n  precision: fp16\n", "fp16 needs a CUDA GPU"),
    ("qlora-on-cpu", "  epochs: 1\n", "  epochs: 1\n  method: qlora\n", "qlora needs a CUDA GPU"),
    ("adamw8bit-on-cpu", "  epochs: 1\n", "  epochs: 1\n  optimizer: adamw_8bit\n", "adamw_8bit needs a CUDA GPU"),
    ("unsloth-on-cpu", "  epochs: 1\n", "  epochs: 1\n  backend: unsloth\n", "unsloth needs a CUDA GPU"),
    ("hub-offline-suite", "builtin:tiny-translator", "SomeOrg/not-cached-model", "HF_HUB_OFFLINE"),
]


def _cases():
    for cid, edit, words in SUITE_DEFECTS:
        for cmd, argv in SUITE_COMMANDS.items():
            yield pytest.param(edit, argv, words, id=f"{cmd}:{cid}")
    for cid, edit, words in DATA_DEFECTS:
        for cmd, argv in DATA_COMMANDS.items():
            if cid.startswith("train-") and cmd == "grade":
                continue   # grading does not need the training data: it only skips the leakage audit
            yield pytest.param(edit, argv, words, id=f"{cmd}:{cid}")
    for cid, edit, words in GRADE_DEFECTS:
        yield pytest.param(edit, SUITE_COMMANDS["grade"], words, id=f"grade:{cid}")
    for cid, extra, words in MODEL_ARG_DEFECTS:
        def argv(ws, extra=extra):
            subst = {"TRAIN": ws.p("train.jsonl"), "EMPTY": ws.p("empty"), "JUNK": ws.p("junk")}
            return ["grade", str(ws.suite), *[subst.get(a, a) for a in extra], "--no-report"]
        yield pytest.param(_make_model_dirs, argv, words, id=f"grade:{cid}")
    for cid, make_argv, words in GATE_DEFECTS:
        yield pytest.param(None, make_argv, words, id=f"gate:{cid}")
    for cid, make_argv, words in REPORT_DEFECTS:
        yield pytest.param(None, make_argv, words, id=f"report:{cid}")
    for cid, run_dir, words in RUN_DIR_DEFECTS:
        for cmd in ("train-and-grade", "grade"):
            yield pytest.param(None, lambda ws, cmd=cmd, run_dir=run_dir: SUITE_COMMANDS[cmd](ws) + ["--run-dir", run_dir(ws)],
                               words, id=f"{cmd}:{cid}")
    for cid, old, new, words in MACHINE_DEFECTS:
        yield pytest.param(_replace(old, new), SUITE_COMMANDS["train-and-grade"], words, id=f"train-and-grade:{cid}")
    for cmd in ("preflight", "train-and-grade"):
        for budget in ("0", "0GiB", "0.0000001"):
            yield pytest.param(None, lambda ws, cmd=cmd, budget=budget: SUITE_COMMANDS[cmd](ws) + ["--gpu-memory", budget],
                               "a memory budget must be more than 0 bytes", id=f"{cmd}:gpu-memory-{budget}")
    for cmd in ("preflight", "train-and-grade"):
        yield pytest.param(_replace("output_dir: runs", "output_dir: runs\nmemory: {gpu_memory: 0MiB}"),
                           SUITE_COMMANDS[cmd], "suite memory.gpu_memory '0MiB': a memory budget must be more than 0",
                           id=f"{cmd}:suite-gpu-memory-zero")
    yield pytest.param(None, lambda ws: ["audit", str(ws.suite), "--json", str(ws.root)], "is a directory", id="audit:json-dir")
    yield pytest.param(None, lambda ws: ["schema", "-o", str(ws.root)], "is a directory", id="schema:out-dir")


CASES = list(_cases())


def test_the_catalogue_is_large():
    assert len(CASES) >= 100


@pytest.mark.parametrize("edit, make_argv, words", CASES)
def test_bad_input_is_one_line_on_stderr_exit_2_and_changes_nothing(tmp_path, monkeypatch, capsys, edit, make_argv, words):
    monkeypatch.chdir(tmp_path)          # relative output_dir and compare.html land in the workspace
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    ws = Workspace(tmp_path)
    if edit is not None:
        edit(ws)
    argv = make_argv(ws)
    before = tree_digest(tmp_path)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (argv, out, err)
    assert len(lines) == 1, err
    assert words in lines[0], lines[0]
    assert lines[0].startswith("error: ") and "Traceback" not in out + err
    assert tree_digest(tmp_path) == before, "a refused command changed or created files"
