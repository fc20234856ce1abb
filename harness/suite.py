"""Suite YAML → typed config, validated whole before anything runs.

This is the one boundary where raw dicts exist. Every error becomes a single
`SuiteError` line naming the file, the line, the field and the fix; the CLI turns
it into exit code 2.
"""
from __future__ import annotations

import difflib
import json
import re
import string
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from harness.drift.spec import DRIFT_SIGNALS, DriftSpec, ProbeSpec, check_drift_gate
from harness.errors import SuiteError  # noqa: F401  (imported from here too)
from harness.files import read_text
from harness.metrics import METRICS, MetricOptions
from harness.results import safe_name
from harness.suite_checks import looks_local, model_dir_problem, model_source_problem, read_json_schema
from harness.suite_cross_checks import check_early_stopping, check_gate_tasks, check_grading_engine
from harness.sweep.spec import SweepSpec
from harness.tracking.spec import TrackingSpec
from harness.yaml_lines import line_map, yaml_load
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

MAX_SYNTHETIC_ROWS = 100_000   # a generator makes ~20,000 rows a minute on one core: more is a typo
DIRECTION = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z]+)?-[A-Za-z]{2,3}(_[A-Za-z]+)?$")
PROMPT_FIELDS = ("src_name", "tgt_name", "source")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- data
class SyntheticSource(_Strict):
    """Data the project generates itself (runs offline)."""

    kind: Literal["translation", "json_extraction", "summarisation", "math"] = "translation"
    direction: Optional[Literal["en-fr", "fr-en", "en-zh"]] = Field(
        None, description="For translation: 'en-fr' (the default), 'fr-en' or 'en-zh'.")
    split: Literal["train", "val", "test"] = "train"
    n: int = Field(200, ge=1, le=MAX_SYNTHETIC_ROWS, description="Number of rows to generate.")
    seed: int = 0

    @model_validator(mode="after")
    def _default_direction(self) -> "SyntheticSource":
        # one default for the rows, their prompt and the task's language (all read this field)
        if self.kind == "translation" and self.direction is None:
            object.__setattr__(self, "direction", "en-fr")
        return self


