"""What every tracker logs, named once (docs/tracking.md lists every key).

    eval/<task>/<metric>            the epoch's score, at the epoch's global step (epoch 0 at step 0)
    eval/<task>/<metric>/ci_low     its confidence interval's bounds, when it has one
    eval/<task>/<metric>/ci_high
    epoch                           the epoch, logged with the scores (an x axis of its own)

With several models in one run each key gets the model's name after its first part
(`eval/<model>/<task>/<metric>`, `best/<model>/epoch`). Summary fields (verdicts, best and
recommended epoch) and params (the suite's hyper-parameters) are flat string-keyed dicts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

EVAL = "eval"     # train-and-grade: the curve over epochs
GRADE = "grade"   # `harness grade --track-run`: a checkpoint graded again, beside (never on) that curve


def _key(first: str, model: Optional[str], *rest: str) -> str:
    return "/".join([first, *([model] if model else []), *rest])


def epoch_scores(er: dict, model: Optional[str] = None, first: str = EVAL) -> dict[str, float]:
    """One graded epoch's scores and interval bounds (`model`: the name segment, several models)."""
    out: dict[str, float] = {}
    for task, record in er["tasks"].items():
        for metric, m in record["metrics"].items():
            if m.get("score") is None:
                continue
            key = _key(first, model, task, metric)
            out[key] = float(m["score"])
            ci = m.get("ci")
            if ci and ci[0] is not None and ci[1] is not None:
                out[f"{key}/ci_low"], out[f"{key}/ci_high"] = float(ci[0]), float(ci[1])
    return out


def summary_fields(results: dict) -> dict[str, object]:
    """The run's verdicts, best and recommended epoch, gates and status, as summary fields."""
    several = len(results["models"]) > 1
    out: dict[str, object] = {"run/status": results.get("status")}
    for record in results["models"]:
        model = record["name"] if several else None
        best = record.get("best") or {}
        if best:
            out[_key("best", model, "metric")] = best["metric"]
            out[_key("best", model, "epoch")] = best["epoch"]
            out[_key("best", model, "score")] = best["score"]
        sections = {"audit": record.get("audit"), "memory": record.get("memory"),
                    **(record.get("diagnostics") or {})}
        for name, section in sections.items():
            verdict = (section or {}).get("verdict") if isinstance(section, dict) else None
            if verdict:
                out[_key("verdict", model, name)] = verdict["status"]
                out[_key("verdict", model, name, "summary")] = verdict["summary"]
        checkpoint = (record.get("diagnostics") or {}).get("checkpoint") or {}
        if "recommended" in checkpoint:
            out[_key("recommended", model, "epoch")] = checkpoint["recommended"]
        if record.get("early_stopped"):
            out[_key("early_stopped", model)] = True
    gates = (results.get("gates") or {}).get("verdict") if isinstance(results.get("gates"), dict) else None
    if gates:
        out["verdict/gates"], out["verdict/gates/summary"] = gates["status"], gates["summary"]
    return out


def params(suite_dump: dict) -> dict[str, str]:
    """The suite's hyper-parameters (train, generation per task, bootstrap, diagnostics) as flat
    `suite/...` strings: what MLflow's params and W&B's config hold."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                walk(f"{prefix}/{i}", v)
        else:
            flat[prefix] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    for section in ("train", "bootstrap", "diagnostics", "grading"):
        if suite_dump.get(section) is not None:
            walk(f"suite/{section}", suite_dump[section])
    walk("suite/models", [{"name": m.get("name"), "path": m.get("path"), "adapter": m.get("adapter")}
                          for m in suite_dump.get("models", [])])
    for task in suite_dump.get("tasks", []):
        flat[f"suite/tasks/{task['name']}/metrics"] = ",".join(task.get("metrics", []))
        walk(f"suite/tasks/{task['name']}/generation", task.get("generation") or {})
    flat["suite/name"] = suite_dump.get("name", "")
    return flat


def artifact_paths(root: Path) -> list[Path]:
    """The run's files a tracker keeps at the end: report.html, results.json, suite.yaml, train_log.jsonl
    and the per-sample outputs (samples/MODEL/epoch-K/TASK.jsonl); never checkpoints."""
    files = [root / name for name in ("report.html", "results.json", "suite.yaml", "train_log.jsonl")]
    files += sorted((root / "samples").rglob("*.jsonl")) if (root / "samples").is_dir() else []
    return [f for f in files if f.is_file()]
