"""`harness data build`: read → normalise → exact dedup (within, across) → near dedup →
mix → dedup again → split → export + manifest. One function a stage, called top to bottom.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from harness.builtin_recipes import cache_root
from harness.dataprep.dedup import first_occurrence, near_duplicates
from harness.dataprep.export import sha256_file, write_jsonl, write_parquet_from_jsonl
from harness.dataprep.manifest import MANIFEST_VERSION, data_record, outputs_intact, read_manifest, write_manifest
from harness.dataprep.mix import mix
from harness.dataprep.recipe import Recipe, load_recipe, recipe_hash
from harness.dataprep.rows import Rows, read_pool
from harness.dataprep.split import split
from harness.errors import DataError

Log = Callable[[str], None]
NEAR_EXAMPLES = 20


def build_dataset(recipe: Recipe, out_dir: Path, log: Log = lambda m: None,
                  digest: Optional[str] = None) -> dict:
    """Build the recipe into out_dir (train/validation JSONL and Parquet, manifest.json); the manifest."""
    rng = np.random.default_rng(recipe.seed)
    names = [s.name for s in recipe.sources]
    counts: dict[str, dict] = {}
    corpus = _read_and_dedup(recipe, counts, log)
    after_exact = len(corpus)
    corpus, near_examples = _near_stage(corpus, recipe, names, counts, log)
    after_near = len(corpus)
    mixed, repeats, dup_after = _mix_stage(corpus, recipe, names, counts, rng)
    del corpus   # one copy of the corpus at a time: what bounds peak memory on a large build
    train_idx, val_idx = split(mixed.prompt_key, mixed.source, recipe.split, rng)
    parts = {"train": mixed.take(train_idx), "validation": mixed.take(val_idx)}
    for i, name in enumerate(names):
        for part, rows in parts.items():
            counts[name][part] = int((rows.source == i).sum())
    n_mixed = len(mixed)
    del mixed
    manifest = {
        "schema_version": MANIFEST_VERSION, "recipe": recipe.name, "recipe_hash": digest or recipe_hash(recipe),
        "seed": recipe.seed,
        "mix": {"strategy": recipe.mix.strategy,
                "weights": {s.name: s.weight / sum(x.weight for x in recipe.sources) for s in recipe.sources},
                "realised": {name: counts[name]["mixed"] / max(1, n_mixed) for name in names}},
        "sources": {name: {k: counts[name][k] for k in SOURCE_COUNTS} for name in names},
        "stages": {"read": sum(c["read"] for c in counts.values()),
                   "loaded": sum(c["loaded"] for c in counts.values()),
                   "after_exact_dedup": after_exact, "after_near_dedup": after_near,
                   "mixed": n_mixed, "repeats": repeats, "duplicates_after_mix": dup_after,
                   "train": len(parts["train"]), "validation": len(parts["validation"])},
        "near_duplicates": {"action": recipe.near_duplicates.action, "threshold": recipe.near_duplicates.threshold,
                            "examples": near_examples},
        "outputs": _export(parts, recipe.formats, out_dir),
    }
    write_manifest(out_dir, manifest)
    log(f"train {len(parts['train'])} rows, validation {len(parts['validation'])} rows → {out_dir}")
    return manifest


SOURCE_COUNTS = ("read", "invalid", "invalid_examples", "empty_turns", "empty_rows", "loaded", "duplicates_within",
                 "duplicates_across", "near_duplicates", "near_removed", "kept", "mixed", "train", "validation")


def _read_and_dedup(recipe: Recipe, counts: dict, log: Log) -> Rows:
    """Read every source; exact duplicates out within each, then across (the earlier source keeps the row)."""
    pools = []
    for i, spec in enumerate(recipe.sources):
        rows, c = read_pool(spec, i, recipe)
        within = first_occurrence(rows.key)
        pools.append(rows.take(np.flatnonzero(within)))
        counts[spec.name] = {**dataclasses.asdict(c), "duplicates_within": int((~within).sum())}
        log(f"{spec.name}: {c.read} rows read, {c.invalid} invalid, {c.empty_rows} empty, "
            f"{counts[spec.name]['duplicates_within']} duplicates")
    corpus = Rows.concat(pools)
    del pools
    across = first_occurrence(corpus.key)
    for i, spec in enumerate(recipe.sources):
        counts[spec.name]["duplicates_across"] = int(((~across) & (corpus.source == i)).sum())
    return corpus.take(np.flatnonzero(across))


def _near_stage(corpus: Rows, recipe: Recipe, names: list[str], counts: dict, log: Log) -> tuple[Rows, list]:
    spec = recipe.near_duplicates
    for name in names:
        counts[name].update(near_duplicates=0, near_removed=0)
    if spec.action == "off":
        return corpus, []
    pairs = near_duplicates(_iter_lines(corpus), spec.threshold, spec.num_perm)
    log(f"near-duplicates: {len(pairs)} rows (threshold {spec.threshold})")
    examples = _near_examples(corpus, pairs)
    for row, _, _ in pairs:
        counts[names[corpus.source[row]]]["near_duplicates"] += 1
    if spec.action != "remove" or not pairs:
        return corpus, examples
    drop = np.zeros(len(corpus), dtype=bool)
    drop[[r for r, _, _ in pairs]] = True
    for row, _, _ in pairs:
        counts[names[corpus.source[row]]]["near_removed"] += 1
    return corpus.take(np.flatnonzero(~drop)), examples


def _mix_stage(corpus: Rows, recipe: Recipe, names: list[str], counts: dict,
               rng: np.random.Generator) -> tuple[Rows, int, int]:
    """Mix by weight, then de-duplicate again; returns (mixed rows, repeats, duplicates removed)."""
    # Sources are contiguous in `corpus` (concatenated in recipe order), as `mix` expects.
    sizes = [int((corpus.source == i).sum()) for i in range(len(names))]
    for name, n in zip(names, sizes):
        counts[name]["kept"] = n
    mixed = corpus.take(mix(sizes, [s.weight for s in recipe.sources], recipe.mix, rng))
    repeats = dup_after = 0
    if recipe.mix.strategy == "resample":   # repeats are the point of resampling: counted, kept
        repeats = int((~first_occurrence(mixed.key)).sum())
    else:
        again = first_occurrence(mixed.key)
        dup_after = int((~again).sum())
        mixed = mixed.take(np.flatnonzero(again))
    for i, name in enumerate(names):
        counts[name]["mixed"] = int((mixed.source == i).sum())
    return mixed, repeats, dup_after


def _iter_lines(rows: Rows):
    for chunk in rows.lines.chunks:
        yield from chunk.to_pylist()


def _near_examples(corpus: Rows, pairs: list) -> list[dict]:
    out = []
    for row, same, sim in pairs[:NEAR_EXAMPLES]:
        a, b = (json.loads(corpus.lines[int(i)].as_py()) for i in (row, same))
        out.append({"id": a["id"], "same_as": b["id"], "similarity": round(float(sim), 4)})
    return out


def _export(parts: dict[str, Rows], formats: list[str], out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for part, rows in parts.items():
        jsonl = out_dir / f"{part}.jsonl"
        write_jsonl(rows.lines, jsonl)
        if "parquet" in formats:
            write_parquet_from_jsonl(jsonl, out_dir / f"{part}.parquet")
            outputs[f"{part}.parquet"] = {"rows": len(rows), "sha256": sha256_file(out_dir / f"{part}.parquet")}
        if "jsonl" in formats:
            outputs[f"{part}.jsonl"] = {"rows": len(rows), "sha256": sha256_file(jsonl)}
        else:
            jsonl.unlink()
    return dict(sorted(outputs.items()))


def build_or_reuse(recipe: Recipe, out_dir: Path, log: Log = lambda m: None) -> dict:
    """The manifest of out_dir if it was built from this very recipe and inputs and is intact; else build."""
    digest = recipe_hash(recipe)
    existing = read_manifest(out_dir)
    if existing and existing.get("recipe_hash") == digest and outputs_intact(out_dir, existing):
        log(f"data: reusing {out_dir} (recipe hash {digest[:12]})")
        return existing
    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = build_dataset(recipe, tmp, log, digest)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return manifest


def prepared_dir(recipe: Recipe) -> Path:
    """Where a suite's recipe is built: $HARNESS_CACHE/data/NAME-HASH (reused while the hash holds)."""
    return cache_root() / "data" / f"{recipe.name}-{recipe_hash(recipe)[:16]}"


def prepared_split(recipe_path: Path, split_name: str, log: Log = lambda m: None) -> Path:
    """The JSONL of one split of a recipe, built (or reused) for a suite's `recipe:` data."""
    recipe = load_recipe(recipe_path)
    if "jsonl" not in recipe.formats:
        raise DataError(f"{recipe_path}: a suite reads the recipe's JSONL: add jsonl to `formats`")
    out = prepared_dir(recipe)
    build_or_reuse(recipe, out, log)
    return out / f"{split_name}.jsonl"


def suite_data_records(suite) -> list[dict]:
    """One record per recipe the suite trains on (manifest hash, counts), for results.json."""
    out = []
    for spec in suite.train.data if suite.train else []:
        if spec.recipe is not None:
            recipe = load_recipe(suite.resolve(spec.recipe))
            out_dir = prepared_dir(recipe)
            manifest = build_or_reuse(recipe, out_dir)
            out.append({"split": spec.recipe_split, **data_record(out_dir, manifest)})
    return out
