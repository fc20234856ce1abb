"""Shared fixtures: tiny models built locally (seconds, cached per session), no hub access."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A very small pre-trained Qwen3-style translator (a few seconds to build)."""
    from harness.builtin import build_tiny_translator
    from harness.builtin_recipes import TinyRecipe

    recipe = TinyRecipe(hidden_size=64, intermediate_size=128, layers=2, heads=2, kv_heads=1,
                        vocab_size=600, pretrain_pairs=800, pretrain_steps=40, batch_size=32)
    return build_tiny_translator(tmp_path_factory.mktemp("tiny") / "tiny-translator", recipe, log=lambda m: None)


@pytest.fixture(scope="session")
def tiny_model_and_tokenizer(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
