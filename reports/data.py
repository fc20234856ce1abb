"""The report's training-data section: per-source counts of a recipe-built dataset (from the
manifest record in results.json) and the token-length histogram of the training rows (from
the pre-training data audit, present whenever a tokenizer was at hand)."""
from __future__ import annotations

from typing import Any

from reports.collect import Series

COLUMNS = ("read", "invalid", "empty_rows", "duplicates_within", "duplicates_across", "near_duplicates",
           "kept", "mixed", "train", "validation")


def training_data(series: list[Series]) -> list[dict]:
    out = []
    for s in series:
        recipes = [_recipe(r) for r in s.results.get("data") or [] if isinstance(r, dict)]
        lengths = ((s.model["audit"] or {}).get("data") or {}).get("lengths")
        hist = _histogram(lengths) if isinstance(lengths, dict) else None
        if recipes or hist:
            out.append({"label": s.label, "recipes": recipes, "lengths": hist})
    return out


def _recipe(r: dict) -> dict:
    realised = (r.get("mix") or {}).get("realised") or {}
    rows = [{"name": name, "counts": [rec.get(c) for c in COLUMNS], "ratio": realised.get(name)}
            for name, rec in (r.get("sources") or {}).items()]
    return {"recipe": r.get("recipe"), "split": r.get("split"), "manifest": str(r.get("manifest_sha256", ""))[:16],
            "strategy": (r.get("mix") or {}).get("strategy"), "seed": r.get("seed"),
            "columns": [c.replace("_", " ") for c in COLUMNS], "rows": rows}


def _histogram(lengths: dict[str, Any]) -> dict | None:
    hist = lengths.get("histogram") or {}
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if len(edges) != len(counts) + 1 or not counts:
        return None
    top = max(counts) or 1
    return {"max_seq_len": lengths.get("max_seq_len"), "truncated": lengths.get("truncated"),
            "p50": lengths.get("p50"), "p95": lengths.get("p95"), "max": lengths.get("max"),
            "bins": [{"lo": edges[i], "hi": edges[i + 1], "count": c, "top": top} for i, c in enumerate(counts)]}
