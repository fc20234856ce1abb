"""manifest.json: what a build read, dropped, mixed and wrote — enough to trust or redo it.

    schema_version, recipe (name), recipe_hash, seed, mix {strategy, weights, realised},
    sources {NAME: {read, invalid, invalid_examples, empty_turns, empty_rows, loaded,
                    duplicates_within, duplicates_across, near_duplicates, near_removed,
                    kept, mixed, train, validation}},
    stages {read, loaded, after_exact_dedup, after_near_dedup, mixed, repeats,
            duplicates_after_mix, train, validation},
    near_duplicate_examples [{row, same_as, similarity}], outputs {FILE: {rows, sha256}}

No timestamps: the same recipe and seed give the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from harness.dataprep.export import sha256_file

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"


def write_manifest(out_dir: Path, manifest: dict) -> str:
    path = out_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    return sha256_file(path)


def read_manifest(out_dir: Path) -> Optional[dict]:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def outputs_intact(out_dir: Path, manifest: dict) -> bool:
    """Every output the manifest lists exists with the recorded hash (a reused build is the real one)."""
    return all((out_dir / name).is_file() and sha256_file(out_dir / name) == rec["sha256"]
               for name, rec in manifest.get("outputs", {}).items())


def data_record(out_dir: Path, manifest: dict) -> dict:
    """The part of results.json that names the training data: manifest hash and per-source counts."""
    return {"recipe": manifest["recipe"], "recipe_hash": manifest["recipe_hash"],
            "manifest_sha256": sha256_file(Path(out_dir) / MANIFEST), "dir": str(out_dir),
            "seed": manifest["seed"], "mix": manifest["mix"], "stages": manifest["stages"],
            "sources": {name: {k: v for k, v in rec.items() if k != "invalid_examples"}
                        for name, rec in manifest["sources"].items()}}