class DataSpec(_Strict):
    """One data source. Exactly one of path / parallel / hf / synthetic / recipe is set."""

    path: Optional[str] = Field(
        None, description="JSONL file: rows with `messages`, or `prompt`/`completion`."
    )
    parallel: Optional[dict[str, str]] = Field(
        None,
        description="Plain parallel text (one sentence a line, optionally .gz): "
        "{source: FILE, target: FILE}.",
    )
    hf: Optional[dict[str, Any]] = Field(
        None, description="Hugging Face dataset: {name, config, split, source_field, target_field}."
    )
    synthetic: Optional[SyntheticSource] = None
    recipe: Optional[str] = Field(
        None, description="Data recipe YAML (`harness data build`): built on first use, reused by hash.")
    recipe_split: Literal["train", "validation"] = Field("train", description="Which split of the recipe.")
    direction: Optional[str] = Field(
        None, description="Translation direction 'src-tgt' (e.g. 'en-fr') for parallel/hf data."
    )
    prompt: str = Field(
        "Translate {src_name} to {tgt_name}:\n{source}",
        description="Prompt template for parallel/hf/synthetic translation rows.",
    )
    system: Optional[str] = Field(None, description="Optional system message for every row.")
    limit: Optional[int] = Field(None, ge=1, description="Keep the first N rows.")
    offset: int = Field(0, ge=0, description="Skip the first N rows.")
    cluster: Optional[str] = Field(
        None, min_length=1, description="A field of every row (string or integer) whose equal values mark items "
        "that are not independent (one document, one template, one source): intervals, paired tests and MDEs "
        "then resample whole clusters. JSONL, recipe and hf rows; docs/diagnostics.md.")

    @field_validator("direction")
    @classmethod
    def _direction_shape(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not DIRECTION.match(v):
            raise ValueError(f"direction is 'SRC-TGT' with language codes, e.g. 'en-fr', not {v!r}")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt_placeholders(cls, v: str) -> str:
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as e:   # "Single '}' encountered", unclosed "{"
            raise ValueError(f"prompt template: {e} (write {{{{ and }}}} for literal braces)") from None
        bad = [n for n in names if n not in PROMPT_FIELDS]
        if bad:
            hint = difflib.get_close_matches(bad[0], PROMPT_FIELDS, n=1)
            raise ValueError(f"prompt template: unknown placeholder {{{bad[0]}}}"
                             + (f"; did you mean {{{hint[0]}}}?" if hint else
                                f"; use {', '.join('{' + f + '}' for f in PROMPT_FIELDS)}"))
        return v

    @model_validator(mode="after")
    def _exactly_one_source(self) -> "DataSpec":
        set_ = [k for k in ("path", "parallel", "hf", "synthetic", "recipe") if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(
                f"give exactly one of path, parallel, hf, synthetic, recipe (got {', '.join(set_) or 'none'})"
            )
        if self.parallel is not None:
            missing = {"source", "target"} - set(self.parallel)
            if missing:
                raise ValueError(f"parallel needs keys source and target (missing {sorted(missing)})")
            if not self.direction:
                raise ValueError("parallel data needs `direction`, e.g. direction: en-fr")
        if self.cluster is not None and (self.parallel is not None or self.synthetic is not None):
            raise ValueError("cluster names a field of the rows: parallel text and synthetic data have none "
                             "(use a JSONL file, a recipe or an hf dataset, or remove cluster)")
        return self


# -------------------------------------------------------------------------- model
class ModelSpec(_Strict):
    name: Optional[str] = Field(None, description="Label in results and report.")
    path: str = Field(
        ...,
        description="Local directory, hub id, or 'builtin:tiny-translator' (built and cached offline).",
    )
    adapter: Optional[str] = Field(None, description="PEFT adapter directory to apply on top.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: Optional[Literal["eager", "sdpa", "flash_attention_2"]] = None

    @model_validator(mode="after")
    def _default_name(self) -> "ModelSpec":
        if self.name is None:
            object.__setattr__(self, "name", Path(self.path.split(":")[-1]).name or self.path)
        return self


# -------------------------------------------------------------------------- train
class LoraSpec(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Union[Literal["all-linear"], list[str]] = "all-linear"


class EarlyStoppingSpec(_Strict):
    metric: str = Field(
        ..., description="'TASK/METRIC' from the harness's grading (e.g. en-fr/bleu) or 'TASK/loss'."
    )
    patience: int = Field(2, ge=1, description="Stop after N graded epochs without improvement.")
    min_delta: float = Field(0.0, ge=0)
    rule: Literal["improvement", "tie_set"] = Field(
        "improvement", description="improvement: any gain beyond min_delta counts. tie_set: only a gain the "
        "one-sided paired test finds significant (at diagnostics.forgetting.confidence) counts; an epoch within "
        "noise of the best is tied with it and the earlier one stays best.")


class DistributedSpec(_Strict):
    """Multi-GPU training under `accelerate launch`: handed to TRL/transformers as they are
    (TrainingArguments `deepspeed=` / `fsdp=` / `fsdp_config=`); docs/scale.md."""

    deepspeed: Optional[Union[str, dict[str, Any]]] = Field(
        None, description="DeepSpeed config: a JSON file (relative to the suite) or the config itself; "
                          "its zero_optimization.stage picks ZeRO-1/2/3.")
    fsdp: Optional[str] = Field(
        None, description="FSDP options as transformers takes them, e.g. 'full_shard auto_wrap' or "
                          "'shard_grad_op auto_wrap'.")
    fsdp_config: Optional[dict[str, Any]] = Field(None, description="TrainingArguments.fsdp_config.")
    num_processes: Optional[int] = Field(
        None, ge=1, description="GPUs the preflight estimate divides by (default: the launcher's WORLD_SIZE, "
                                "else the visible GPUs).")
    gpus_per_node: Optional[int] = Field(None, ge=1, description="For FSDP hybrid_shard: GPUs per node.")
    grading: Literal["rank0", "sharded"] = Field(
        "rank0", description="Per-epoch grading: rank 0 alone while the others wait, or the items split "
                             "across ranks and gathered (DDP/ZeRO-1/2/shard_grad_op only).")

    @model_validator(mode="after")
    def _one_engine(self) -> "DistributedSpec":
        if self.deepspeed is not None and self.fsdp:
            raise ValueError("give either deepspeed or fsdp, not both")
        return self


class TrainSpec(_Strict):
    data: list[DataSpec] = Field(..., min_length=1)
    method: Literal["full", "lora", "qlora"] = "full"
    backend: Literal["trl", "unsloth"] = "trl"
    epochs: int = Field(3, ge=1, le=1000)
    lr: float = Field(2e-4, gt=0)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_seq_len: int = Field(512, ge=8, le=1_048_576)
    optimizer: Literal["adamw", "adamw_8bit", "sgd", "adafactor"] = "adamw"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    packing: bool = False
    assistant_only_loss: bool = True
    seed: int = 0
    lora: LoraSpec = Field(default_factory=LoraSpec)
    early_stopping: Optional[EarlyStoppingSpec] = None
    save_checkpoints: bool = True
    keep_checkpoints: Optional[int] = Field(
        None, ge=1, description="Keep only the newest N epoch checkpoints (the best one is always kept); "
                                "unset keeps all.")
    logging_steps: int = Field(5, ge=1)
    distributed: Optional[DistributedSpec] = None


# -------------------------------------------------------------------------- tasks

def _metric_names_schema(schema: dict) -> None:
    """The JSON Schema's enum of metric names, from the catalogue when the schema is made."""
    schema["items"]["enum"] = list(METRICS)


# generation.batch_size: auto on CPU, or without a memory budget for a grading-only job (docs/memory.md)
AUTO_GRADING_BATCH_BOUND = 32


class GenerationSpec(_Strict):
    max_new_tokens: int = Field(64, ge=1, le=32_768)
    batch_size: Union[int, Literal["auto"]] = Field(
        "auto", description="Grading batch: a number (1-4096), or auto (the largest batch that keeps grading at "
                            "or below the training phase's memory; 32 on CPU).")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096):
            return v
        raise ValueError(f"batch_size must be auto or an integer from 1 to 4096 (got {v!r})")
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: Optional[int] = Field(
        None, description="Seed of sampling (do_sample): two gradings of one model give the same outputs. "
        "Unset: train.seed, else 0.")
    engine: Literal["padded", "static", "continuous"] = Field(
        "padded", description="transformers backend only. padded: left-padded batches of batch_size "
        "(dynamic KV cache); static: the same batches with a preallocated static KV cache; continuous: "
        "transformers' continuous batching over a paged KV cache (generate_batch), batch_size requests at "
        "once. See docs/generation.md for measured speeds.")


class TaskSpec(_Strict):
    name: str = Field(..., description="Task name, e.g. 'en-fr'; used as the results key.")
    data: DataSpec
    metrics: list[str] = Field(default_factory=lambda: ["bleu", "chrf", "perplexity", "usability"],
                               json_schema_extra=lambda schema: _metric_names_schema(schema))
    metric_options: MetricOptions = Field(
        default_factory=MetricOptions, description="Per-metric options, e.g. {bleu: {tokenize: zh}, rouge: "
        "{tokenizer: char}}; one typed model per metric (harness/metric_options.py); unset, BLEU/TER/ROUGE "
        "follow the task's language (docs/metrics.md)."
    )
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    json_schema: Optional[str] = Field(None, description="JSON Schema file for json_validity.")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        for m in v:   # the catalogue (harness/metrics/__init__.py), read now: a metric added to it is known
            if m not in METRICS:
                hint = difflib.get_close_matches(m, list(METRICS), n=1)
                raise ValueError(
                    f"unknown metric {m!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(METRICS)}")
                )
        return v


# ------------------------------------------------------------------ diagnostics etc
class ForgettingSpec(_Strict):
    threshold: float = Field(1.0, ge=0, description="Drop below epoch 0, in the metric's own units "
                                                     "(BLEU points, percentage points), that counts.")
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"perplexity": 0.5, "loss": 0.05},
        description="Per-metric thresholds that replace `threshold`, e.g. {perplexity: 0.5}.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Family-wise: the chance that a run where nothing "
                              "changed flags anything is at most 1 - confidence (Holm over every task × metric × "
                              "epoch test).")
    power: float = Field(0.8, gt=0, lt=1, description="Power at which the minimum detectable effect (MDE) is "
                         "stated: a drop of the MDE is detected with this probability.")
    samples: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples for the paired tests.")


