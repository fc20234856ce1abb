"""The built-in model ships with the package: loaded as is, no build and no cache; rebuilt only
when its recipe changes (and then the shipped copy is stale, which a test here catches)."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from harness import builtin
from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
from harness.metrics import build_metrics
from harness.metrics.base import GradedItem
from harness.data import load_rows
from harness.suite import DataSpec, GenerationSpec, parse_suite

NAME = "tiny-translator"


def test_shipped_copy_was_made_by_the_current_recipe():
    shipped = json.loads((builtin.shipped_path(NAME) / builtin.RECIPE_FILE).read_text())
    # a recipe change without `python -m harness.builtin` fails here, not on a user's machine
    assert shipped["recipe_id"] == builtin.recipe_id(NAME)
    assert shipped["recipe"] == builtin.asdict(builtin.RECIPES[NAME])
    assert re.fullmatch(r"g\d+-[0-9a-f]{8}", shipped["recipe_id"])


def test_shipped_files_stay_under_the_repository_file_limit():
    sizes = {p.name: p.stat().st_size for p in builtin.shipped_path(NAME).iterdir()}
    assert {"model.safetensors", "tokenizer.json", "config.json", "recipe.json"} <= set(sizes)
    assert max(sizes.values()) < 3_000_000


def test_builtin_resolves_to_the_shipped_copy_without_touching_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    built = []
    monkeypatch.setattr(builtin, "build_tiny_translator", lambda *a, **k: built.append(a))
    path = builtin.resolve_model_path(f"builtin:{NAME}", log=lambda m: None)
    assert path == str(builtin.shipped_path(NAME))
    assert built == [] and not (tmp_path / "cache").exists()
    model, tokenizer = load_model_and_tokenizer(path)
    assert sum(p.numel() for p in model.parameters()) == 721_984
    assert tokenizer.eos_token == "<|im_end|>" and len(tokenizer) == 1024


def test_a_changed_recipe_is_built_into_the_cache_not_over_the_shipped_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setitem(builtin.RECIPES, NAME, replace(builtin.RECIPES[NAME], pretrain_steps=401))
    rid = builtin.recipe_id(NAME)
    assert rid != builtin.shipped_recipe_id(NAME)
    assert builtin.builtin_path(NAME) == tmp_path / "builtin" / f"{NAME}-{rid}"


def _fr_en_bleu(path: str, n: int) -> float:
    model, tokenizer = load_model_and_tokenizer(path)
    suite = parse_suite("name: b\nmodels: [{path: builtin:tiny-translator}]\n"
                        "tasks: [{name: fr-en, data: {synthetic: {n: 1}}}]\n")
    examples = load_rows(DataSpec(synthetic={"direction": "fr-en", "split": "test", "n": n}), suite)
    gens = TransformersBackend(model, tokenizer).generate(examples, GenerationSpec(max_new_tokens=48, batch_size=n))
    bleu = build_metrics(["bleu"], {})[0]
    items = [GradedItem(id=ex.id, source=ex.source_text, reference=ex.reference, output=g.text,
                        finish_reason=g.finish_reason) for ex, g in zip(examples, gens)]
    return bleu.score(bleu.stats(items))


@pytest.mark.slow
def test_rebuilding_from_the_recipe_still_learns(tmp_path):
    """The build command still works and still makes a translator (minutes on 2 cores).

    Weights differ from the shipped copy across machines, so the check is on what it learned,
    not on the bytes: the pre-training loss falls, and fr→en BLEU is close to the shipped model's.
    """
    lines: list[str] = []
    target = builtin.build_tiny_translator(tmp_path / NAME, builtin.RECIPES[NAME], log=lines.append)
    losses = [float(m.group(1)) for m in (re.search(r"loss ([0-9.]+)$", ln) for ln in lines) if m]
    assert len(losses) == 5 and losses[-1] < losses[0] / 4
    rebuilt, shipped = _fr_en_bleu(str(target), 40), _fr_en_bleu(str(builtin.shipped_path(NAME)), 40)
    assert shipped > 20 and rebuilt > shipped - 8
