"""Checks of a suite against the file system and this machine, beyond its own schema.

- `read_json_schema`: a task's JSON Schema file parses and is a valid Draft 2020-12 schema.
- `model_source_problem` / `model_dir_problem`: a model is a known built-in, a directory that
  holds a model (or adapter), or a well-formed hub id.
- `check_runs_here`: settings this machine cannot run (fp16, qlora, unsloth, adamw_8bit without
  CUDA; a hub id not cached while HF_HUB_OFFLINE is set). Only the commands that train or grade
  here call it: `harness preflight` plans for the GPU the job will get, so the same suite is
  valid input to preflight on a laptop.

Each problem is one line (a `SuiteError`, exit 2), raised before any run directory exists.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from harness.errors import SuiteError

if TYPE_CHECKING:
    from harness.suite import ModelSpec, Suite


def read_json_schema(path: Path) -> Any:
    """A JSON Schema file, parsed and checked against Draft 2020-12 (SuiteError when not)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from harness.files import read_text

    text = read_text(path, "JSON Schema file", SuiteError)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise SuiteError(f"{path}:{e.lineno}: JSON Schema file is not valid JSON: {e.msg}") from None
    if not isinstance(schema, (dict, bool)):
        raise SuiteError(f"{path}: a JSON Schema is an object (or true/false), not {type(schema).__name__}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        raise SuiteError(f"{path}: not a valid Draft 2020-12 JSON Schema: {e.message}"
                         f" at {e.json_path}") from None
    return schema


def model_dir_problem(path: str, adapter: bool = False) -> Optional[str]:
    """Why a local model (or adapter) directory cannot be loaded, or None."""
    p = Path(path)
    what = "adapter directory" if adapter else "model directory"
    if not p.exists():
        return f"{what} not found: {p}"
    if not p.is_dir():
        return f"{p} is a file, expected {'an adapter' if adapter else 'a model'} directory"
    if not any(p.iterdir()):
        return f"{what} {p} is empty"
    marker = "adapter_config.json" if adapter else "config.json"
    if not (p / marker).is_file() and not (not adapter and (p / "adapter_config.json").is_file()):
        return f"{p} holds no {'PEFT adapter' if adapter else 'model'} (no {marker})"
    return None


def model_source_problem(path: str) -> Optional[str]:
    """Why a model path (built-in name, local directory or hub id) is wrong, or None. Whether a
    hub id can be downloaded is the machine's question: see `check_runs_here`."""
    from harness.builtin import BUILTIN_PREFIX, RECIPES

    if path.startswith(BUILTIN_PREFIX):
        name = path[len(BUILTIN_PREFIX):]
        if name not in RECIPES:
            hint = difflib.get_close_matches(name, RECIPES, n=1)
            return (f"unknown built-in model {name!r}"
                    + (f"; did you mean 'builtin:{hint[0]}'?" if hint else f"; available: {', '.join(RECIPES)}"))
        return None
    if looks_local(path) or Path(path).is_dir():
        return model_dir_problem(path)
    if not re.match(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$", path) or ".." in path:
        return f"{path!r} is neither a local directory nor a hub id (ORG/NAME)"
    return None


def check_runs_here(suite: Suite, models: Optional[list[ModelSpec]] = None, *, cuda: bool,
                    train: bool) -> None:
    """Conflicts between the suite and this machine, for the commands that train or grade here.

    `harness preflight` plans for a GPU the job has not got yet, so these are not checked when
    a suite loads for preflight; `train-and-grade`, `grade` and `audit` call this right after
    loading, before any run directory exists.
    """
    if train and suite.train is not None and not cuda:
        t = suite.train
        needs_gpu = [(t.precision == "fp16", "precision", "fp16 needs a CUDA GPU; use fp32 or bf16 on CPU"),
                     (t.method == "qlora", "method", "qlora needs a CUDA GPU (bitsandbytes 4-bit); "
                                                     "use method: lora on CPU"),
                     (t.backend == "unsloth", "backend", "unsloth needs a CUDA GPU; use backend: trl"),
                     (t.optimizer == "adamw_8bit", "optimizer", "adamw_8bit needs a CUDA GPU "
                                                                "(bitsandbytes); use adamw on CPU")]
        for bad, field, fix in needs_gpu:
            if bad:
                raise SuiteError(f"{suite.where('train', field)}: field 'train.{field}': {fix} (no CUDA GPU on "
                                 f"this machine; `harness preflight` still plans it for a GPU)")
    in_suite = models is None
    for i, m in enumerate(suite.models if in_suite else models):
        where = f"{suite.where('models', i, 'path')}: model {m.name}" if in_suite else f"--model {m.path}"
        if m.attn_implementation == "flash_attention_2" and not cuda and train:
            raise SuiteError(f"{where}: attn_implementation flash_attention_2 needs a CUDA GPU; use sdpa")
        problem = hub_offline_problem(m.path)
        if problem:
            raise SuiteError(f"{where}: {problem}")


def hub_offline_problem(path: str) -> Optional[str]:
    """A hub id asked for while HF_HUB_OFFLINE is set and not in the local cache."""
    from harness.builtin import BUILTIN_PREFIX

    if path.startswith(BUILTIN_PREFIX) or looks_local(path) or Path(path).is_dir():
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes", "on"):
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(path, "config.json")
    except Exception:   # an id the hub library rejects: not cached either
        cached = None
    if isinstance(cached, str):
        return None
    return (f"{path!r} is a hub id, not in the local cache, and HF_HUB_OFFLINE is set: download it "
            f"first (huggingface-cli download {path}) or give a local directory")


def looks_local(path: str) -> bool:
    """A model path that names a directory (not a hub id like 'Qwen/Qwen3-0.6B' or 'builtin:...')."""
    return path.startswith((".", "/", "~")) or path.count("/") > 1
