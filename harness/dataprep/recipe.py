"""Recipe YAML → typed `Recipe`, validated whole at load; errors name file, line and field.

A recipe lists sources (each read into the chat `messages` schema) and says how to
de-duplicate, mix, split and export them. See docs/data.md for every field.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import UserError
from harness.yaml_lines import line_map

RECIPE_VERSION = 1   # bump when the same recipe would build different bytes


class RecipeError(UserError, ValueError):
    """A recipe the user can fix; str() is the whole one-line message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParallelSpec(_Strict):
    source: str = Field(..., description="Source-language file, one sentence a line (.gz fine).")
    target: str = Field(..., description="Target-language file, aligned line by line.")
    direction: str = Field(..., pattern=r"^[a-z]{2,3}-[a-z]{2,3}$", description="e.g. en-fr")
    prompt: str = Field("Translate {src_name} to {tgt_name}:\n{source}",
                        description="User message; {src_name}, {tgt_name}, {source} are filled in.")


class HubSpec(_Strict):
    name: str = Field(..., description="Hub dataset id, e.g. HuggingFaceH4/no_robots (needs network).")
    config: Optional[str] = None
    split: str = "train"
    revision: Optional[str] = Field(None, description="Pin a commit so the recipe hash means the same data.")


class SourceSpec(_Strict):
    """One source. Exactly one of path / parallel / hf."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Tag stored on every row.")
    path: Optional[str] = Field(None, description="JSONL (.jsonl/.json, .gz fine), CSV, Parquet, or a "
                                                   "`datasets.save_to_disk` directory.")
    parallel: Optional[ParallelSpec] = None
    hf: Optional[HubSpec] = None
    format: Literal["auto", "messages", "prompt_completion", "alpaca", "sharegpt"] = Field(
        "auto", description="Row format; auto picks by the row's keys.")
    columns: dict[str, str] = Field(default_factory=dict, description="Rename columns before reading, "
                                    "{field: column}, e.g. {prompt: question, completion: answer}.")
    system: Optional[str] = Field(None, description="System message added to rows that have none.")
    weight: float = Field(1.0, gt=0, description="Mixing weight (relative).")
    limit: Optional[int] = Field(None, ge=1, description="Read only the first N rows.")
    on_error: Optional[Literal["fail", "skip"]] = Field(None, description="Overrides the recipe's on_error.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SourceSpec":
        given = [k for k in ("path", "parallel", "hf") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, parallel, hf (got {', '.join(given) or 'none'})")
        return self


class NearDuplicateSpec(_Strict):
    action: Literal["off", "report", "remove"] = Field(
        "report", description="MinHash near-duplicates: off, report them, or remove all but the first.")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of word 1-2-gram sets.")
    num_perm: int = Field(128, ge=16, le=1024)

    @field_validator("action", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        return "off" if v is False else v   # YAML reads a bare `off` as false


class MixSpec(_Strict):
    strategy: Literal["concat", "interleave", "resample"] = Field(
        "concat", description="concat: every row once; interleave: weighted draws without repetition "
                              "until a source runs out (approximate ratios); resample: exact ratios, "
                              "drawn with replacement.")
    size: Optional[int] = Field(None, ge=1, description="Rows after mixing (resample: default the "
                                                         "de-duplicated total; interleave: a cap).")


class SplitSpec(_Strict):
    validation: float = Field(0.05, ge=0, description="Share (< 1) or number of rows (>= 1) for validation.")
    min_validation: int = Field(100, ge=0, description="Floor on the validation size.")
    stratify: bool = Field(False, description="Give every source its share of the validation set.")


class Recipe(_Strict):
    name: str
    seed: int = 0
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="fail: a bad row stops the build naming file and line; skip: counted per source.")
    sources: list[SourceSpec] = Field(..., min_length=1)
    near_duplicates: NearDuplicateSpec = Field(default_factory=NearDuplicateSpec)
    mix: MixSpec = Field(default_factory=MixSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    formats: list[Literal["jsonl", "parquet"]] = Field(["jsonl", "parquet"], min_length=1)
    base_dir: str = Field(".", exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> "Recipe":
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique; repeated: {dup}")
        return self

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def on_error_of(self, source: SourceSpec) -> str:
        return source.on_error or self.on_error


# ----------------------------------------------------------------------- loading
def _owner(loc: tuple) -> Optional[type[BaseModel]]:
    model: Any = Recipe
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = _unwrap(field.annotation)
        if model is None:
            return None
    return model


def _unwrap(ann: Any) -> Optional[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        if (found := _unwrap(arg)) is not None:
            return found
    return None


def _format(err: dict, file: str, lines: dict[tuple, int]) -> str:
    loc = tuple(err["loc"])
    field = ".".join(map(str, loc)) or "(top level)"
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    where = f"{file}:{line}" if line else file
    if err["type"] == "extra_forbidden":
        known = [k for k in getattr(_owner(loc), "model_fields", {}) if k != "base_dir"]
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        return f"{where}: unknown key '{field}': " + (f"did you mean '{hint[0]}'?" if hint
                                                       else f"allowed keys: {', '.join(known)}")
    if err["type"] == "missing":
        return f"{where}: missing required field '{field}': add it"
    got = err.get("input")
    got_s = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{where}: field '{field}': {err['msg'].removeprefix('Value error, ')}{got_s}"


def parse_recipe(text: str, file: str = "<recipe>", base_dir: Union[str, Path] = ".") -> Recipe:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RecipeError(f"{file}{f':{mark.line + 1}' if mark else ''}: not valid YAML: "
                          f"{getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{file}: a recipe is a YAML mapping with keys name, sources")
    try:
        recipe = Recipe.model_validate({**raw, "base_dir": str(base_dir)})
    except ValidationError as e:
        errors = [_format(err, file, line_map(text)) for err in e.errors()]
        raise RecipeError(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")) from None
    lines = line_map(text)
    for i, s in enumerate(recipe.sources):
        paths = [("path", s.path)] if s.path else []
        if s.parallel:
            paths += [("parallel.source", s.parallel.source), ("parallel.target", s.parallel.target)]
        for field, p in paths:
            if not recipe.resolve(p).exists():
                loc = ("sources", i) + tuple(field.split("."))
                line = lines.get(loc) or lines.get(("sources", i))
                raise RecipeError(f"{file}:{line}: field 'sources.{i}.{field}': file not found: "
                                  f"{recipe.resolve(p)} (paths are relative to the recipe file)")
    return recipe


def load_recipe(path: Union[str, Path]) -> Recipe:
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: recipe file not found")
    return parse_recipe(p.read_text(encoding="utf-8"), file=str(p), base_dir=p.parent)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the validated recipe and the bytes of every local input: equal hash, equal data."""
    inputs = {}
    for s in recipe.sources:
        for p in ([s.path] if s.path else []) + ([s.parallel.source, s.parallel.target] if s.parallel else []):
            inputs[p] = _file_digest(recipe.resolve(p))
    payload = {"version": RECIPE_VERSION, "recipe": recipe.model_dump(mode="json", exclude={"base_dir"}),
               "inputs": inputs}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
