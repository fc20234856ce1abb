"""One model's drift probe: the base distributions captured once, every later epoch compared with them.

The base model's top-k log-probabilities are written to the run directory at epoch 0
(`drift/MODEL/base.npz`) and kept on the CPU; no second copy of the model is ever loaded. Each
graded epoch writes its per-item NLL and KL (`drift/MODEL/epoch-K.jsonl`, what the paired tests
of harness/diagnose/drift.py read) and a summary into the epoch's record (`drift`).
"""
from __future__ import annotations

import json
import time
from typing import Optional

from harness.drift.probe import ProbeItem, TokenizedProbe, check_truncation, tokenize_probe
from harness.drift.spec import DriftSpec, ProbeSpec
from harness.results import RunDir, safe_name, write_atomic

PROBE, PROMPTS = "probe", "prompts"


def drift_dir(run: RunDir, model: str):
    return run.root / "drift" / safe_name(model)


def stats_path(run: RunDir, model: str, epoch: int):
    return drift_dir(run, model) / f"epoch-{epoch}.jsonl"


def task_prompt_items(tasks, limit: int) -> list[tuple[str, ProbeItem]]:
    """(task, the prompt its model answers) for the first `limit` items of every task."""
    out = []
    for t in tasks:
        for ex in t.examples[:limit]:
            last = max((i for i, m in enumerate(ex.messages) if m["role"] == "assistant"), default=len(ex.messages))
            out.append((t.spec.name, ProbeItem(ex.id, ex.messages[:last])))
    return out


def tokenize_all(tokenizer, probe_items: list[ProbeItem], prompts: list[tuple[str, ProbeItem]], max_len: int,
                 source: str, max_share: float) -> TokenizedProbe:
    """The probe's items and the task prompts (generation prompt included) as one scored set."""
    from harness.chat import prompt_ids

    tp = tokenize_probe(tokenizer, probe_items, max_len)
    if probe_items:
        check_truncation(tp, source, max_len, max_share)
    for task, item in prompts:
        ids = prompt_ids(tokenizer, item.content)[:max_len]
        tp.ids.append(f"{task}/{item.id}")
        tp.sets.append(f"{PROMPTS}:{task}")
        tp.input_ids.append(ids)
        tp.replies.append(None)
    return tp


