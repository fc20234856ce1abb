"""Peak GPU memory of a fine-tuning job: estimated from the model config before, measured after.

    harness preflight SUITE [--gpu-memory 12GiB] [--json]

Before anything runs, `estimate(plan_from_suite(...))` gives the peak memory term by term:
weights, gradients, optimizer states, master weights, activations, the logits/loss buffers,
evaluation-time generation (KV cache of the grading batch), CUDA context and allocator
overhead. The model is never loaded: its config.json is read (local directory, a config shipped
in harness/model_configs/, or the hub, config only) and its parameters are counted by building
it on the meta device. Activations come from walking one training forward pass op by op and
adding up what autograd saves for backward, for the model's own attention implementation, with
or without gradient checkpointing, LoRA and autocast (docs/memory.md has every formula). The
sequence length is the one batches will really have: a sample of the suite's training rows is
tokenized when a tokenizer is at hand.

When the estimate does not fit the budget (given, from the suite, or read from the GPU through
NVML), `suggest_fix` tries the practitioners' changes in their order and prints the first
configuration that fits, with its cost.

After a run, `MemoryCallback` (a TrainerCallback) and `MemoryProbe` record what really was
there: the exact bytes of parameters, gradients and optimizer states after the first optimizer
step, the bytes of tensors saved for backward on the first batch (saved_tensors_hooks, storages
counted once), and on a GPU torch's peak allocated/reserved and NVML's used memory.
`memory_record` stores estimate vs measured per term in results.json (`models[i].memory`).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from harness.errors import UserError

GiB = 1024 ** 3
MiB = 1024 ** 2
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp64": 8, "int64": 8, "int32": 4, "bool": 1, "uint8": 1}
DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "fp32": "fp32", "bf16": "bf16",
               "fp16": "fp16"}

# The folk rule (MISSION.md fact 8): bytes per parameter for full fine-tuning with AdamW in mixed precision.
FOLK_RULE_BYTES_PER_PARAM = 17.5
FOLK_RULE_PARTS = {"weights": 2.0, "gradients": 4.0, "optimizer": 8.0, "activations": 2.0, "framework": 1.5}

# Constants that are not derived from the model (docs/memory.md, "Framework overhead").
CUDA_CONTEXT_BYTES = 512 * MiB       # CUDA context + cuBLAS/cuDNN handles: NVML sees it, torch does not
ALLOCATOR_OVERHEAD = 0.08            # caching allocator: block rounding and fragmentation (reserved - allocated)
CHUNK_TOKENS, CHUNK_VOCAB = 4096, 32768   # TRL's chunked LM head tile (trl.kernels.chunked_logprob)
NF4_BLOCK, NF4_NESTED_BLOCK = 64, 256     # bitsandbytes 4-bit blocks (double quantization)
BNB8_BLOCK, BNB8_MIN_SIZE = 256, 4096     # bitsandbytes 8-bit optimizer blocks; smaller params stay 32-bit
REFERENCE_NLL_MAX_LEN = 4096              # harness.backends.transformers_backend.reference_nll

GC_COST = "+25% step time (the forward runs twice; 20-30% in practice)"


class ModelConfigError(UserError):
    """The model's config cannot be found or read; one line with the fix (exit code 2)."""


# =========================================================================== sizes
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


def parse_size(text: Any) -> int:
    """'12GiB', '12G', '11.5 GiB', '12000MiB', '16GB' (decimal), or a number of bytes → bytes.

    Binary units (KiB, MiB, GiB, TiB) and bare letters (K, M, G, T) are powers of 1024; 'GB'
    and friends are powers of 1000 (a '12 GB' card usually has 12 GiB: write 12GiB).
    """
    if isinstance(text, (int, float)):
        return int(text)
    m = _SIZE.match(str(text))
    if not m:
        raise UserError(f"memory size {text!r}: write it like 12GiB, 24G or 80000MiB")
    value, prefix, binary, b = m.groups()
    power = "kmgt".find(prefix.lower()) + 1 if prefix else 0
    base = 1000 if (b and not binary and prefix) else 1024
    return int(float(value) * base ** power)


def fmt_bytes(n: float) -> str:
    n = float(n)
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    if abs(n) >= MiB:
        return f"{n / MiB:.1f} MiB"
    if abs(n) >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


# =================================================================== model configs
SHIPPED_DIR = Path(__file__).with_name("model_configs")
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
    if s.startswith("builtin:"):
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
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(s)          # downloads config.json only
    except Exception as e:  # network, gated repo, unknown architecture: one line
        raise ModelConfigError(f"{s}: could not read its config.json from the hub "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                               f"give a local model directory, or one of: {known}") from None
    raw = cfg.to_dict()
    text = raw.get("text_config")
    if isinstance(text, dict) and "hidden_size" not in raw:
        raw = {**text, "model_type": text.get("model_type", raw.get("model_type"))}
    return ModelConfig(raw=raw, source="hub", name=s, where=f"hub:{s}")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelConfigError(f"{path}: cannot read the model config ({e})") from None


