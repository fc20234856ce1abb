"""Model configs (local, shipped, hub, built-in) and the meta-device parameter inventory.

The model is never loaded: its config.json is read and its parameters are counted by building it
on the meta device (shipped configs carry that inventory; others are cached under the harness cache).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from harness.builtin import builtin_path
from harness.builtin_recipes import BUILTIN_PREFIX, RECIPES, cache_root
from harness.errors import UserError
from harness.results import write_atomic


class ModelConfigError(UserError):
    """The model's config cannot be found or read; one line with the fix (exit code 2)."""


SHIPPED_DIR = Path(__file__).parent.with_name("model_configs")   # harness/model_configs
# Keys that do not change the parameter shapes (left out of the inventory cache key).
_NOT_SHAPE_KEYS = {
    "_name_or_path", "transformers_version", "torch_dtype", "dtype", "use_cache", "bos_token_id",
    "eos_token_id", "pad_token_id", "architectures", "initializer_range", "rope_theta", "rope_scaling",
    "rope_parameters", "rope_local_base_freq", "max_position_embeddings", "attention_dropout",
    "sliding_window", "use_sliding_window", "max_window_layers", "layer_types", "_sliding_window_pattern",
    "rms_norm_eps", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
    "generation_config", "task_specific_params", "id2label", "label2id",
}


@dataclass
class ModelConfig:
    """A model's config.json, where it came from, and (for shipped configs) its meta-device inventory."""

    raw: dict
    source: str            # local | shipped | hub | builtin
    name: str              # what was asked for
    where: str             # the file or hub id it was read from
    inventory: Optional[dict] = None
    published_parameters: Optional[int] = None

    @property
    def model_type(self) -> str:
        return str(self.raw.get("model_type", "?"))

    def shape_key(self) -> str:
        keep = {k: v for k, v in self.raw.items() if k not in _NOT_SHAPE_KEYS}
        return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_transformers(self):
        from transformers import AutoConfig

        kwargs = {k: v for k, v in self.raw.items() if k not in ("model_type", "transformers_version")}
        if "torch_dtype" in kwargs:
            kwargs.setdefault("dtype", kwargs.pop("torch_dtype"))
        try:
            return AutoConfig.for_model(self.model_type, **kwargs)
        except (ValueError, KeyError) as e:
            raise ModelConfigError(f"{self.where}: transformers does not know model_type "
                                   f"{self.model_type!r} ({e})") from None


_SHIPPED_CACHE: dict[str, Any] = {}


def shipped_configs() -> dict[str, Path]:
    """Lower-cased hub id (and file stem) → shipped config file."""
    if "index" not in _SHIPPED_CACHE:
        index: dict[str, Path] = {}
        for f in sorted(SHIPPED_DIR.glob("*.json")):
            data = json.loads(f.read_text(encoding="utf-8"))
            index[f.stem.lower()] = f
            for hub_id in data.get("hub_ids", []):
                index[hub_id.lower()] = f
        _SHIPPED_CACHE["index"] = index
    return _SHIPPED_CACHE["index"]


def _load_shipped(path: Path, name: str) -> ModelConfig:
    data = json.loads(path.read_text(encoding="utf-8"))
    return ModelConfig(raw=data["config"], source="shipped", name=name, where=str(path),
                       inventory=data.get("inventory"), published_parameters=data.get("published_parameters"))


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_model_config(path_or_id: str) -> ModelConfig:
    """config.json of a model, never its weights.

    Order: 'builtin:NAME' → a local directory with config.json (or a config file) → a config
    shipped with the harness, by hub id (case-insensitive) → the hub, config.json only → error.
    """
    s = str(path_or_id).strip()
    if s.startswith(BUILTIN_PREFIX):
        return _builtin_config(s)
    p = Path(s).expanduser()
    if p.is_dir():
        f = p / "config.json"
        if not f.exists():
            raise ModelConfigError(f"{p}: no config.json in this directory (is it a model directory?)")
        return ModelConfig(raw=_read_json(f), source="local", name=s, where=str(f))
    if p.is_file() and p.suffix == ".json":
        return ModelConfig(raw=_read_json(p), source="local", name=s, where=str(p))
    shipped = shipped_configs().get(s.lower().rstrip("/"))
    if shipped is not None:
        return _load_shipped(shipped, s)
    known = ", ".join(sorted({json.loads(f.read_text())["hub_ids"][0] for f in set(shipped_configs().values())}))
    looks_hub = s.count("/") == 1 and not s.startswith((".", "/", "~"))
    if not looks_hub:
        raise ModelConfigError(f"{s}: not a model directory with config.json and not a hub id; "
                               f"shipped configs: {known}")
    if _offline():
        raise ModelConfigError(f"{s}: no shipped config and the hub is offline (HF_HUB_OFFLINE); "
                               f"give a local model directory, or one of: {known}")
    _probe_hub(s, known)
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(s)          # downloads config.json only
    except Exception as e:  # gated repo, unknown architecture: one line
        raise ModelConfigError(f"{s}: could not read its config.json from the hub "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                               f"give a local model directory, or one of: {known}") from None
    raw = cfg.to_dict()
    text = raw.get("text_config")
    if isinstance(text, dict) and "hidden_size" not in raw:
        raw = {**text, "model_type": text.get("model_type", raw.get("model_type"))}
    return ModelConfig(raw=raw, source="hub", name=s, where=f"hub:{s}")


