"""The training plan: the model, the method and the shapes batches will have, from a suite or by hand."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from harness.memory.configs import Inventory, ModelConfig, load_model_config, model_inventory
from harness.memory.lengths import LoadedRows, _data_aware
from harness.memory.units import DTYPE_NAMES
from harness.metrics import generates, scores_likelihood
from harness.sharding import sharding_plan


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
    final_softcap: Optional[float] = None   # gemma2/3 final_logit_softcapping: tanh(logits / c) * c

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
            final_softcap=t.get("final_logit_softcapping"),
        )


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
    eval_batch_size: int = 0           # 0: no grading; with eval_batch_auto, the resolved batch (estimate())
    eval_batch_auto: bool = False      # generation.batch_size: auto (harness/memory/grading.py picks it)
    eval_batch_fixed: int = 0          # the largest integer generation.batch_size among the tasks
    eval_items: int = 0                # rows of the largest grading task (a batch is never larger); 0: unknown
    budget_bytes: Optional[int] = None   # the memory budget, when known (auto batch of a grading-only job)
    eval_prompt_len: int = 0
    eval_new_tokens: int = 0
    eval_score_len: int = 0
    eval_answer_len: int = 0           # scored (assistant) tokens of the longest reference; 0: eval_score_len
    eval_generates: bool = True
    eval_sampling: str = "greedy"      # greedy | sample | sample_top_p: the logits processors' buffers (grading.py)
    eval_scores: bool = True
    eval_dtype: str = "fp32"
    probe_top_k: int = 0               # drift probes (diagnostics.probe/drift): base log-probs kept a position; 0: none
    probe_positions: int = 0           # scored probe + task-prompt positions at most (the stored base's rows)
    probe_len: int = 0                 # a probe item's tokens at most (max_seq_len)
    device: str = "cuda"               # cuda (the preflight target) | cpu (to compare with a CPU run)
    backend: str = "trl"
    length_source: str = "max_seq_len"
    eval_length_source: str = "max_seq_len"
    lengths: Optional[list] = None     # token counts of sampled training rows (for the remedies)
    lengths_exact: bool = False        # tokenized (True) or a UTF-8 byte bound (False)
    notes: list = field(default_factory=list)
    sharding: Any = None               # harness.sharding.ShardingPlan (several GPUs) or None

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
            "eval_batch_size": self.eval_batch_size, "eval_batch_auto": self.eval_batch_auto,
            "eval_prompt_len": self.eval_prompt_len,
            "eval_new_tokens": self.eval_new_tokens, "eval_sampling": self.eval_sampling,
            "eval_score_len": self.eval_score_len,
            "eval_answer_len": self.eval_answer_len,
            "length_source": self.length_source, "eval_length_source": self.eval_length_source,
            "device": self.device,
        }


def _trainable_dtype(plan: TrainPlan) -> str:
    return plan.weight_dtype if plan.method == "full" else "fp32"


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
                    model_config: Optional[ModelConfig] = None, data_aware: bool = True,
                    loaded: Optional[LoadedRows] = None) -> TrainPlan:
    """The suite's training job (or grading, without a train section) as a TrainPlan.

    With `sample_tokenizer`, a sample of the training rows is tokenized (chat template applied)
    and the padded width of the widest batch is what the data really needs, capped by
    max_seq_len; with packing, rows are packed to max_seq_len. Without a tokenizer, training
    uses max_seq_len and grading an upper bound from the rows' UTF-8 byte counts. `loaded`: rows
    the caller already holds, measured instead of read again.
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
        plan.sharding = sharding_plan(t.distributed)   # per-GPU terms under DDP/ZeRO/FSDP
        if plan.padding_free and attn != "flash_attention_2":
            plan.notes.append(f"packing with {attn}: the packed batch is one row of {t.batch_size}×max_seq_len "
                              "tokens with a block-diagonal mask of that length squared; "
                              "attn_implementation: flash_attention_2 avoids the mask")
    # ---- grading: the batch and lengths every epoch's grading will use
    fixed = [task.generation.batch_size for task in suite.tasks if task.generation.batch_size != "auto"]
    plan.eval_batch_fixed = plan.eval_batch_size = max(fixed, default=0)
    plan.eval_batch_auto = len(fixed) < len(suite.tasks)
    if suite.memory.eval_batch_size:
        plan.eval_batch_size = plan.eval_batch_fixed = suite.memory.eval_batch_size
        plan.eval_batch_auto = False
    plan.eval_new_tokens = max((task.generation.max_new_tokens for task in suite.tasks), default=0)
    plan.eval_generates = any(generates(task.metrics) for task in suite.tasks)
    sampled = [task.generation for task in suite.tasks if task.generation.do_sample]
    plan.eval_sampling = ("sample_top_p" if any(g.top_p < 1 for g in sampled) else "sample") if sampled else "greedy"
    plan.eval_scores = any(scores_likelihood(task.metrics) for task in suite.tasks)
    cap = t.max_seq_len if t is not None else 512
    plan.eval_prompt_len = plan.eval_score_len = cap
    plan.eval_length_source = "max_seq_len (grading data not read)"
    _drift_probe(plan, suite, cap)
    if data_aware:
        _data_aware(plan, suite, sample_tokenizer, loaded=loaded)
    return plan


def _drift_probe(plan: TrainPlan, suite, cap: int) -> None:
    """The drift probe's shapes (harness/drift): every position of an item scored, top-k kept."""
    from harness.drift.measure import drift_enabled

    if not drift_enabled(suite):
        return
    probe, spec = suite.diagnostics.probe, suite.diagnostics.drift
    plan.probe_top_k = probe.top_k if probe else 32
    items = (probe.n if probe else 0) + spec.prompts * len(suite.tasks)
    plan.probe_positions = items * cap
    plan.probe_len = cap


class SharedPlan:
    """One model's plan, built on first use and then shared by every estimate a training run makes
    of that model (the fit check, the grading batch, the memory record, the out-of-memory remedy):
    the data is counted once, from the rows the pipeline already loaded.

    Each user takes its own `copy` (device and budget differ between them). A plan that cannot be
    built raises the same error to every user, each of which decides what that means for it.
    """

    def __init__(self, suite, model_spec, path: Optional[str], tokenizer=None, device: str = "cuda",
                 loaded: Optional[LoadedRows] = None):
        self.suite, self.model_spec, self.path = suite, model_spec, path
        self.tokenizer, self.device, self.loaded = tokenizer, device, loaded
        self._plan: Optional[TrainPlan] = None
        self._error: Optional[Exception] = None

    def copy(self, **changes) -> TrainPlan:
        if self._plan is None and self._error is None:
            try:
                mc = load_model_config(self.path) if self.path else None
                self._plan = plan_from_suite(self.suite, self.model_spec, sample_tokenizer=self.tokenizer,
                                             device=self.device, model_config=mc, loaded=self.loaded)
            except Exception as e:   # kept: every later user gets the same error
                self._error = e
        if self._error is not None:
            raise self._error
        plan = dataclasses.replace(self._plan, **changes)
        plan.notes = list(self._plan.notes)   # a user's notes stay its own
        return plan


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