def _builtin_config(spec: str) -> ModelConfig:
    name = spec.split(":", 1)[1]
    from harness import builtin

    fn = getattr(builtin, "builtin_config", None)
    if fn is not None:
        cfg = fn(name)
        raw = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        return ModelConfig(raw=raw, source="builtin", name=spec, where=spec)
    recipes = getattr(builtin, "RECIPES", {})
    if name not in recipes:
        raise ModelConfigError(f"{spec}: unknown built-in model; available: {', '.join(recipes) or 'none'}")
    try:
        cached = builtin.builtin_path(name) / "config.json"
        if cached.exists():
            return ModelConfig(raw=_read_json(cached), source="builtin", name=spec, where=str(cached))
    except Exception:  # the cache location is a convenience here
        pass
    r = recipes[name]  # not built yet: the recipe determines the config (vocabulary = recipe size)
    raw = {"model_type": "qwen3", "vocab_size": r.vocab_size, "hidden_size": r.hidden_size,
           "intermediate_size": r.intermediate_size, "num_hidden_layers": r.layers,
           "num_attention_heads": r.heads, "num_key_value_heads": r.kv_heads,
           "head_dim": r.hidden_size // r.heads, "max_position_embeddings": r.max_positions,
           "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False}
    return ModelConfig(raw=raw, source="builtin", name=spec, where=f"{spec} (recipe)")


# ====================================================================== inventory
def cache_dir() -> Path:
    from harness.builtin import cache_root

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
        from harness.results import write_atomic

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


# ========================================================================= arch
@dataclass
class Arch:
    """What the activation walk needs from a decoder config."""

    model_type: str
    hidden: int
    inter: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    act: str = "silu"
    qk_norm: bool = False
    norm: str = "llama"           # llama: w * x.to(dtype); gemma: (x * (1 + w)).to(dtype)
    sandwich: bool = False        # gemma3: post-attention and pre/post-feed-forward norms
    embed_scale: bool = False
    rope_tables: int = 1          # gemma3 keeps a local and a global rope table
    sliding_window: Optional[int] = None
    sliding_layers: int = 0
    sliding: tuple = ()           # per layer: True for sliding-window layers (gemma3)
    known: bool = True

    @classmethod
    def from_config(cls, raw: dict) -> "Arch":
        t = raw.get("text_config") if isinstance(raw.get("text_config"), dict) and "hidden_size" not in raw else raw
        mt = str(t.get("model_type", "llama"))
        h = int(t["hidden_size"])
        heads = int(t["num_attention_heads"])
        layers = int(t["num_hidden_layers"])
        head_dim = int(t.get("head_dim") or h // heads)
        layer_types = t.get("layer_types") or []
        sliding = sum(1 for x in layer_types if x == "sliding_attention")
        gemma = mt.startswith("gemma")
        return cls(
            model_type=mt, hidden=h, inter=int(t["intermediate_size"]), layers=layers, heads=heads,
            kv_heads=int(t.get("num_key_value_heads") or heads), head_dim=head_dim,
            vocab=int(t["vocab_size"]), tied=bool(t.get("tie_word_embeddings", gemma)),
            act=str(t.get("hidden_activation") or t.get("hidden_act") or "silu"),
            qk_norm=mt in ("qwen3", "gemma3_text", "gemma3", "olmo2", "qwen3_moe"),
            norm="gemma" if gemma else "llama", sandwich=mt in ("gemma3_text", "gemma3", "gemma2"),
            embed_scale=gemma, rope_tables=2 if mt in ("gemma3_text", "gemma3") else 1,
            sliding_window=t.get("sliding_window") if sliding else None, sliding_layers=sliding,
            sliding=tuple(x == "sliding_attention" for x in layer_types[:layers]),
            known=mt in ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "gemma3", "gemma2", "gemma"),
        )


# ========================================================================= plan
@dataclass
class TrainPlan:
    """Everything the estimate needs: the model, the method, and the shapes batches will have."""

    model_name: str
    model_path: str
    config_source: str
    arch: Arch
    inventory: Inventory
    train: bool = True                 # False: a grading-only suite (no train section)
    method: str = "full"               # full | lora | qlora
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: Any = "all-linear"
    optimizer: str = "adamw"           # adamw | adamw_8bit | sgd | adafactor
    precision: str = "fp32"            # fp32 | bf16 | fp16 (bf16/fp16: autocast)
    weight_dtype: str = "fp32"         # how the (non-quantized) weights are stored
    master_weights: bool = False       # an fp32 copy kept by the optimizer when weights are half
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"  # eager | sdpa | flash_attention_2
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 512
    seq_len: int = 512                 # padded width of the widest batch (data-aware when possible)
    packing: bool = False
    padding_free: bool = False         # TRL packing (bfd): the batch becomes one row of packed tokens
    padded: bool = True                # rows of a batch differ in length (an attention mask is built)
    loss_impl: str = "chunked"         # chunked: TRL's fused LM head; full_logits: transformers' loss
    labelled_share: float = 1.0        # share of tokens with a label (chunked head scores only those on GPU)
    eval_batch_size: int = 0           # 0: no grading
    eval_prompt_len: int = 0
    eval_new_tokens: int = 0
    eval_score_len: int = 0
    eval_generates: bool = True
    eval_scores: bool = True
    eval_dtype: str = "fp32"
    device: str = "cuda"               # cuda (the preflight target) | cpu (to compare with a CPU run)
    backend: str = "trl"
    length_source: str = "max_seq_len"
    eval_length_source: str = "max_seq_len"
    lengths: Optional[list] = None     # token counts of sampled training rows (for the remedies)
    lengths_exact: bool = False        # tokenized (True) or a UTF-8 byte bound (False)
    notes: list = field(default_factory=list)
    sharding: Any = None               # [scale15] harness.sharding.ShardingPlan (several GPUs) or None

    # ---- derived shapes
    @property
    def rows(self) -> int:
        return 1 if self.padding_free else self.batch_size

    @property
    def width(self) -> int:
        return self.batch_size * self.seq_len if self.padding_free else self.seq_len

    @property
    def tokens(self) -> int:
        return self.rows * self.width

    @property
    def autocast(self) -> Optional[str]:
        return self.precision if self.precision in ("bf16", "fp16") and self.train else None

    @property
    def mask(self) -> str:
        """none | bool (a 4-D mask handed to SDPA, converted per layer) | eager (float mask, added)."""
        if self.attn_implementation == "flash_attention_2":
            return "none"
        if self.attn_implementation == "eager":
            return "eager"
        return "bool" if (self.padding_free or (self.padded and self.rows > 1)) else "none"

    @property
    def trainable_params(self) -> int:
        if not self.train:
            return 0
        if self.method == "full":
            return self.inventory.total
        return self.inventory.lora_params(self.lora_targets, self.lora_r)

    @property
    def total_params(self) -> int:
        """As PEFT reports it: base parameters plus the adapter's."""
        return self.inventory.total + (self.trainable_params if self.method in ("lora", "qlora") and self.train else 0)

    def describe(self) -> dict:
        return {
            "model": self.model_name, "path": self.model_path, "config": self.config_source,
            "method": self.method if self.train else "grade-only", "optimizer": self.optimizer,
            "precision": self.precision,
            "weight_dtype": "nf4 linears + fp32" if self.method == "qlora" and self.train else self.weight_dtype,
            "gradient_checkpointing": self.gradient_checkpointing, "attn_implementation": self.attn_implementation,
            "batch_size": self.batch_size, "grad_accum": self.grad_accum, "max_seq_len": self.max_seq_len,
            "seq_len": self.seq_len, "packing": self.packing, "padding_free": self.padding_free,
            "tokens_per_micro_batch": self.tokens, "loss": self.loss_impl,
            "lora": ({"r": self.lora_r, "alpha": self.lora_alpha, "dropout": self.lora_dropout,
                      "target_modules": self.lora_targets} if self.method in ("lora", "qlora") else None),
            "eval_batch_size": self.eval_batch_size, "eval_prompt_len": self.eval_prompt_len,
            "eval_new_tokens": self.eval_new_tokens, "eval_score_len": self.eval_score_len,
            "length_source": self.length_source, "eval_length_source": self.eval_length_source,
            "device": self.device,
        }


_GENERATION_METRICS = {"bleu", "chrf", "ter", "usability", "json_validity", "rouge", "exact_match"}


def _trl_has_fused_lm_head() -> bool:
    """TRL ≥ 1.x computes the SFT loss with a chunked LM head (no batch × seq × vocab logits).

    Read from the source rather than importing trl (seconds) so the preflight stays fast.
    """
    try:
        import importlib.util

        spec = importlib.util.find_spec("trl")
        if spec is None or not spec.submodule_search_locations:
            return False
        src = Path(list(spec.submodule_search_locations)[0]) / "trainer" / "sft_trainer.py"
        return "add_fused_lm_head" in src.read_text(encoding="utf-8")
    except (OSError, ValueError, ImportError):
        return False


def plan_from_suite(suite, model_spec, sample_tokenizer=None, device: str = "cuda",
                    model_config: Optional[ModelConfig] = None, data_aware: bool = True) -> TrainPlan:
    """The suite's training job (or grading, without a train section) as a TrainPlan.

    With `sample_tokenizer`, a sample of the training rows is tokenized (chat template applied)
    and the padded width of the widest batch is what the data really needs, capped by
    max_seq_len; with packing, rows are packed to max_seq_len. Without a tokenizer, training
    uses max_seq_len and grading an upper bound from the rows' UTF-8 byte counts.
    """
    mc = model_config or load_model_config(model_spec.path)
    arch = Arch.from_config(mc.raw)
    inv = Inventory.from_dict(model_inventory(mc))
    t = suite.train
    plan = TrainPlan(model_name=model_spec.name or model_spec.path, model_path=model_spec.path,
                     config_source=f"{mc.source}: {mc.where}", arch=arch, inventory=inv, device=device)
    attn = model_spec.attn_implementation or "sdpa"
    plan.attn_implementation = attn
    if not arch.known:
        plan.notes.append(f"model_type {arch.model_type!r}: activations assume a Llama-style decoder layer")
    if t is None:
        plan.train = False
        plan.method = "none"
        dt = DTYPE_NAMES.get(model_spec.dtype)
        if dt is None:  # 'auto': the grading backend loads fp32 on CPU, the checkpoint dtype on a GPU
            dt = "fp32" if device == "cpu" else DTYPE_NAMES.get(str(mc.raw.get("torch_dtype") or mc.raw.get("dtype")), "fp32")
        plan.weight_dtype = plan.eval_dtype = dt
    else:
        plan.method, plan.optimizer, plan.precision = t.method, t.optimizer, t.precision
        plan.lora_r, plan.lora_alpha, plan.lora_dropout = t.lora.r, t.lora.alpha, t.lora.dropout
        plan.lora_targets = t.lora.target_modules
        plan.gradient_checkpointing, plan.packing = t.gradient_checkpointing, t.packing
        plan.batch_size, plan.grad_accum = t.batch_size, t.grad_accum
        plan.max_seq_len = plan.seq_len = t.max_seq_len
        plan.backend = t.backend
        plan.padding_free = t.packing and t.backend == "trl"  # TRL's default packing (bfd) is padding-free
        plan.loss_impl = "chunked" if (t.backend == "trl" and _trl_has_fused_lm_head()) else "full_logits"
        if t.backend == "unsloth":
            # Unsloth loads half-precision weights (LoRA adapters in fp32); approximated as TRL's path.
            plan.weight_dtype = "fp16" if t.precision == "fp16" else "bf16"
            plan.notes.append("backend unsloth: estimated as TRL with half-precision weights "
                              "(Unsloth's own kernels usually need less)")
        else:
            plan.weight_dtype = "fp32"  # runners/trl_sft.py loads fp32 and autocasts (bf16/fp16 mixed precision)
        plan.eval_dtype = plan.weight_dtype
        from harness.sharding import sharding_plan   # [scale15] call site: per-GPU terms under DDP/ZeRO/FSDP

        plan.sharding = sharding_plan(t.distributed)
        if plan.padding_free and attn != "flash_attention_2":
            plan.notes.append(f"packing with {attn}: the packed batch is one row of {t.batch_size}×max_seq_len "
                              "tokens with a block-diagonal mask of that length squared; "
                              "attn_implementation: flash_attention_2 avoids the mask")
    # ---- grading: the batch and lengths every epoch's grading will use
    batch = max((task.generation.batch_size for task in suite.tasks), default=0)
    if suite.memory.eval_batch_size:
        batch = suite.memory.eval_batch_size
    plan.eval_batch_size = batch
    plan.eval_new_tokens = max((task.generation.max_new_tokens for task in suite.tasks), default=0)
    plan.eval_generates = any(set(task.metrics) & _GENERATION_METRICS for task in suite.tasks)
    plan.eval_scores = any("perplexity" in task.metrics for task in suite.tasks)
    cap = t.max_seq_len if t is not None else 512
    plan.eval_prompt_len = plan.eval_score_len = cap
    plan.eval_length_source = "max_seq_len (grading data not read)"
    if data_aware:
        _data_aware(plan, suite, sample_tokenizer)
    return plan


TEMPLATE_TOKENS = 32             # chat-template tokens per conversation (a default system prompt, BOS...)
TEMPLATE_TOKENS_PER_MESSAGE = 8  # role markers and separators per message


def _render_len(tokenizer, messages, add_generation_prompt=False) -> int:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                        return_dict=True)
    return len(out["input_ids"])