def _probe_hub(hub_id: str, known: str) -> None:
    """One HEAD request for the id's config.json, unless it is cached: an unreachable hub or an
    unknown id is one error line at once, where the download itself would log a warning per
    retry and back off for half a minute first."""
    import logging

    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    if isinstance(huggingface_hub.try_to_load_from_cache(hub_id, "config.json"), str):
        return
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)    # a hub client that still retries: its warnings are this one line
    try:
        huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(hub_id, "config.json"))
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise ModelConfigError(f"{hub_id}: no such model on the hub (or a gated one: log in with `hf auth login`); "
                               f"give a local model directory, or one of: {known}") from None
    except Exception as e:  # no network, DNS, refused, timeout, proxy
        raise ModelConfigError(f"{hub_id}: no shipped config and the hub is not reachable ({type(e).__name__}); "
                               f"give a local model directory, or one of: {known}") from None
    finally:
        hub_log.setLevel(level)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelConfigError(f"{path}: cannot read the model config ({e})") from None


def _builtin_config(spec: str) -> ModelConfig:
    name = spec[len(BUILTIN_PREFIX):]
    if name not in RECIPES:
        raise ModelConfigError(f"{spec}: unknown built-in model; available: {', '.join(RECIPES) or 'none'}")
    try:
        cached = builtin_path(name) / "config.json"
        if cached.exists():
            return ModelConfig(raw=_read_json(cached), source="builtin", name=spec, where=str(cached))
    except Exception:  # the cache location is a convenience here
        pass
    r = RECIPES[name]  # not built yet: the recipe determines the config (vocabulary = recipe size)
    raw = {"model_type": "qwen3", "vocab_size": r.vocab_size, "hidden_size": r.hidden_size,
           "intermediate_size": r.intermediate_size, "num_hidden_layers": r.layers,
           "num_attention_heads": r.heads, "num_key_value_heads": r.kv_heads,
           "head_dim": r.hidden_size // r.heads, "max_position_embeddings": r.max_positions,
           "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False}
    return ModelConfig(raw=raw, source="builtin", name=spec, where=f"{spec} (recipe)")


def cache_dir() -> Path:
    return cache_root() / "meta"


def build_inventory(mc: ModelConfig) -> dict:
    """Build the model on the meta device (no memory, no weights) and list its parameters."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cfg = mc.to_transformers()
    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(cfg)
        except ValueError:
            model = AutoModelForSeq2SeqLM.from_config(cfg)
    return inventory_from_model(model)


def _pattern(name: str) -> str:
    return re.sub(r"\.\d+\.", ".{i}.", name)


def inventory_from_model(model) -> dict:
    """Every parameter (tied ones once) and every nn.Linear, with layer indices folded to {i}."""
    import torch.nn as nn

    modules = dict(model.named_modules())
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_name = next((n for n, m in modules.items() if m is out_emb), "lm_head") if out_emb is not None else ""
    embed_ids = {id(m.weight) for m in modules.values() if isinstance(m, nn.Embedding)}
    groups: dict[tuple, int] = {}
    tensors = total = 0
    for name, p in model.named_parameters():
        owner = modules.get(name.rsplit(".", 1)[0]) if "." in name else model
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(owner, nn.Embedding):
            kind = "embedding"
        elif isinstance(owner, nn.Linear):
            kind = "linear" if leaf == "weight" else "bias"
        else:
            kind = "norm" if p.dim() == 1 else "other"
        key = (_pattern(name), tuple(p.shape), kind)
        groups[key] = groups.get(key, 0) + 1
        tensors += 1
        total += p.numel()
    lin: dict[tuple, int] = {}
    for name, m in modules.items():
        if isinstance(m, nn.Linear):
            key = (_pattern(name), m.in_features, m.out_features, m.bias is not None,
                   id(m.weight) in embed_ids)
            lin[key] = lin.get(key, 0) + 1
    return {"version": 1, "total": total, "tensors": tensors, "output": out_name,
            "params": [[k[0], list(k[1]), k[2], c] for k, c in groups.items()],
            "linears": [[k[0], k[1], k[2], k[3], c, k[4]] for k, c in lin.items()]}


def model_inventory(mc: ModelConfig, build: bool = True) -> dict:
    """The shipped inventory, else the user cache, else a meta-device build (then cached)."""
    key = mc.shape_key()
    if mc.inventory and mc.inventory.get("key") == key:
        return mc.inventory
    path = cache_dir() / f"{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            pass
    if not build:
        raise ModelConfigError(f"{mc.name}: no parameter inventory cached")
    inv = build_inventory(mc)
    inv["key"] = key
    try:
        write_atomic(path, json.dumps(inv))
    except OSError:
        pass  # a read-only cache only costs a rebuild next time
    return inv


@dataclass
class Inventory:
    total: int
    tensors: int
    output: str
    params: list            # [pattern, shape, kind, count]
    linears: list           # [pattern, in, out, bias, count, tied_to_embedding]

    @classmethod
    def from_dict(cls, d: dict) -> "Inventory":
        return cls(d["total"], d["tensors"], d.get("output", "lm_head"), d["params"], d["linears"])

    def numel(self, kinds: Optional[set] = None) -> int:
        return sum(math.prod(s) * c for _, s, k, c in self.params if kinds is None or k in kinds)

    def count(self, kinds: Optional[set] = None) -> int:
        return sum(c for _, _, k, c in self.params if kinds is None or k in kinds)

    def is_output(self, pattern: str) -> bool:
        return bool(self.output) and (pattern == self.output or pattern.endswith("." + self.output))

    def targeted(self, targets: Any) -> list:
        """nn.Linear modules LoRA wraps (PEFT rules: 'all-linear' = every Linear but the output layer;
        a list matches the name or its dotted suffix; a string is a full regex match)."""
        out = []
        for row in self.linears:
            pattern = row[0]
            name = pattern.replace("{i}", "0")
            if targets == "all-linear":
                hit = not self.is_output(pattern)
            elif isinstance(targets, str):
                hit = re.fullmatch(targets, name) is not None
            else:
                hit = any(name == t or name.endswith("." + t) for t in targets)
            if hit:
                out.append(row)
        return out

    def target_suffixes(self, targets: Any) -> set:
        return {row[0].rsplit(".", 1)[-1] for row in self.targeted(targets)}

    def lora_params(self, targets: Any, r: int) -> int:
        return sum(r * (row[1] + row[2]) * row[4] for row in self.targeted(targets))

    def lora_tensors(self, targets: Any) -> int:
        return 2 * sum(row[4] for row in self.targeted(targets))

    def quantized_linears(self) -> list:
        """Linears bitsandbytes quantizes: all but the output layer and anything tied to an embedding."""
        return [row for row in self.linears if not self.is_output(row[0]) and not row[5]]

    def shapes(self, kinds: Optional[set] = None):
        for _, s, k, c in self.params:
            if kinds is None or k in kinds:
                for _ in range(c):
                    yield tuple(s)


def refresh_shipped_configs(names: Optional[list] = None, log=print) -> None:
    """Rebuild the meta-device inventory stored in each shipped config (after editing a config)."""
    for f in sorted(SHIPPED_DIR.glob("*.json")):
        if names and f.stem not in names:
            continue
        data = json.loads(f.read_text(encoding="utf-8"))
        mc = ModelConfig(raw=data["config"], source="shipped", name=f.stem, where=str(f))
        t0 = time.perf_counter()
        inv = build_inventory(mc)
        inv["key"] = mc.shape_key()
        data["inventory"] = inv
        f.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        pub = data.get("published_parameters")
        log(f"{f.stem}: {inv['total']:,} parameters (published {pub:,}) in {time.perf_counter() - t0:.1f}s")