class AuditSpec(_Strict):
    fail_on_error: bool = Field(True, description="Stop the run when a pre-training audit fails.")
    max_truncated_share: float = Field(0.05, ge=0, le=1, description="Warn above this share of "
                                       "training examples cut by max_seq_len.")
    max_leakage_share: float = Field(0.01, ge=0, le=1, description="Fail above this share of a "
                                     "validation set found verbatim in the training data (any is a warning).")
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity (word 1-2-grams) "
                                            "from which an evaluation row counts as a near copy of a training row.")


class DiagnosticsSpec(_Strict):
    forgetting: ForgettingSpec = Field(default_factory=ForgettingSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    smoothing: int = Field(1, ge=1, description="Centred moving-average window (epochs) applied to validation "
                                                "series before locating the peak; 1 = off.")
    probe: Optional[ProbeSpec] = Field(None, description="General text scored at every epoch for drift "
                                       "(docs/diagnostics.md, Drift).")
    drift: DriftSpec = Field(default_factory=DriftSpec)


class GateSpec(_Strict):
    task: str = Field("", description="The task gated (with metric); not with drift.")
    metric: str = Field("", description="The metric gated, or `loss`.")
    drift: Optional[Literal[DRIFT_SIGNALS]] = Field(None, description="A drift signal (kl, kl_prompts, nll; "
                                                    "diagnostics.drift) gated with min/max instead of a task metric.")
    min: Optional[float] = Field(None, description="Absolute floor.")
    max: Optional[float] = Field(None, description="Absolute ceiling (for lower-is-better metrics).")
    max_drop_from_base: Optional[float] = Field(None, description="Forgetting budget vs epoch 0.")
    max_drop_from_baseline: Optional[float] = Field(
        None, description="Regression budget vs a baseline results file."
    )
    checkpoint: Union[Literal["best", "last"], int] = "best"
    confidence: float = Field(0.95, gt=0, lt=1)

    @model_validator(mode="after")
    def _task_or_drift(self) -> "GateSpec":
        check_drift_gate(self)
        return self


class BootstrapSpec(_Strict):
    samples: int = Field(1000, ge=0, le=100_000, description="Bootstrap resamples for 95% CIs (0 disables).")
    seed: int = 0


class GradingSpec(_Strict):
    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="Who generates when train-and-grade grades each epoch (and the default of "
        "`harness grade --backend`). vllm: one engine for the whole run, LoRA epochs hot-loaded as LoRA "
        "requests, full fine-tunes reloaded in place; CUDA only, pip install 'harness[vllm]'.")
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="vllm only: share of the GPU the engine may take while it grades next to "
        "the training job (it sleeps while training).")


