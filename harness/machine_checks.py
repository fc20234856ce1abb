"""Conflicts between a loaded suite and this machine, for the commands that train or grade here.

`check_runs_here`: settings this machine cannot run (fp16, qlora, unsloth, adamw_8bit without
CUDA; a hub id not cached while HF_HUB_OFFLINE is set). Only the commands that train or grade
here call it: `harness preflight` plans for the GPU the job will get, so the same suite is
valid input to preflight on a laptop. Each problem is one line (a `SuiteError`, exit 2), raised
before any run directory exists.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from harness.builtin_recipes import BUILTIN_PREFIX
from harness.errors import SuiteError
from harness.suite import ModelSpec, Suite
from harness.suite_checks import looks_local


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