class DriftProbe:
    """Measures one model at every graded epoch; `base` set: compare with another model's capture
    (`harness grade --drift-base`)."""

    def __init__(self, run: RunDir, model: str, items: TokenizedProbe, probe: Optional[ProbeSpec], spec: DriftSpec,
                 batch_size: int, source: str = ""):
        self.run, self.model, self.items, self.probe, self.spec = run, model, items, probe, spec
        self.batch_size, self.source = max(1, batch_size), source
        self.top_k = probe.top_k if probe else 32
        self.base = None          # BaseDistributions, on the CPU once captured or read
        self.base_model = model   # whose distributions `base` holds

    def against(self, other: "DriftProbe") -> None:
        self.base, self.base_model = other.base, other.base_model

    def measure(self, model, epoch: int) -> dict:
        """Score `model` as `epoch`: epoch 0 of the base captures; otherwise KL and NLL against the base."""
        from harness.drift.scoring import BaseDistributions, score_probe

        t0 = time.perf_counter()
        base_file = drift_dir(self.run, self.base_model) / "base.npz"
        capture = self.base is None and epoch == 0 and self.base_model == self.model
        if self.base is None and not capture:
            self.base = BaseDistributions.load(base_file)   # a resumed run: captured before the interruption
        scores = score_probe(model, self.items, self.batch_size, top_k=self.top_k if capture else 0,
                             base=None if capture else self.base)
        if capture:
            self.base = scores.base
            self.base.save(base_file)
        kl = scores.kl if scores.kl is not None else [0.0] * len(scores.nll)   # the base against itself
        rows = [{"id": i, "set": s, "nll": float(n), "kl": float(k), "tokens": int(c), "nll_tokens": int(r)}
                for i, s, n, k, c, r in zip(self.items.ids, self.items.sets, scores.nll, kl, scores.tokens,
                                            scores.nll_tokens)]
        path = stats_path(self.run, self.model, epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
        return {"stats": self.run.rel(path), "base": self.run.rel(base_file), "base_model": self.base_model,
                "top_k": self.top_k, "base_bytes": self.base.nbytes, "tail_mass": round(self.base.tail_mass, 6), "truncated": self.items.truncated,
                "sets": summarise(rows), "seconds": round(time.perf_counter() - t0, 3)}


def summarise(rows: list[dict]) -> dict:
    """{probe: {items, tokens, nll, kl[, groups]}, prompts: {...}} per token, from per-item rows;
    `groups`: the probe's groups (the built-in probe's languages) the same way."""
    out: dict = {}
    for r in rows:
        key, _, group = r["set"].partition(":")
        targets = [out.setdefault(key, _totals())]
        if key == PROBE and group:
            targets.append(out[key].setdefault("groups", {}).setdefault(group, _totals()))
        for s in targets:
            s["items"] += 1
            s["tokens"] += r["tokens"]
            s["nll_tokens"] += r.get("nll_tokens", r["tokens"])
            s["nll"] += r["nll"]
            s["kl"] += r["kl"]
    for s in [*out.values(), *(out.get(PROBE, {}).get("groups") or {}).values()]:
        s["nll"] = s["nll"] / s["nll_tokens"] if s["nll_tokens"] else None
        s["kl"] = s["kl"] / s["tokens"] if s["tokens"] else None
    return out


def _totals() -> dict:
    return {"items": 0, "tokens": 0, "nll_tokens": 0, "nll": 0.0, "kl": 0.0}


def drift_enabled(suite) -> bool:
    spec = suite.diagnostics.drift
    return spec.enabled if spec.enabled is not None else suite.diagnostics.probe is not None


def probe_for(suite, run: RunDir, model: str, tokenizer, probe_items: list[ProbeItem], tasks,
              batch_size: int, force: bool = False) -> Optional[DriftProbe]:
    """The model's drift probe, or None when the suite turns drift off (`force`: asked for anyway)."""
    spec = suite.diagnostics.drift
    if not (force or drift_enabled(suite)):
        return None
    from harness.drift.probe import DEFAULT_MAX_LEN

    max_len = suite.train.max_seq_len if suite.train else DEFAULT_MAX_LEN
    probe = suite.diagnostics.probe
    source = probe.data.describe() if probe else ""
    if probe and probe.data.text:
        source = str(suite.resolve(probe.data.text))
    elif probe and probe.data.path:
        source = str(suite.resolve(probe.data.path))
    items = tokenize_all(tokenizer, probe_items, task_prompt_items(tasks, spec.prompts), max_len, source,
                         suite.diagnostics.audit.max_truncated_share)
    if not items.ids:
        return None
    return DriftProbe(run, model, items, probe, spec, batch_size, source)


class GradedDrift:
    """`harness grade --model A --model B --drift-base A`: A's distributions captured, B's drift against them."""

    def __init__(self, suite, base_spec, items: list[ProbeItem]):
        self.suite, self.base_spec, self.items = suite, base_spec, items
        self.base: Optional[DriftProbe] = None

    @classmethod
    def plan(cls, suite, models: list, drift_base: Optional[str], items: list[ProbeItem]) -> Optional["GradedDrift"]:
        if drift_base is None:
            return None
        from harness.errors import SuiteError

        spec = next((m for m in models if drift_base in (m.name, m.path)), None)
        if spec is None:
            raise SuiteError(f"--drift-base {drift_base}: not one of the graded models "
                             f"({', '.join(m.name or m.path for m in models) or 'none'}): name one of them")
        if len(models) < 2:
            raise SuiteError(f"--drift-base {drift_base}: give at least one other --model to measure against it")
        return cls(suite, spec, items)

    def ordered(self, models: list) -> list:
        """The base first: its distributions are captured before anything is compared with them."""
        return [self.base_spec] + [m for m in models if m is not self.base_spec]

    def measure(self, spec, backend, run: RunDir, tasks) -> dict:
        from harness.errors import UserError

        if not hasattr(backend, "model"):
            raise UserError("--drift-base scores the models teacher-forced: use the transformers backend")
        probe = probe_for(self.suite, run, spec.name, backend.tokenizer, self.items, tasks, 16, force=True)
        if spec is self.base_spec:
            self.base = probe
        else:
            probe.against(self.base)
        return probe.measure(backend.model, 0)

    def base_epoch(self, results: dict, record: dict) -> Optional[dict]:
        if record["name"] == self.base_spec.name:
            return None
        base = next(r for r in results["models"] if r["name"] == self.base_spec.name)
        return base["epochs"][0]