class MemorySpec(_Strict):
    gpu_memory: Optional[str] = Field(None, description="Budget such as '12GiB'; else read via NVML.")
    eval_batch_size: Optional[int] = None


class Suite(_Strict):
    name: str
    description: str = ""
    models: list[ModelSpec] = Field(..., min_length=1)
    train: Optional[TrainSpec] = None
    tasks: list[TaskSpec] = Field(..., min_length=1)
    diagnostics: DiagnosticsSpec = Field(default_factory=DiagnosticsSpec)
    gates: list[GateSpec] = Field(default_factory=list)
    bootstrap: BootstrapSpec = Field(default_factory=BootstrapSpec)
    memory: MemorySpec = Field(default_factory=MemorySpec)
    grading: GradingSpec = Field(default_factory=GradingSpec)
    output_dir: str = Field("runs", description="Runs are written to OUTPUT_DIR/NAME-TIMESTAMP.")
    sweep: Optional[SweepSpec] = Field(None, description="`harness sweep`: suite fields to vary over an Optuna "
                                                         "study (docs/sweep.md); other commands ignore it.")
    tracking: Optional[TrackingSpec] = Field(None, exclude_if=lambda v: v is None,   # off: results.json unchanged
                                             description="Experiment trackers (docs/tracking.md).")
    # Where relative paths resolve: the suite file's directory (set by load_suite).
    base_dir: str = Field(".", exclude=True, json_schema_extra={"hidden": True})
    # The file it came from and where each key sits (set by parse_suite), for later errors.
    _file: str = PrivateAttr("<suite>")
    _lines: dict = PrivateAttr(default_factory=dict)

    def where(self, *loc) -> str:
        """'FILE:LINE' of the key at `loc` (or of its nearest parent), for one-line errors."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self._lines:
                return f"{self._file}:{self._lines[loc[:n]]}"
        return self._file

    @model_validator(mode="after")
    def _unique_task_names(self) -> "Suite":
        names = [t.name for t in self.tasks]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"task names must be unique; repeated: {sorted(dup)}")
        files = [safe_name(n) for n in names]   # sample files are named after tasks
        clash = sorted({n for n, f in zip(names, files) if files.count(f) > 1})
        if clash:
            raise ValueError(f"task names {clash} give the same sample file name: rename one")
        return self

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p)

    def task(self, name: str) -> TaskSpec:
        return next(t for t in self.tasks if t.name == name)


# ----------------------------------------------------------------------- loading
def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc` (for 'did you mean')."""
    model: Any = Suite
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        ann = fields[part].annotation
        model = _unwrap_model(ann)
        if model is None:
            return None
    return model


