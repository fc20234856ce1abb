"""What names a built-in model, the recipes that make them, and where harness caches what it builds.

Suite checks, the memory planner and dataprep need these names and places without building
anything: they live here, apart from the model builder (harness/builtin.py), and import
nothing of the project.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the built model; its hash names the cache entry."""

    version: str = "1"
    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    layers: int = 3
    heads: int = 4
    kv_heads: int = 2
    max_positions: int = 256
    pretrain_pairs: int = 6000
    pretrain_steps: int = 400
    batch_size: int = 48
    lr: float = 3e-3
    share_en_fr: float = 0.2   # share of en→fr rows in pre-training; the rest is fr→en
    seed: int = 0


RECIPES = {"tiny-translator": TinyRecipe()}


def cache_root() -> Path:
    """$HARNESS_CACHE (default ~/.cache/harness): built-in models, built data sets, model configs."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


def is_builtin(path: str) -> bool:
    return path.startswith(BUILTIN_PREFIX)