def _byte_bound(messages, add_generation_prompt=False) -> int:
    """An upper bound on the token count without a tokenizer: byte-level BPE and SentencePiece with
    byte fallback never make more tokens than UTF-8 bytes; plus the template's own tokens."""
    n = TEMPLATE_TOKENS + sum(len(m["content"].encode("utf-8")) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
    return n + (TEMPLATE_TOKENS_PER_MESSAGE if add_generation_prompt else 0)


def _sample(rows: list, limit: int, seed: int = 0) -> list:
    if len(rows) <= limit:
        return rows
    import random

    return random.Random(seed).sample(rows, limit)


def _data_aware(plan: TrainPlan, suite, tokenizer, limit: int = 1000) -> None:
    """Lengths from the data: tokenized with the model's tokenizer, or bounded by byte counts.

    With a tokenizer the training batch width becomes what the data needs (capped by
    max_seq_len; packed rows are max_seq_len long). Without one, training keeps max_seq_len
    (the most a batch can be) and the byte bound only feeds the remedies; grading rows are
    never truncated, so their lengths always come from the data.
    """
    try:
        from harness.data import load_rows
    except ImportError:
        plan.notes.append("harness.data not available: lengths from max_seq_len")
        return
    exact = tokenizer is not None
    how = "tokenized" if exact else "UTF-8 byte bound"

    def count(messages, gen=False):
        return _render_len(tokenizer, messages, gen) if exact else _byte_bound(messages, gen)

    def load(spec, n):
        if not exact:   # the bound reads only the first rows: cheap, and enough for a hint
            spec = spec.model_copy(update={"limit": min(spec.limit or n, n)})
        return load_rows(spec, suite)

    if suite.train is not None:
        try:
            rows = [ex for spec in suite.train.data for ex in load(spec, 500)]
            sample = _sample(rows, limit)
            lengths = [count(ex.messages) for ex in sample]
        except Exception as e:  # data behind the network, a tokenizer without a template: say so, go on
            plan.notes.append(f"training data not read ({type(e).__name__}: {str(e)[:120]}); "
                              "lengths from max_seq_len")
            lengths = []
        if lengths:
            plan.lengths, plan.lengths_exact = lengths, exact
            capped = [min(n, plan.max_seq_len) for n in lengths]
            truncated = sum(n > plan.max_seq_len for n in lengths) / len(lengths)
            what = f"{len(sample)} of {len(rows)} rows" if len(sample) < len(rows) else f"{len(rows)} rows"
            if not exact:
                plan.length_source = (f"max_seq_len {plan.max_seq_len} (no tokenizer; by a UTF-8 byte bound the "
                                      f"training rows are at most {max(lengths)} tokens)")
            elif plan.packing:
                total = sum(capped) * (len(rows) / len(sample))
                plan.seq_len = plan.max_seq_len if total >= plan.batch_size * plan.max_seq_len \
                    else max(1, math.ceil(total / plan.batch_size))
                plan.length_source = (f"packed to {plan.seq_len} tokens per sequence "
                                      f"({what} {how}, mean {sum(capped) / len(capped):.0f})")
            else:
                plan.seq_len = max(capped)
                plan.padded = len(set(capped)) > 1
                plan.length_source = (f"{what} {how}: longest {max(lengths)} tokens"
                                      + (f", {truncated:.1%} truncated at max_seq_len {plan.max_seq_len}"
                                         if truncated else f" (max_seq_len {plan.max_seq_len})"))
    prompts, fulls = [], []
    try:
        for task in suite.tasks:
            for ex in _sample(load(task.data, 300), 300):
                prompts.append(count(ex.prompt_messages, True))
                fulls.append(count(ex.messages))
    except Exception as e:
        plan.notes.append(f"grading data not read ({type(e).__name__}); grading lengths from max_seq_len")
        return
    if prompts:
        plan.eval_prompt_len = max(prompts)
        plan.eval_score_len = min(max(fulls), REFERENCE_NLL_MAX_LEN)
        plan.eval_length_source = (f"{how}: longest prompt {max(prompts)}, longest scored row "
                                   f"{max(fulls)} tokens")


# ============================================================ the activation walk
class _T:
    """A tensor of the walk: size, dtype, whether autograd tracks it, whether it is a parameter."""

    __slots__ = ("id", "n", "dt", "rg", "param")

    def __init__(self, tid: int, n: int, dt: str, rg: bool, param: bool):
        self.id, self.n, self.dt, self.rg, self.param = tid, n, dt, rg, param

    @property
    def nbytes(self) -> int:
        return self.n * BYTES[self.dt]


def _promote(a: str, b: str) -> str:
    if "fp64" in (a, b):
        return "fp64"
    if "fp32" in (a, b):
        return "fp32"
    return a if a in ("bf16", "fp16") else b


class _Walk:
    """Replays one training forward op by op and records what autograd saves for backward.

    Each op saves exactly what PyTorch's derivative formulas save, only for inputs whose gradient
    is needed (mul saves the *other* operand of each input that requires grad, a linear saves its
    input when the weight is trained and its weight when the input needs a gradient, ...).
    Storages are counted once, parameters never (they are the weights term). Validated against
    saved_tensors_hooks on CPU (tests/test_memory.py).
    """

    def __init__(self, plan: TrainPlan):
        self.p = plan
        self.ac = plan.autocast
        self.cpu = plan.device == "cpu"
        self.saved: dict[int, tuple[int, str]] = {}
        self.phase = "layers"
        self.counting = True
        self._next = 0
        self.qdt = "bf16"   # QLoRA compute dtype (bnb_4bit_compute_dtype)

    # ---- tensors
    def t(self, n: int, dt: str, rg: bool = False, param: bool = False) -> _T:
        self._next += 1
        return _T(self._next, int(n), dt, rg, param)

    def save(self, *xs: Optional[_T]) -> None:
        if not self.counting:
            return
        for x in xs:
            if x is not None and not x.param:
                self.saved.setdefault(x.id, (x.nbytes, self.phase))

    def cast(self, x: _T, dt: str) -> _T:
        return x if x.dt == dt else self.t(x.n, dt, x.rg)

    # ---- elementwise
    def mul(self, a: _T, b: _T) -> _T:
        out = self.t(max(a.n, b.n), _promote(a.dt, b.dt), a.rg or b.rg)
        if a.rg:
            self.save(b)
        if b.rg:
            self.save(a)
        return out

    def add(self, a: _T, b: _T) -> _T:
        return self.t(max(a.n, b.n), _promote(a.dt, b.dt), a.rg or b.rg)

    def saves_input(self, x: _T, dt: Optional[str] = None) -> _T:   # pow, silu, gelu
        if x.rg:
            self.save(x)
        return self.t(x.n, dt or x.dt, x.rg)

    def dropout(self, x: _T, p: float) -> _T:
        if p <= 0:
            return x
        if self.cpu:   # CPU: input * (bernoulli noise / (1-p)); mul saves the noise
            return self.mul(x, self.t(x.n, x.dt))
        out = self.t(x.n, x.dt, x.rg)   # CUDA native_dropout saves a one-byte mask
        if x.rg:
            self.save(self.t(x.n, "bool"))
        return out

    # ---- layers
    def linear(self, x: _T, w: _T, n_in: int, n_out: int, quant: bool = False, lora: Optional[tuple] = None) -> _T:
        rows = x.n // n_in
        if quant:   # bnb Linear4bit: computes in bf16 from a dequantized weight, saves nothing but the
            out = self.t(rows * n_out, x.dt, x.rg)   # (quantized) weight, returns the input's dtype
        else:
            xc = self.cast(x, self.ac) if self.ac else x
            wc = self.cast(w, self.ac) if self.ac else w
            out = self.t(rows * n_out, xc.dt, x.rg or w.rg)
            if w.rg:
                self.save(xc)
            if x.rg:
                self.save(wc)
        if lora is not None:
            a_w, b_w, r, p, ldt = lora
            xl = self.cast(x, ldt)                    # PEFT casts the input to the adapter's dtype
            d = self.dropout(xl, p)
            a = self.linear(d, a_w, n_in, r)
            self.linear(a, b_w, r, n_out)
            out = self.t(out.n, out.dt, True)         # result + lora_B(lora_A(dropout(x))) * scaling
        return out

    def rmsnorm(self, x: _T, w: _T, width: int) -> _T:
        xf = self.cast(x, "fp32")
        self.saves_input(xf, "fp32")                          # pow(2)
        vectors = x.n // width
        r = self.t(vectors, "fp32", xf.rg)                    # rsqrt(mean + eps) saves its result
        if r.rg:
            self.save(r)
        hs = self.mul(xf, r)
        if self.p.arch.norm == "gemma":                       # (x * (1 + w.float())).type_as(x)
            w1 = self.t(w.n, "fp32", w.rg)
            return self.cast(self.mul(hs, w1), x.dt)
        return self.mul(w, self.cast(hs, x.dt))               # w * x.to(input_dtype)


def _walk_train(plan: TrainPlan) -> dict:
    """Saved-for-backward bytes of one micro-batch: by phase, per layer, and what GC keeps."""
    a, W = plan.arch, _Walk(plan)
    R, S = plan.rows, plan.width
    N = R * S
    h, f, nh, nkv, d, V = a.hidden, a.inter, a.heads, a.kv_heads, a.head_dim, a.vocab
    full = plan.method == "full"
    quant = plan.method == "qlora"
    wdt = plan.weight_dtype
    other_dt = "fp32" if quant else wdt       # prepare_model_for_kbit_training casts the rest to fp32
    targets = plan.inventory.target_suffixes(plan.lora_targets) if plan.method in ("lora", "qlora") else set()

    def weight(n, kind="linear") -> _T:
        dt = other_dt if kind != "linear" else wdt
        return W.t(n, dt, rg=full, param=True)

    def lin(x, name, n_in, n_out):
        lora = None
        if name in targets:
            lora = (W.t(n_in * plan.lora_r, "fp32", True, True), W.t(plan.lora_r * n_out, "fp32", True, True),
                    plan.lora_r, plan.lora_dropout, "fp32")
        return W.linear(x, weight(n_in * n_out), n_in, n_out, quant=quant, lora=lora)

    def norm(x, width):
        return W.rmsnorm(x, weight(width, "norm"), width)

    hid_dt = other_dt      # embedding output (embeddings are never autocast)
    cos = [W.t(S * d, hid_dt) for _ in range(2 * a.rope_tables)]   # cos/sin (1, seq, head_dim), shared by layers

    def rope(x, table):
        c, s_ = cos[2 * table], cos[2 * table + 1]
        return W.add(W.mul(x, c), W.mul(W.t(x.n, x.dt, x.rg), s_))

    def attention(q, k, v):
        impl = plan.attn_implementation
        cdt = W.ac or q.dt
        if impl == "eager":
            kr = W.t(N * nh * d, k.dt, k.rg) if nkv < nh else k
            vr = W.t(N * nh * d, v.dt, v.rg) if nkv < nh else v
            qc, kc = W.cast(q, cdt), W.cast(kr, cdt)
            rg = q.rg or k.rg
            if rg:
                W.save(qc, kc)                                   # bmm saves both operands
            scores = W.t(R * nh * S * S, "fp32", rg)             # softmax(dtype=float32) saves its result
            if rg:
                W.save(scores)
            pc, vc = W.cast(W.cast(scores, q.dt), cdt), W.cast(vr, cdt)
            if rg or v.rg:
                W.save(pc, vc)
            return W.t(N * nh * d, cdt, rg or v.rg)              # transpose(1, 2).contiguous()
        rg = q.rg or k.rg or v.rg
        gqa_native = impl == "flash_attention_2" or plan.mask == "none"
        if not gqa_native and nkv < nh:                          # repeat_kv before SDPA when a mask is given
            k, v = W.t(N * nh * d, k.dt, k.rg), W.t(N * nh * d, v.dt, v.rg)
        qc, kc, vc = W.cast(q, cdt), W.cast(k, cdt), W.cast(v, cdt)
        out = W.t(N * nh * d, cdt, rg)
        if rg:
            W.save(qc, kc, vc, out, W.t(N * nh, "fp32"))         # + logsumexp
            if plan.mask == "bool" and impl == "sdpa":
                W.save(W.t(R * S * S, cdt))                      # the bool mask, converted per call
        return out

    def layer(x, li):
        table = 1 if (a.rope_tables > 1 and li < len(a.sliding) and a.sliding[li]) else 0
        res = x
        hs = norm(x, h)
        q = lin(hs, "q_proj", h, nh * d)
        k = lin(hs, "k_proj", h, nkv * d)
        v = lin(hs, "v_proj", h, nkv * d)
        if a.qk_norm:
            q, k = norm(q, d), norm(k, d)
        q, k = rope(q, table), rope(k, table)
        o = lin(attention(q, k, v), "o_proj", nh * d, h)
        if a.sandwich:
            o = norm(o, h)
        x = W.add(res, o)
        res = x
        hs = norm(x, h)
        g = lin(hs, "gate_proj", h, f)
        u = lin(hs, "up_proj", h, f)
        m = lin(W.mul(W.saves_input(g), u), "down_proj", f, h)
        if a.sandwich:
            m = norm(m, h)
        return W.add(res, m)

    # embedding
    emb = W.t(V * h, other_dt, full, True)
    ids = W.t(N, "int64")
    x = W.t(N * h, emb.dt, emb.rg or plan.gradient_checkpointing)   # GC enables input grads (PEFT too)
    if emb.rg:
        W.save(ids)
    if a.embed_scale:
        x = W.mul(x, W.t(1, emb.dt))
    per_layer: list[int] = []
    for li in range(a.layers):
        before = sum(b for b, _ in W.saved.values())
        if plan.gradient_checkpointing:
            W.save(x)                                            # checkpoint keeps the layer input
            W.counting = False                                   # the rest is recomputed in backward
            x = layer(x, li)
            W.counting = True
        else:
            x = layer(x, li)
        per_layer.append(sum(b for b, _ in W.saved.values()) - before)
    x = norm(x, h)
    W.phase = "head"
    head_transient = 0
    lm_w = emb if a.tied else W.t(V * h, other_dt, full, True)
    cdt = W.ac or (W.qdt if quant else x.dt)
    if plan.loss_impl == "full_logits":
        logits = W.linear(x, lm_w, h, V)
        lf = W.cast(logits, "fp32")
        ls = W.t(N * V, "fp32", lf.rg)
        if ls.rg:
            W.save(ls, W.t(N, "int64"), W.t(1, "fp32"))         # log_softmax result; nll target, weight
        # alive at the start of backward: the logits the model returns; then the loss gradients
        head_transient = N * V * (BYTES[logits.dt] + 4 + 4)
    else:
        compact = not W.cpu                                      # Triton: only labelled positions
        nl = max(1, int(round(R * (S - 1) * plan.labelled_share))) if compact else R * (S - 1)
        if not compact and R == 1:
            hid = x                                              # reshape of a contiguous slice: a view
        else:
            hid = W.t(nl * h, x.dt, x.rg)
        W.save(hid, lm_w, W.t(nl, "int64"), W.t(nl, "fp32"), W.t(nl, "fp32"))   # + targets, log_z, entropy
        if compact:
            W.save(W.t(R * (S - 1), "bool"))                     # masked_scatter keeps the label mask
        else:
            W.save(W.t(R * (S - 1), "bool"), W.t(R * (S - 1), "bool"))   # masked_fill(~mask) twice
        W.save(W.t(1, "int64"))                                  # the token count the loss divides by
        tile = min(nl, CHUNK_TOKENS) * min(V, CHUNK_VOCAB) * BYTES[cdt]
        head_transient = tile + nl * h * 4                       # tile; fp32 gradient of the hidden states
        if full and lm_w.dt != "fp32":
            head_transient += V * h * 4                          # fp32 accumulator of the head's gradient
        if cdt != lm_w.dt:
            head_transient += min(V, CHUNK_VOCAB) * h * BYTES[cdt]
    layers = sum(b for b, ph in W.saved.values() if ph == "layers")
    head = sum(b for b, ph in W.saved.values() if ph == "head")
    return {"layers": layers, "head": head, "head_transient": head_transient, "per_layer": per_layer,
            "tokens": N, "hidden_dtype": hid_dt}


def _layer_no_gc(plan: TrainPlan) -> int:
    """What one decoder layer saves when it is recomputed during backward (gradient checkpointing)."""
    one = dataclasses.replace(plan, gradient_checkpointing=False, arch=dataclasses.replace(plan.arch, layers=2))
    per = _walk_train(one)["per_layer"]
    return per[-1]


# ======================================================================= estimate
TERM_ORDER = ("weights", "master_weights", "gradients", "optimizer", "optimizer_step", "activations",
              "logits", "generation", "allocator", "cuda_context")
TERM_LABELS = {
    "weights": "weights", "master_weights": "fp32 master weights", "gradients": "gradients",
    "optimizer": "optimizer states", "optimizer_step": "optimizer step (transient)",
    "activations": "activations", "logits": "logits / loss buffers", "generation": "grading (KV cache, scoring)",
    "allocator": "allocator overhead", "cuda_context": "CUDA context",
}


@dataclass
class Estimate:
    """Peak memory by term (bytes). `total` is the peak: static terms + the largest phase + overhead."""

    terms: dict                  # every term, bytes
    total: int
    phases: dict                 # train / step / eval: the dynamic bytes of each phase
    peak_phase: str
    saved_for_backward: dict     # what autograd holds at the end of the forward: {layers, head}
    trainable_params: int
    total_params: int
    base_params: int
    folk_rule_bytes: int
    formulas: dict               # term → formula with the numbers filled in
    notes: list
    plan: Optional[TrainPlan] = None

    @property
    def trainable_share(self) -> float:
        return self.trainable_params / self.total_params if self.total_params else 0.0

    def stack(self) -> dict:
        """Terms that add up to `total`: the static ones and those of the peak phase."""
        keep = {"train": ("gradients", "activations", "logits"), "step": ("gradients", "optimizer_step"),
                "eval": ("generation",)}[self.peak_phase]
        static = ("weights", "master_weights", "optimizer", "allocator", "cuda_context")
        return {k: self.terms[k] for k in TERM_ORDER if (k in static or k in keep) and self.terms.get(k)}

    def as_dict(self) -> dict:
        return {"total_bytes": self.total, "terms": self.terms, "stack": self.stack(), "phases": self.phases,
                "peak_phase": self.peak_phase, "saved_for_backward": self.saved_for_backward,
                "parameters": {"total": self.total_params, "base": self.base_params,
                               "trainable": self.trainable_params, "trainable_share": self.trainable_share},
                "folk_rule_bytes": self.folk_rule_bytes, "formulas": self.formulas, "notes": self.notes}


def _n(x: float) -> str:
    return f"{int(round(x)):,}"


def _weights(plan: TrainPlan) -> tuple[int, str]:
    inv, wdt = plan.inventory, plan.weight_dtype
    if plan.method == "qlora" and plan.train:
        q = sum(row[1] * row[2] * row[4] for row in inv.quantized_linears())
        nq = sum(row[4] for row in inv.quantized_linears())
        per = 0.5 + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NF4_NESTED_BLOCK)
        other = inv.total - q
        lora = plan.trainable_params
        b = int(q * per) + nq * 1100 + other * 4 + lora * 4
        return b, (f"{_n(q)} quantized linear params × {per:.4f} B (NF4 4-bit + 8-bit block constants, double "
                   f"quantization) + {_n(other)} other params × 4 B (fp32 after prepare_model_for_kbit_training)"
                   f" + {_n(lora)} LoRA params × 4 B")
    b = inv.total * BYTES[wdt]
    text = f"{_n(inv.total)} params × {BYTES[wdt]} B ({wdt})"
    if plan.method == "lora" and plan.train:
        b += plan.trainable_params * 4
        text += f" + {_n(plan.trainable_params)} LoRA params × 4 B (fp32 adapters)"
    return b, text