def _unwrap_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def format_validation_error(err: dict, file: str, lines: dict[tuple, int]) -> str:
    """One pydantic error of a suite-schema model as `file:line: field ...: fix` (gates files use it too)."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    # pydantic puts union-member names in loc; drop tags that aren't real keys.
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = None
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    where = f"{file}:{line}" if line else file
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc)
        known = [k for k in (owner.model_fields if owner else {}) if k != "base_dir"]
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        fix = (f"did you mean '{hint[0]}'?" if hint else f"allowed keys: {', '.join(known)}" if known
               else "it takes no keys: remove it")
        return f"{where}: unknown key '{field}': {fix}"
    if kind == "missing":
        return f"{where}: missing required field '{field}': add it"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    got_s = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{where}: field '{field}': {msg}{got_s}"


def parse_suite(text: str, file: str = "<suite>", base_dir: str | Path = ".") -> Suite:
    try:
        raw = yaml_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SuiteError(f"{file}{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{file}: a suite is a YAML mapping with keys name, models, tasks")
    try:
        suite = Suite.model_validate({**raw, "base_dir": str(base_dir)})
    except ValidationError as e:
        lines = line_map(text)
        errors = [format_validation_error(err, file, lines) for err in e.errors()]
        raise SuiteError(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")) from None
    lines = line_map(text)
    suite._file, suite._lines = file, lines
    _check_files(suite, file, lines=lines)
    check_early_stopping(suite, file, lines=lines)
    check_gate_tasks(suite, file, lines=lines)
    check_grading_engine(suite, file, lines=lines)
    _resolve_models(suite)
    return suite


def _check_files(suite: Suite, file: str, lines: dict[tuple, int]) -> None:
    """Missing files, directories in their place and unreadable schemas are configuration
    errors too: report them before any work starts."""

    def fail(loc: tuple, problem: str) -> None:
        line = lines.get(loc)
        where = f"{file}:{line}" if line else file
        raise SuiteError(f"{where}: field '{'.'.join(map(str, loc))}': {problem}")

    def check(path: Optional[str], loc: tuple) -> None:
        if path is None:
            return
        p = suite.resolve(path)
        if p.is_dir():
            fail(loc, f"{p} is a directory, expected a file")
        if not p.exists():
            fail(loc, f"file not found: {p} (paths are relative to the suite file)")

    def check_data(d: DataSpec, loc: tuple) -> None:
        check(d.path, loc + ("path",))
        check(d.recipe, loc + ("recipe",))
        if d.parallel:
            for side in ("source", "target"):
                check(d.parallel[side], loc + ("parallel", side))

    if suite.train:
        for i, d in enumerate(suite.train.data):
            check_data(d, ("train", "data", i))
    for i, t in enumerate(suite.tasks):
        check_data(t.data, ("tasks", i, "data"))
        check(t.json_schema, ("tasks", i, "json_schema"))
        if t.json_schema:
            try:
                read_json_schema(suite.resolve(t.json_schema))
            except SuiteError as e:
                fail(("tasks", i, "json_schema"), str(e))
    ds = suite.train.distributed.deepspeed if suite.train and suite.train.distributed else None
    if isinstance(ds, str):
        check(ds, ("train", "distributed", "deepspeed"))
    for i, m in enumerate(suite.models):
        if m.adapter:
            problem = model_dir_problem(str(suite.resolve(m.adapter)), adapter=True)
            if problem:
                fail(("models", i, "adapter"), problem)
        problem = model_source_problem(str(suite.resolve(m.path)) if looks_local(m.path) else m.path)
        if problem:
            fail(("models", i, "path"), problem + (" (paths are relative to the suite file)"
                                                   if looks_local(m.path) else ""))
    out = Path(suite.output_dir)
    for q in (out, *out.parents):
        if q.exists():
            if not q.is_dir():
                fail(("output_dir",), f"{q} is a file, expected a directory")
            break


def _resolve_models(suite: Suite) -> None:
    """Local model directories and adapters relative to the suite file, as the file check found them."""
    dist = suite.train.distributed if suite.train else None
    if dist and isinstance(dist.deepspeed, str):   # the DeepSpeed config file too
        dist.deepspeed = str(suite.resolve(dist.deepspeed))
    for m in suite.models:
        if m.adapter:
            m.adapter = str(suite.resolve(m.adapter))
        if looks_local(m.path):
            m.path = str(suite.resolve(m.path))


def load_suite(path: str | Path) -> Suite:
    p = Path(path)
    if not p.exists():
        raise SuiteError(f"{p}: suite file not found")
    return parse_suite(read_text(p, "suite file", SuiteError), file=str(p), base_dir=p.parent)


def suite_json_schema() -> dict:
    """JSON Schema of the suite format, for editor autocompletion (docs/suite.schema.json)."""
    schema = Suite.model_json_schema()
    schema["properties"].pop("base_dir", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "harness suite"
    return schema


def dump_suite(suite: Suite) -> str:
    """The resolved suite (defaults filled in), as stored in every run directory."""
    return yaml.safe_dump(json.loads(suite.model_dump_json(exclude={"base_dir"})), sort_keys=False)