def _trainable_dtype(plan: TrainPlan) -> str:
    return plan.weight_dtype if plan.method == "full" else "fp32"


def _optimizer(plan: TrainPlan) -> tuple[int, str, int, str]:
    """(state bytes, formula, transient bytes during step(), formula)."""
    n, inv = plan.trainable_params, plan.inventory
    sdt = _trainable_dtype(plan)
    tensors = inv.tensors if plan.method == "full" else inv.lora_tensors(plan.lora_targets)
    step_scalars = 4 * tensors if plan.device == "cpu" else 0   # torch keeps AdamW's `step` on the CPU
    opt = plan.optimizer
    if opt == "sgd":
        return 0, "SGD without momentum keeps no state", 0, "in-place update"
    if opt == "adamw":
        b = 2 * n * BYTES[sdt] + step_scalars
        return (b, f"{_n(n)} trainable × 2 states (m, v) × {BYTES[sdt]} B ({sdt})"
                + (f" + {tensors} step counters × 4 B" if step_scalars else ""),
                n * BYTES[sdt], f"foreach AdamW: one temporary of {_n(n)} × {BYTES[sdt]} B (sqrt(v))")
    if opt == "adafactor":
        shapes = list(inv.shapes()) if plan.method == "full" else \
            [s for row in inv.targeted(plan.lora_targets) for s in [(plan.lora_r, row[1]), (row[2], plan.lora_r)]
             for _ in range(row[4])]
        b = 4 * len(shapes)   # the RMS of each parameter, a 0-d tensor
        for s in shapes:
            b += 4 * ((math.prod(s[:-1]) + math.prod(s[:-2]) * s[-1]) if len(s) >= 2 else math.prod(s))
        largest = max((math.prod(s) for s in shapes), default=0)
        return (b, f"factored second moments: rows + columns of every 2-D parameter, all of every 1-D one, "
                   f"× 4 B, + 4 B RMS per tensor ({len(shapes)} tensors); no first moment", 3 * largest * 4,
                "3 × the largest parameter × 4 B (update, squared gradient, fp32 copy)")
    if opt == "adamw_8bit":
        if plan.method == "full":
            emb = inv.numel({"embedding"})
            small = sum(math.prod(s) for s in inv.shapes({"norm", "bias", "other", "linear"})
                        if math.prod(s) < BNB8_MIN_SIZE)
            big = n - emb - small
        else:
            emb, small = 0, 0
            for row in inv.targeted(plan.lora_targets):
                for size in (plan.lora_r * row[1], plan.lora_r * row[2]):
                    if size < BNB8_MIN_SIZE:
                        small += size * row[4]
            big = n - small
        blocks = 2 * 4 * math.ceil(big / BNB8_BLOCK)
        b = big * 2 + blocks + (emb + small) * 8 + 2 * 256 * 4
        text = (f"{_n(big)} params × 2 × 1 B (8-bit m, v) + 2 × 4 B per {BNB8_BLOCK}-block absmax"
                + (f" + {_n(emb)} embedding params × 8 B (the Trainer keeps nn.Embedding in 32-bit)" if emb else "")
                + (f" + {_n(small)} params of tensors < {BNB8_MIN_SIZE} × 8 B (32-bit)" if small else ""))
        return b, text, 0, "fused 8-bit update, no large temporary"
    raise ValueError(f"unknown optimizer {opt!r}")


def _kv_bytes(plan: TrainPlan, batch: int, length: int, dt_bytes: int) -> int:
    a = plan.arch
    per_tok = 2 * a.kv_heads * a.head_dim * dt_bytes
    full_layers = a.layers - a.sliding_layers
    window = min(length, a.sliding_window or length)
    return batch * per_tok * (full_layers * length + a.sliding_layers * window)


def _prefill_transient(plan: TrainPlan, batch: int, length: int, b: int) -> int:
    """Largest per-layer working set of an inference forward (no autograd): freed layer by layer."""
    a = plan.arch
    tok = batch * length
    work = tok * (3 * a.hidden * 4 + (a.heads + 2 * a.kv_heads) * a.head_dim * b * 2 + 3 * a.inter * b)
    if plan.attn_implementation == "eager":
        work += batch * a.heads * length * length * (b + 4)
    elif plan.attn_implementation == "sdpa":
        work += batch * length * length * (1 + b)
    return work


def _generation(plan: TrainPlan) -> tuple[int, str]:
    B = plan.eval_batch_size
    if not B or not (plan.eval_generates or plan.eval_scores):
        return 0, "no grading"
    b = BYTES[plan.eval_dtype]
    a = plan.arch
    P, G, Ssc = plan.eval_prompt_len, plan.eval_new_tokens, plan.eval_score_len
    gen = score = 0
    parts = []
    if plan.eval_generates:
        kv = _kv_bytes(plan, B, P + G, b)
        gen = kv + _prefill_transient(plan, B, P, b) + B * a.vocab * (b + 4)
        parts.append(f"generation: KV cache 2 × {a.layers} layers × {a.kv_heads} kv heads × {a.head_dim} × "
                     f"batch {B} × ({P} prompt + {G} new) tokens × {b} B = {fmt_bytes(kv)}"
                     + (f" (sliding layers keep {a.sliding_window})" if a.sliding_layers else "")
                     + " + prefill working set + last-token logits")
    if plan.eval_scores:
        logits = B * Ssc * a.vocab * (b + 4 + 4)
        score = logits + _kv_bytes(plan, B, Ssc, b) + _prefill_transient(plan, B, Ssc, b)
        parts.append(f"perplexity scoring: batch {B} × {Ssc} tokens × vocab {a.vocab:,} × ({b} logits + 4 fp32 "
                     f"copy + 4 log-softmax) B = {fmt_bytes(logits)} + KV cache + working set")
    return max(gen, score), "; ".join(parts) + (" (the larger counts)" if len(parts) > 1 else "")


def estimate(plan: TrainPlan) -> Estimate:
    """Peak GPU memory of the plan, term by term (docs/memory.md)."""
    terms = dict.fromkeys(TERM_ORDER, 0)
    formulas: dict[str, str] = {}
    notes = list(plan.notes)
    terms["weights"], formulas["weights"] = _weights(plan)
    trainable = plan.trainable_params
    saved = {"layers": 0, "head": 0}
    train_dyn = step_dyn = 0
    if plan.train:
        gdt = _trainable_dtype(plan)
        terms["gradients"] = trainable * BYTES[gdt]
        formulas["gradients"] = f"{_n(trainable)} trainable params × {BYTES[gdt]} B ({gdt})"
        if plan.master_weights:
            terms["master_weights"] = trainable * 4
            formulas["master_weights"] = f"{_n(trainable)} trainable × 4 B (fp32 copy of half weights)"
        else:
            formulas["master_weights"] = ("none: the weights themselves are fp32" if plan.weight_dtype == "fp32"
                                          else "none: half-precision weights are updated in place")
        terms["optimizer"], formulas["optimizer"], terms["optimizer_step"], formulas["optimizer_step"] = \
            _optimizer(plan)
        walk = _walk_train(plan)
        saved = {"layers": walk["layers"], "head": walk["head"]}
        a, N, R, S = plan.arch, plan.tokens, plan.rows, plan.width
        act = walk["layers"]
        extra = []
        if plan.gradient_checkpointing:
            recompute = _layer_no_gc(plan)
            act += recompute
            extra.append(f"+ one layer recomputed in backward {fmt_bytes(recompute)}")
            if plan.mask == "bool":
                act += R * S * S
                extra.append(f"+ bool mask kept for the recompute {fmt_bytes(R * S * S)}")
            elif plan.mask == "eager":
                act += R * S * S * BYTES[walk["hidden_dtype"]]
                extra.append("+ float mask kept for the recompute")
            if plan.autocast and plan.method == "full":
                copies = plan.inventory.numel({"linear"}) * BYTES[plan.autocast]
                act += copies
                extra.append(f"+ autocast's cached half copies of the weights {fmt_bytes(copies)}")
        if plan.method == "qlora":
            biggest = max((row[1] * row[2] for row in plan.inventory.quantized_linears()), default=0)
            act += biggest * 2
            extra.append(f"+ one dequantized weight {fmt_bytes(biggest * 2)}")
        terms["activations"] = act
        per_tok_layer = (walk["layers"] / max(1, N * a.layers))
        formulas["activations"] = (
            f"saved for backward ≈ {per_tok_layer:,.0f} B/token/layer × {_n(N)} tokens "
            f"({R} × {S}) × {a.layers} layers = {fmt_bytes(walk['layers'])} "
            f"({plan.attn_implementation}, {'checkpointed: layer inputs only' if plan.gradient_checkpointing else 'no checkpointing'}"
            f"{', autocast ' + plan.autocast if plan.autocast else ''}) " + " ".join(extra)).strip()
        terms["logits"] = walk["head"] + walk["head_transient"]
        if plan.loss_impl == "full_logits":
            formulas["logits"] = (f"{_n(N)} tokens × vocab {a.vocab:,} × (4 B log-softmax saved + logits + "
                                  f"4 + 4 B loss gradients) = {fmt_bytes(terms['logits'])}")
        else:
            formulas["logits"] = (f"TRL chunked LM head: saved hidden states, targets, log Z "
                                  f"{fmt_bytes(walk['head'])} + tile min(tokens, {CHUNK_TOKENS}) × "
                                  f"min(vocab, {CHUNK_VOCAB:,}) + fp32 hidden-state gradient "
                                  f"{fmt_bytes(walk['head_transient'])}; no tokens × vocab logits")
        if plan.sharding is not None:   # [scale15] call site: harness/sharding.py divides terms per GPU
            from harness.sharding import describe, per_gpu_terms

            terms, how = per_gpu_terms(terms, plan.sharding)
            for k, h in how.items():
                formulas[k] = f"{formulas.get(k, '')} {h}".strip()
            notes.append(describe(plan.sharding))
        train_dyn = terms["gradients"] + terms["activations"] + terms["logits"]
        step_dyn = terms["gradients"] + terms["optimizer_step"]
    else:
        for k in ("gradients", "optimizer", "optimizer_step", "activations", "logits"):
            formulas[k] = "grading only: no training"
    terms["generation"], formulas["generation"] = _generation(plan)
    eval_dyn = terms["generation"]
    phases = {"train": train_dyn, "step": step_dyn, "eval": eval_dyn}
    peak_phase = max(phases, key=lambda k: (phases[k], k == "train"))
    static = terms["weights"] + terms["master_weights"] + terms["optimizer"]
    allocated = static + phases[peak_phase]
    terms["allocator"] = int(ALLOCATOR_OVERHEAD * allocated)
    formulas["allocator"] = f"{ALLOCATOR_OVERHEAD:.0%} of the allocated peak {fmt_bytes(allocated)} (block rounding, fragmentation)"
    terms["cuda_context"] = CUDA_CONTEXT_BYTES if plan.device == "cuda" else 0
    formulas["cuda_context"] = (f"{fmt_bytes(CUDA_CONTEXT_BYTES)}: CUDA context and library handles (NVML counts "
                                "it, torch's allocator does not)" if plan.device == "cuda" else "CPU: none")
    if not plan.train:
        formulas["optimizer_step"] = formulas["master_weights"] = "grading only"
    total = allocated + terms["allocator"] + terms["cuda_context"]
    if plan.mask == "bool" and plan.padding_free:
        notes.append(f"the packed mask is {plan.width:,}² per layer: packing pays off with flash_attention_2")
    return Estimate(terms=terms, total=int(total), phases=phases, peak_phase=peak_phase,
                    saved_for_backward=saved, trainable_params=trainable, total_params=plan.total_params,
                    base_params=plan.inventory.total,
                    folk_rule_bytes=int(FOLK_RULE_BYTES_PER_PARAM * plan.inventory.total),
                    formulas=formulas, notes=notes, plan=plan)


def make_plan(model: Any, **fields) -> TrainPlan:
    """A TrainPlan from a model (path, hub id, ModelConfig or config dict) and explicit fields.

    For scripts and tests; suites go through `plan_from_suite`.
    """
    if isinstance(model, ModelConfig):
        mc = model
    elif isinstance(model, dict):
        mc = ModelConfig(raw=model, source="dict", name=str(model.get("model_type")), where="<dict>")
    else:
        mc = load_model_config(str(model))
    plan = TrainPlan(model_name=mc.name, model_path=mc.name, config_source=f"{mc.source}: {mc.where}",
                     arch=Arch.from_config(mc.raw), inventory=Inventory.from_dict(model_inventory(mc)))
    seq = fields.pop("seq_len", None)
    for k, v in fields.items():
        if not hasattr(plan, k):
            raise TypeError(f"TrainPlan has no field {k!r}")
        setattr(plan, k, v)
    if seq is not None:
        plan.seq_len = seq
        plan.max_seq_len = max(plan.max_seq_len, seq) if "max_seq_len" not in fields else plan.max_seq_len
    return plan


# ==================================================================== measurement
def _final_norm(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, getattr(base, "base_model_prefix", "model"), None)
    return getattr(inner, "norm", None) if inner is not None else None


class MemoryProbe:
    """Measures one training step exactly.

    * `saved_tensors()`: a context manager around one forward; every tensor autograd saves for
      backward goes through saved_tensors_hooks and its storage is counted once (by data_ptr),
      parameters excluded. Saves after the model's final norm count as `head` (logits and loss
      buffers), the rest as `layers` (activations).
    * `state_bytes(optimizer)`: after an optimizer step, the bytes of parameters, gradients and
      optimizer states (storages counted once; bitsandbytes quantization constants included).
    * on CUDA, `cuda_peaks()`: torch's peak allocated / reserved and NVML's used memory.
    """

    def __init__(self, model):
        self.model = model
        self.saved: dict[int, tuple[int, str]] = {}
        self.phase = "layers"
        self.active = False
        self._params: set = set()
        self._ctx = None
        self._handles: list = []

    # ---- saved tensors
    def _pack(self, t):
        if self.active:
            try:
                st = t.untyped_storage()
                ptr, nb = st.data_ptr(), st.nbytes()
            except (RuntimeError, NotImplementedError, AttributeError):
                return t
            if ptr and ptr not in self._params and ptr not in self.saved:
                self.saved[ptr] = (nb, self.phase)
        return t

    def start(self, active: bool = True) -> None:
        import torch

        self._params = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        self._params |= {b.untyped_storage().data_ptr() for b in self.model.buffers()
                         if b.dtype.is_floating_point and b.dim() > 0}
        self.phase, self.active = "layers", active
        norm = _final_norm(self.model)
        if norm is not None:
            self._handles.append(norm.register_forward_hook(lambda *a: setattr(self, "phase", "head")))
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()

    def stop(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.active = False

    def saved_tensors(self):
        probe = self

        class _Ctx:
            def __enter__(self):
                probe.start()
                return probe

            def __exit__(self, *exc):
                probe.stop()
                return False

        return _Ctx()

    @property
    def activations(self) -> int:
        return sum(b for b, ph in self.saved.values() if ph == "layers")

    @property
    def head(self) -> int:
        return sum(b for b, ph in self.saved.values() if ph == "head")

    # ---- state after a step
    def state_bytes(self, optimizer=None) -> dict:
        def storages(tensors) -> int:
            seen: dict[int, int] = {}
            for t in tensors:
                st = t.untyped_storage()
                seen.setdefault(st.data_ptr() or id(t), st.nbytes())
            return sum(seen.values())

        params = list(self.model.parameters())
        extra = []
        for p in params:   # bitsandbytes 4-bit: absmax and nested constants live in quant_state
            qs = getattr(p, "quant_state", None)
            if qs is not None:
                extra += [v for v in _tensors_in(qs)]
        out = {"weights": storages(params + extra),
               "gradients": storages(p.grad for p in params if p.grad is not None)}
        if optimizer is not None:
            opt = optimizer
            while getattr(opt, "optimizer", None) is not None and opt.optimizer is not opt:
                opt = opt.optimizer   # accelerate's AcceleratedOptimizer wraps the real one
            out["optimizer"] = storages(v for st in opt.state.values() for v in _tensors_in(st))
        return out

    @staticmethod
    def cuda_peaks() -> dict:
        import torch

        if not torch.cuda.is_available():
            return {}
        peaks = {"cuda_peak_allocated": int(torch.cuda.max_memory_allocated()),
                 "cuda_peak_reserved": int(torch.cuda.max_memory_reserved())}
        used = nvml_used()
        if used is not None:
            peaks["nvml_used"] = used
        return peaks


def _tensors_in(obj, depth: int = 0):
    import torch

    if depth > 3:
        return
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors_in(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors_in(v, depth + 1)
    elif hasattr(obj, "__dict__") and depth < 2 and not isinstance(obj, type):
        for v in vars(obj).values():
            yield from _tensors_in(v, depth + 1)


def measure_step(model, batch: dict, optimizer, autocast: Optional[str] = None, fused_lm_head: bool = False) -> dict:
    """One forward + backward + optimizer step, measured (see MemoryProbe). Returns bytes per term."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    probe = MemoryProbe(model)
    ctx = torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[autocast]) \
        if autocast else torch.autocast(device.type, enabled=False)
    kwargs = {"fused_lm_head": True} if fused_lm_head else {}
    with probe.saved_tensors(), ctx:
        out = model(**batch, use_cache=False, **kwargs)
    out.loss.backward()
    optimizer.step()
    measured = {**probe.state_bytes(optimizer), "activations": probe.activations, "logits": probe.head}
    del out
    if device.type == "cuda":
        torch.cuda.synchronize()
        measured.update(MemoryProbe.cuda_peaks())
    optimizer.zero_grad(set_to_none=True)
    return measured


# ========================================================================= budget
def _nvml_device():
    import pynvml

    pynvml.nvmlInit()
    index = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]) \
        if (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].isdigit() else 0
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)


def nvml_memory() -> Optional[dict]:
    """{total, used, free, name} of the first visible GPU, or None without a GPU / NVML."""
    try:
        pynvml, handle = _nvml_device()
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        return {"total": int(info.total), "used": int(info.used), "free": int(info.free),
                "name": name.decode() if isinstance(name, bytes) else str(name)}
    except Exception:  # no driver, no GPU, no pynvml: the budget must then be given
        return None


def nvml_used() -> Optional[int]:
    info = nvml_memory()
    return info["used"] if info else None


def resolve_budget(gpu_memory: Optional[str], suite=None, nvml: str = "free") -> tuple[Optional[int], str]:
    """(bytes, where it came from): --gpu-memory, else the suite's memory.gpu_memory, else NVML.

    From NVML, before a job starts, the budget is the GPU's free memory (other processes keep
    theirs); after a run (`nvml="total"`), the card's total.
    """
    if gpu_memory:
        return parse_size(gpu_memory), f"--gpu-memory {gpu_memory}"
    if suite is not None and suite.memory.gpu_memory:
        return parse_size(suite.memory.gpu_memory), f"suite memory.gpu_memory {suite.memory.gpu_memory}"
    info = nvml_memory()
    if info:
        return info[nvml], (f"NVML: {info['name']}, {fmt_bytes(info['free'])} free of "
                            f"{fmt_bytes(info['total'])}")
    return None, "no budget: give --gpu-memory or set memory.gpu_memory (no GPU found through NVML)"


# ====================================================================== folk rule
def folk_rule_rows(est: Estimate) -> list[dict]:
    """The 17.5 bytes/param rule next to the estimate, part by part, with why they differ."""
    p, t, N = est.plan, est.terms, est.base_params
    tr = est.trainable_params
    share = est.trainable_share
    rows = []

    def row(part, estimate, why):
        rule = FOLK_RULE_PARTS[part] * N
        rows.append({"part": part, "rule_bytes_per_param": FOLK_RULE_PARTS[part], "rule_bytes": int(rule),
                     "estimate_bytes": int(estimate), "difference_bytes": int(estimate - rule), "why": why})

    if p.method == "qlora":
        why_w = "NF4 4-bit linears (~0.52 B/param); embeddings and norms fp32 after prepare_model_for_kbit_training"
    elif p.weight_dtype == "fp32":
        why_w = ("the runner keeps fp32 weights (4 B/param) and autocasts to "
                 f"{p.precision}; the rule assumes bf16 weights" if p.autocast else
                 "fp32 training: 4 B/param; the rule assumes bf16 weights")
    else:
        why_w = f"{p.weight_dtype} weights: 2 B/param as the rule" + (" + fp32 master copy" if p.master_weights else "")
    if p.method in ("lora", "qlora") and p.train:
        why_w += f"; + LoRA adapters ({tr:,} params, fp32)"
    row("weights", t["weights"] + t["master_weights"], why_w)
    if not p.train:
        why_g = "grading only: no gradients"
    elif p.method == "full":
        why_g = f"{BYTES[_trainable_dtype(p)]} B per param ({_trainable_dtype(p)} gradients of every parameter)"
    else:
        why_g = f"only the adapter is trained: {tr:,} params ({share:.2%}), fp32"
    row("gradients", t["gradients"], why_g)
    if not p.train:
        why_o = "grading only: no optimizer"
    else:
        why_o = {"adamw": f"AdamW m and v in {_trainable_dtype(p)}: {2 * BYTES[_trainable_dtype(p)]} B per trainable param",
                 "adamw_8bit": "8-bit m and v: ~2 B per trainable param (embeddings and tensors < 4096 stay 32-bit)",
                 "sgd": "SGD without momentum keeps no state",
                 "adafactor": "Adafactor keeps factored row/column second moments only"}[p.optimizer]
        if p.method != "full":
            why_o += f", for the {tr:,} adapter params only"
    row("optimizer", t["optimizer"], why_o)
    if p.train:
        per_tok = (t["activations"] + t["logits"]) / max(1, p.tokens)
        why_a = (f"activations scale with batch × sequence, not parameters: {p.tokens:,} tokens per micro-batch × "
                 f"{per_tok:,.0f} B/token ({p.attn_implementation}, "
                 f"{'gradient checkpointing' if p.gradient_checkpointing else 'no checkpointing'}; "
                 f"loss buffers {fmt_bytes(t['logits'])} with vocabulary {p.arch.vocab:,})")
        act = t["activations"] + t["logits"]
    else:
        why_a, act = "grading only: no activations kept for backward", 0
    if est.peak_phase == "eval":
        act = t["generation"]
        why_a = (f"the peak is grading, not training: {fmt_bytes(t['generation'])} for the grading batch of "
                 f"{p.eval_batch_size} (KV cache, perplexity logits); the rule has no such term")
    elif est.peak_phase == "step":
        act = t["optimizer_step"]
        why_a = "the peak is the optimizer step (foreach temporaries), after activations are freed"
    row("activations", act, why_a)
    row("framework", t["allocator"] + t["cuda_context"],
        "CUDA context (a constant) + allocator overhead (8% of the peak); not proportional to parameters")
    return rows


# ======================================================================= remedies
@dataclass
class FixStep:
    knob: str
    change: str
    cost: str
    total_after: int = 0
    fits: bool = True

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _quantile(values: list, q: float) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]


def _knobs(base: TrainPlan) -> list[dict]:
    """The practitioners' changes, in their order (MISSION.md fact 9), each with its levels."""
    knobs = []
    if not base.train:
        levels = [base.eval_batch_size]
        while levels[-1] > 1:
            levels.append(max(1, levels[-1] // 2))
        return [{"name": "eval batch", "levels": levels}]
    # 1. shorter max length: to the data's p99/p95/p90 when known, else halve (not below 128)
    lengths = [base.max_seq_len]
    if base.lengths:
        for q in (1.0, 0.99, 0.95, 0.90):
            v = int(math.ceil(_quantile(base.lengths, q) / 8) * 8)
            if v < min(lengths[-1], base.seq_len if not base.packing else base.max_seq_len):
                lengths.append(v)
    else:
        while len(lengths) < 4 and lengths[-1] // 2 >= 128:
            lengths.append(lengths[-1] // 2)
    knobs.append({"name": "max_seq_len", "levels": lengths})
    # 2. half batch, double accumulation
    batches = [(base.batch_size, base.grad_accum)]
    while batches[-1][0] > 1:
        b, a = batches[-1]
        batches.append((max(1, b // 2), a * 2))
    knobs.append({"name": "batch", "levels": batches})
    knobs.append({"name": "gradient_checkpointing", "levels": [base.gradient_checkpointing, True]})
    knobs.append({"name": "optimizer", "levels": [base.optimizer] + (["adamw_8bit"] if base.optimizer == "adamw"
                                                                      and base.device == "cuda" else [])})
    ranks = [base.lora_r]
    while ranks[-1] > 4:
        ranks.append(ranks[-1] // 2)
    knobs.append({"name": "lora_r", "levels": ranks})
    evals = [base.eval_batch_size]
    while evals[-1] > 1:
        evals.append(max(1, evals[-1] // 2))
    knobs.append({"name": "eval batch", "levels": evals})
    methods = [base.method]
    if base.method == "full":
        methods.append("lora")
    if base.method in ("full", "lora") and base.device == "cuda":
        methods.append("qlora")
    knobs.append({"name": "method", "levels": methods})
    return knobs


def _apply(base: TrainPlan, knobs: list[dict], levels: list[int]) -> TrainPlan:
    p = copy.copy(base)
    p.notes = list(base.notes)
    for knob, i in zip(knobs, levels):
        v = knob["levels"][i]
        name = knob["name"]
        if name == "max_seq_len":
            p.max_seq_len = v
            p.seq_len = v if (base.packing and base.seq_len >= base.max_seq_len) else min(base.seq_len, v)
        elif name == "batch":
            p.batch_size, p.grad_accum = v
        elif name == "gradient_checkpointing":
            p.gradient_checkpointing = v
        elif name == "optimizer":
            p.optimizer = v
        elif name == "lora_r":
            p.lora_r = v
        elif name == "eval batch":
            p.eval_batch_size = v
        elif name == "method":
            p.method = v
    return p


def _describe_change(base: TrainPlan, knob: dict, i: int, final: TrainPlan) -> tuple[str, str]:
    name, old, new = knob["name"], knob["levels"][0], knob["levels"][i]
    if name == "max_seq_len":
        if base.lengths:
            cut = sum(n > new for n in base.lengths) / len(base.lengths)
            bound = "" if base.lengths_exact else " (byte-count bound: an overestimate)"
            cost = (f"truncates {cut:.1%} of training rows{bound}; their ends are not learned" if cut
                    else f"none: no training row is longer{bound}")
        else:
            cost = f"rows longer than {new} tokens are truncated"
        return f"max_seq_len {old} → {new}", cost
    if name == "batch":
        (b0, a0), (b1, a1) = old, new
        return (f"batch_size {b0} → {b1}, grad_accum {a0} → {a1} (same effective batch {b1 * a1})",
                f"{a1 // a0}× more micro-steps per update: slower (roughly +10-30% step time)")
    if name == "gradient_checkpointing":
        return "gradient_checkpointing: true", GC_COST
    if name == "optimizer":
        return f"optimizer {old} → {new}", "needs bitsandbytes on CUDA; quality close to 32-bit AdamW"
    if name == "lora_r":
        before = final.inventory.lora_params(final.lora_targets, old)
        after = final.inventory.lora_params(final.lora_targets, new)
        return f"lora.r {old} → {new}", f"trainable params {before:,} → {after:,}: less capacity"
    if name == "eval batch":
        return (f"grading batch {old} → {new} (generation.batch_size on each task)",
                "slower grading (more, smaller batches)")
    if name == "method":
        share = final.trainable_params / max(1, final.total_params)
        if new == "lora":
            return (f"method {old} → lora (r={final.lora_r})",
                    f"trains {share:.2%} of the parameters; on very small models LoRA learns slower than full "
                    "fine-tuning (MISSION.md fact 7)")
        return (f"method {old} → qlora (r={final.lora_r})",
                f"4-bit NF4 base: ~+30% step time (dequantization), small quality cost; trains {share:.2%}; "
                "needs bitsandbytes on CUDA")
    return f"{name} {old} → {new}", ""


def suggest_fix(plan: TrainPlan, budget_bytes: int) -> list[FixStep]:
    """The first configuration that fits, trying the practitioners' changes in their order.

    Each change is pushed further (shorter length, smaller batch...) until the estimate fits or
    the change is exhausted, then the next one is added. Once a configuration fits, changes
    that turn out not to be needed are undone, the costliest (latest in the order) first, each
    back to its mildest level that still fits. Returns [] when the plan already fits; when
    nothing fits, the most aggressive configuration with `fits=False` on its steps.
    """
    cache: dict[tuple, int] = {}

    def total(levels) -> int:
        key = tuple(levels)
        if key not in cache:
            cache[key] = estimate(_apply(plan, knobs, list(levels))).total
        return cache[key]

    knobs = _knobs(plan)
    levels = [0] * len(knobs)
    if total(levels) <= budget_bytes:
        return []
    fitted = False
    for k, knob in enumerate(knobs):
        if len(knob["levels"]) < 2:
            continue
        if knob["name"] == "lora_r" and _apply(plan, knobs, levels).method == "full":
            continue
        for i in range(1, len(knob["levels"])):
            levels[k] = i
            if total(levels) <= budget_bytes:
                fitted = True
                break
        if fitted:
            break
    if fitted:
        # Undo what is not needed: the costliest changes (last in the practitioners' order) first,
        # each back to its mildest level that still fits.
        for _ in range(2):
            for k in reversed(range(len(knobs))):
                for i in range(levels[k]):
                    trial = levels[:k] + [i] + levels[k + 1:]
                    if total(trial) <= budget_bytes:
                        levels = trial
                        break
    final = _apply(plan, knobs, levels)
    after = total(levels)
    steps = []
    for knob, i in zip(knobs, levels):
        if i:
            change, cost = _describe_change(plan, knob, i, final)
            steps.append(FixStep(knob["name"], change, cost, after, fitted))
    return steps


# ======================================================================= preflight
def _tokenizer_for(spec, allow_download: bool = False, path: Optional[str] = None):
    """The model's tokenizer when it is at hand (local dir, built-in cache, HF cache); else None."""
    target = path or spec.path
    try:
        if target.startswith("builtin:"):
            from harness.builtin import builtin_path

            target = str(builtin_path(target.split(":", 1)[1]))
            if not (Path(target) / "tokenizer_config.json").exists():
                return None
        elif Path(target).expanduser().is_dir():
            if not (Path(target).expanduser() / "tokenizer_config.json").exists():
                return None
        elif not allow_download:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(target, "tokenizer_config.json")
            if not isinstance(hit, str):
                return None
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(target, local_files_only=not allow_download)
    except Exception:  # no tokenizer: the estimate falls back to max_seq_len and says so
        return None


@dataclass
class PreflightResult:
    plan: TrainPlan
    estimate: Estimate
    budget: Optional[int]
    budget_source: str
    fix: list

    @property
    def fits(self) -> Optional[bool]:
        return None if self.budget is None else self.estimate.total <= self.budget

    def as_dict(self) -> dict:
        return {"model": self.plan.model_name, "plan": self.plan.describe(), "estimate": self.estimate.as_dict(),
                "folk_rule": folk_rule_rows(self.estimate), "budget_bytes": self.budget,
                "budget_source": self.budget_source, "fits": self.fits,
                "fix": [s.as_dict() for s in self.fix],
                "fix_total_bytes": self.fix[0].total_after if self.fix else None,
                "fix_fits": self.fix[0].fits if self.fix else None}


def preflight(suite, model_spec, gpu_memory: Optional[str] = None, tokenizer=None, allow_download: bool = False,
              budget: Optional[tuple] = None) -> PreflightResult:
    tok = tokenizer if tokenizer is not None else _tokenizer_for(model_spec, allow_download)
    plan = plan_from_suite(suite, model_spec, sample_tokenizer=tok)
    est = estimate(plan)
    limit, source = budget if budget is not None else resolve_budget(gpu_memory, suite)
    fix = suggest_fix(plan, limit) if (limit is not None and est.total > limit) else []
    return PreflightResult(plan, est, limit, source, fix)


def run_preflight(suite, gpu_memory: Optional[str], as_json: bool, console) -> int:
    """`harness preflight`: the breakdown for every model; exit 0 fits (or no budget), 3 does not fit."""
    budget = resolve_budget(gpu_memory, suite)
    results = [preflight(suite, spec, budget=budget) for spec in suite.models]
    fits = all(r.fits is not False for r in results)
    if as_json:
        doc = {"suite": suite.name, "fits": fits, "models": [r.as_dict() for r in results]}
        console.print_json(json.dumps(doc, default=str))
    else:
        for r in results:
            render_preflight(r, console)
    return 0 if fits else 3


def _method_text(p: TrainPlan) -> str:
    if not p.train:
        return f"grading only ({p.weight_dtype} weights)"
    m = {"full": "full fine-tuning", "lora": f"LoRA r={p.lora_r}", "qlora": f"QLoRA r={p.lora_r} (NF4)"}[p.method]
    prec = (f"{p.precision} autocast over {p.weight_dtype} weights" if p.autocast
            else f"{p.precision}" + (f" ({p.weight_dtype} weights)" if p.weight_dtype != p.precision else ""))
    return (f"{m} · {p.optimizer} · {prec} · {p.attn_implementation} · "
            f"{'gradient checkpointing' if p.gradient_checkpointing else 'no gradient checkpointing'}")


def _share(x: float) -> str:
    return f"{x:.2%}" if x >= 0.01 else f"{x:.4%}"


def render_preflight(r: PreflightResult, console) -> None:
    """One line per term (estimate and its formula), the folk rule side by side, verdict, remedy."""
    p, e = r.plan, r.estimate

    def out(text: str = "") -> None:
        console.print(text, highlight=False, soft_wrap=True)

    out(f"[bold]memory preflight: {p.model_name}[/]  [dim](config {p.config_source})[/]")
    out(f"  {_method_text(p)}")
    out(f"  parameters {e.total_params:,}" + (f" · trainable {e.trainable_params:,} = {_share(e.trainable_share)}"
                                              if p.train else ""))
    if p.train:
        shape = (f"1 packed row of {p.batch_size} × {p.seq_len} tokens" if p.padding_free
                 else f"{p.batch_size} × {p.seq_len} tokens")
        out(f"  micro-batch {shape} · grad_accum {p.grad_accum} · "
            f"loss: {'TRL chunked LM head' if p.loss_impl == 'chunked' else 'full logits'}")
        out(f"  length: {p.length_source}")
    if p.eval_batch_size:
        out(f"  grading: batch {p.eval_batch_size}, prompt {p.eval_prompt_len} + {p.eval_new_tokens} new tokens, "
            f"scoring {p.eval_score_len} tokens ({p.eval_length_source})")
    out()
    stack = e.stack()
    width = max(len(TERM_LABELS[k]) for k in TERM_ORDER) + 2
    for k in TERM_ORDER:
        v = e.terms.get(k, 0)
        if not v and k not in ("weights", "gradients", "optimizer", "activations"):
            continue
        mark = "" if (k in stack or not v) else "  [dim](not at the peak)[/]"
        out(f"  {TERM_LABELS[k]:<{width}}{fmt_bytes(v):>11}  [dim]{e.formulas.get(k, '')}[/]{mark}")
    names = {"train": "training forward/backward", "step": "optimizer step", "eval": "grading"}
    out(f"  [bold]{'total (peak)':<{width}}{fmt_bytes(e.total):>11}[/]  [dim]static terms + the largest phase "
        f"({names[e.peak_phase]}) + overhead[/]")
    static = e.terms["weights"] + e.terms["master_weights"] + e.terms["optimizer"]
    out(f"  [dim]phases on top of the static {fmt_bytes(static)}: "
        + " · ".join(f"{names[k]} {fmt_bytes(v)}" for k, v in e.phases.items() if v or k == "train") + "[/]")
    out()
    out(f"  [bold]the 17.5 bytes/parameter rule[/]: {FOLK_RULE_BYTES_PER_PARAM} × {e.base_params:,} = "
        f"{fmt_bytes(e.folk_rule_bytes)} (estimate {fmt_bytes(e.total)})")
    for row in folk_rule_rows(e):
        diff = row["difference_bytes"]
        out(f"  {row['part']:<12} rule {row['rule_bytes_per_param']:>4g} B/param = {fmt_bytes(row['rule_bytes']):>10}"
            f"   estimate {fmt_bytes(row['estimate_bytes']):>10}   {'+' if diff >= 0 else '-'}"
            f"{fmt_bytes(abs(diff)):<10}  [dim]{row['why']}[/]")
    for note in e.notes:
        out(f"  [yellow]note:[/] {note}")
    out()
    if r.budget is None:
        out(f"  verdict: [dim]{r.budget_source}[/]")
    elif r.fits:
        out(f"  verdict: [green]fits[/] {fmt_bytes(r.budget)} ({r.budget_source}): estimate {fmt_bytes(e.total)}, "
            f"{fmt_bytes(r.budget - e.total)} to spare")
    else:
        out(f"  verdict: [red]does not fit[/] {fmt_bytes(r.budget)} ({r.budget_source}): estimate "
            f"{fmt_bytes(e.total)}")
        if r.fix and r.fix[0].fits:
            out("  first configuration that fits (practitioners' order; changes it does not need undone):")
        elif r.fix:
            out("  [red]nothing in the practitioners' list fits[/]; the most it can do:")
        for i, step in enumerate(r.fix, 1):
            out(f"    {i}. {step.change}  [dim]cost: {step.cost}[/]")
        if r.fix:
            out(f"    → estimate {fmt_bytes(r.fix[0].total_after)}"
                + (f", fits {fmt_bytes(r.budget)}" if r.fix[0].fits else f" > {fmt_bytes(r.budget)}"))
    out()


def fits_or_explain(suite, model_spec, gpu_memory: Optional[str] = None) -> tuple[bool, str]:
    """The check `train-and-grade` runs first: (fits, one line). No budget or no config: (True, why)."""
    try:
        budget = resolve_budget(gpu_memory, suite)
        if budget[0] is None:
            return True, f"memory preflight: {budget[1]}"
        r = preflight(suite, model_spec, tokenizer=_tokenizer_for(model_spec, allow_download=not _offline()),
                      budget=budget)
    except ModelConfigError as e:
        return True, f"memory preflight skipped: {e}"
    e = r.estimate
    head = f"{r.plan.model_name}: estimated peak {fmt_bytes(e.total)}"
    if r.fits:
        return True, f"{head} fits {fmt_bytes(r.budget)} ({r.budget_source})"
    big = sorted(((v, k) for k, v in e.stack().items()), reverse=True)[:2]
    line = (f"{head} > budget {fmt_bytes(r.budget)} ({r.budget_source}); largest: "
            + ", ".join(f"{TERM_LABELS[k]} {fmt_bytes(v)}" for v, k in big))
    if r.fix and r.fix[0].fits:
        line += ("; first configuration that fits: " + "; ".join(f"{s.change} ({s.cost})" for s in r.fix)
                 + f" → {fmt_bytes(r.fix[0].total_after)}")
    return False, line + "; see `harness preflight` for the breakdown, or pass --force"


# ========================================================================= records
COMPARED_TERMS = ("weights", "gradients", "optimizer", "activations", "logits")


def compare(est: Estimate, measured: Optional[dict]) -> dict:
    """Estimate vs measured, per term (activations and logits: bytes saved for backward)."""
    measured = measured or {}
    sfb = est.saved_for_backward
    expected = {"weights": est.terms["weights"], "gradients": est.terms["gradients"],
                "optimizer": est.terms["optimizer"], "activations": sfb.get("layers", 0), "logits": sfb.get("head", 0)}
    rows: dict[str, dict] = {}

    def put(name, e, m, what):
        rows[name] = {"estimate": int(e), "measured": None if m is None else int(m),
                      "ratio": (round(m / e, 4) if (m is not None and e) else None), "what": what}

    for k in COMPARED_TERMS:
        what = {"activations": "saved for backward up to the final norm",
                "logits": "saved for backward by the LM head and loss"}.get(k, "bytes after the first optimizer step")
        put(k, expected[k], measured.get(k), what)
    if all(measured.get(k) is not None for k in ("weights", "gradients", "optimizer")):
        put("weights+gradients+optimizer", sum(expected[k] for k in ("weights", "gradients", "optimizer")),
            sum(measured[k] for k in ("weights", "gradients", "optimizer")), "exact bytes")
    t = est.terms
    if measured.get("cuda_peak_allocated") is not None:
        put("peak_allocated", est.total - t["allocator"] - t["cuda_context"], measured["cuda_peak_allocated"],
            "torch.cuda.max_memory_allocated over the run")
    if measured.get("cuda_peak_reserved") is not None:
        put("peak_reserved", est.total - t["cuda_context"], measured["cuda_peak_reserved"],
            "torch.cuda.max_memory_reserved over the run")
    if measured.get("nvml_used_peak") is not None:
        put("nvml_used", est.total, measured["nvml_used_peak"] - measured.get("nvml_used_before", 0),
            "NVML used memory, highest sample, minus what was used before training")
    return rows


def memory_record(suite, model_spec, path: Optional[str], measured: Optional[dict], tokenizer=None) -> dict:
    """models[i].memory for results.json: estimate by term, measured by term, comparison, verdict."""
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        device = "cpu"
    try:
        mc = load_model_config(path) if path else None
        plan = plan_from_suite(suite, model_spec, sample_tokenizer=tokenizer, device=device, model_config=mc)
        est = estimate(plan)
    except Exception as e:   # the record is a diagnostic: never fail a finished run over it
        return {"verdict": {"status": "skipped", "summary": f"no estimate: {type(e).__name__}: {e}"},
                "measured": {k: v for k, v in (measured or {}).items() if k in COMPARED_TERMS}}
    budget, source = resolve_budget(None, suite, nvml="total") if device == "cuda" else (
        (parse_size(suite.memory.gpu_memory), "suite memory.gpu_memory") if suite.memory.gpu_memory else (None, ""))
    cmp = compare(est, measured)
    per_term = {k: v for k, v in (measured or {}).items() if k in COMPARED_TERMS}
    peaks = {k: v for k, v in (measured or {}).items() if k not in COMPARED_TERMS}
    ratios = [f"{k} {cmp[k]['ratio']:.2f}" for k in ("weights+gradients+optimizer", "activations", "logits")
              if k in cmp and cmp[k]["ratio"] is not None]
    accuracy = ("measured/estimated: " + ", ".join(ratios)) if ratios else "not measured"
    measured_total = peaks.get("nvml_used_peak", 0) - peaks.get("nvml_used_before", 0) if "nvml_used_peak" in peaks \
        else peaks.get("cuda_peak_reserved")
    if budget is None:
        status = "skipped"
        summary = f"no GPU budget ({device} run); estimated peak {fmt_bytes(est.total)}; {accuracy}"
    else:
        worst = max(est.total, measured_total or 0)
        status = "fail" if worst > budget else ("warn" if worst > 0.9 * budget else "pass")
        summary = (f"estimated peak {fmt_bytes(est.total)}"
                   + (f", measured {fmt_bytes(measured_total)}" if measured_total else "")
                   + f" {'fits' if worst <= budget else 'exceeds'} {fmt_bytes(budget)}; {accuracy}")
    return {
        "verdict": {"status": status, "summary": summary},
        "estimate": est.stack(), "measured": per_term, "peaks": peaks, "comparison": cmp,
        "terms": est.terms, "formulas": est.formulas, "total_bytes": est.total, "peak_phase": est.peak_phase,
        "saved_for_backward": est.saved_for_backward, "folk_rule_bytes": est.folk_rule_bytes,
        "folk_rule": folk_rule_rows(est), "budget_bytes": budget, "budget_source": source,
        "parameters": {"total": est.total_params, "trainable": est.trainable_params,
                       "trainable_share": est.trainable_share},
        "plan": plan.describe(), "notes": est.notes,
    }


def _make_callback_class():
    from transformers import TrainerCallback

    class MemoryCallback(TrainerCallback):
        """Measures a Trainer run: the first step exactly (MemoryProbe), and peaks on a GPU.

        `measured` after training: weights, gradients, optimizer (bytes after the first optimizer
        step), activations and logits (bytes saved for backward by the first forward), and on
        CUDA cuda_peak_allocated, cuda_peak_reserved, nvml_used_before and nvml_used_peak.
        """

        def __init__(self):
            self.measured: Optional[dict] = None
            self._probe: Optional[MemoryProbe] = None
            self._counted = False
            self._handles: list = []
            self._nvml: dict = {}

        def _sample_nvml(self) -> None:
            used = nvml_used()
            if used is not None:
                self._nvml["nvml_used_peak"] = max(used, self._nvml.get("nvml_used_peak", 0))

        def on_train_begin(self, args, state, control, **kw):
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
                used = nvml_used()
                if used is not None:
                    self._nvml["nvml_used_before"] = used

        def on_step_begin(self, args, state, control, model=None, **kw):
            if self._probe is not None or self.measured is not None or model is None:
                return
            self._probe = MemoryProbe(model)
            self._probe.start(active=False)

            def pre(module, args_):
                if not self._counted:
                    self._probe.active = True

            def post(module, args_, output):
                if self._probe.active:
                    self._probe.active = False
                    self._counted = True

            self._handles = [model.register_forward_pre_hook(pre), model.register_forward_hook(post)]

        def _finish_probe(self, optimizer=None):
            if self._probe is None:
                return
            self._probe.stop()
            for h in self._handles:
                h.remove()
            self._handles = []
            self.measured = {**self._probe.state_bytes(optimizer), "activations": self._probe.activations,
                             "logits": self._probe.head}
            self._probe = None

        def on_optimizer_step(self, args, state, control, optimizer=None, **kw):
            if self.measured is None:
                self._finish_probe(optimizer)
            self._sample_nvml()

        def on_step_end(self, args, state, control, optimizer=None, **kw):
            if self.measured is None and self._probe is not None:   # no on_optimizer_step event
                self._finish_probe(optimizer)
            self._sample_nvml()

        def on_epoch_end(self, args, state, control, **kw):
            self._sample_nvml()

        def on_train_end(self, args, state, control, optimizer=None, **kw):
            self._finish_probe(optimizer)
            self._sample_nvml()
            if self.measured is not None:
                self.measured.update(MemoryProbe.cuda_peaks())
                self.measured.pop("nvml_used", None)
                self.measured.update(self._nvml)

    return MemoryCallback


def __getattr__(name: str):
    # MemoryCallback subclasses transformers.TrainerCallback; built on first use so that importing
    # this module (for the preflight) does not import transformers.
    if name == "MemoryCallback":
        cls = _make_callback_class()
        globals()["MemoryCallback"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ===================================================================== maintenance
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


if __name__ == "__main__":  # python -m harness.memory refresh-configs [NAME ...]
    if len(sys.argv) >= 2 and sys.argv[1] == "refresh-configs":
        refresh_shipped_configs(sys.argv[2:] or None)
    else:
        print("usage: python -m harness.memory refresh-configs [NAME ...]")
        sys.exit(2)
