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

One concern a module, in the order data flows:

    units        bytes per dtype, GiB/MiB, parse_size / fmt_bytes
    configs      model configs (local, shipped, hub, built-in) and the meta-device inventory
    lengths      data-aware lengths (a sample of the suite's rows, tokenized or byte-bounded)
    plan         TrainPlan: the model, the method, the shapes (plan_from_suite, make_plan); SharedPlan:
                 one model's plan built once for a training run
    activations  the activation walk: saved-for-backward bytes, op by op
    terms        per-term formulas of the static terms: weights, optimizer states
    grading      the grading phase's terms (generation, scoring) and the auto grading batch
    estimate     Estimate: static terms + the largest phase + overhead
    folk_rule    the 17.5 bytes/parameter rule next to the estimate
    remedies     Knob and suggest_fix: the practitioners' changes in their order
    budget       the budget: --gpu-memory, the suite, or NVML
    probes       MemoryProbe and measure_step: what one training step really holds
    grading_phase  grading inside training: inference mode, autocast, its own measured peak
    callback     MemoryCallback (a TrainerCallback; built lazily, transformers is not imported here)
    records      results.json models[i].memory: estimate vs measured per term
    preflight    `harness preflight`: plan, estimate, budget, remedy, rendered

Importing this package imports neither torch nor transformers (`harness preflight` stays fast).
"""
from harness.errors import UserError
from harness.memory.activations import CHUNK_TOKENS, CHUNK_VOCAB
from harness.memory.budget import nvml_memory, nvml_used, resolve_budget
from harness.memory.configs import (SHIPPED_DIR, Inventory, ModelConfig, ModelConfigError, build_inventory,
                                    cache_dir, inventory_from_model, load_model_config, model_inventory,
                                    refresh_shipped_configs, shipped_configs)
from harness.memory.estimate import (ALLOCATOR_OVERHEAD, CUDA_CONTEXT_BYTES, FOLK_RULE_BYTES_PER_PARAM, TERM_LABELS,
                                     TERM_ORDER, Estimate, estimate)
from harness.memory.folk_rule import FOLK_RULE_PARTS, folk_rule_rows
from harness.memory.lengths import REFERENCE_NLL_MAX_LEN, TEMPLATE_TOKENS, TEMPLATE_TOKENS_PER_MESSAGE, LoadedRows
from harness.memory.plan import Arch, SharedPlan, TrainPlan, make_plan, plan_from_suite
from harness.memory.preflight import (PreflightResult, fits_or_explain, preflight, render_preflight,
                                      run_preflight)
from harness.memory.probes import MemoryProbe, measure_step
from harness.memory.grading import (AUTO_GRADING_BATCH_MAX, GENERATION_ROW_BYTES, SCORE_CHUNK_BYTES, auto_grading_batch,
                                    grading_bytes, generation_bytes, scoring_bytes)
from harness.memory.grading_phase import GradingProbe, grading_phase, measured_epoch
from harness.memory.records import COMPARED_TERMS, compare, grading_estimate, grading_record, memory_record
from harness.memory.remedies import GC_COST, FixStep, Knob, apply_levels, knobs_for, suggest_fix
from harness.memory.terms import BNB8_BLOCK, BNB8_MIN_SIZE, NF4_BLOCK, NF4_NESTED_BLOCK
from harness.memory.units import BYTES, DTYPE_NAMES, GiB, MiB, fmt_bytes, parse_size

__all__ = [
    "ALLOCATOR_OVERHEAD", "BNB8_BLOCK", "BNB8_MIN_SIZE", "BYTES", "CHUNK_TOKENS", "CHUNK_VOCAB", "COMPARED_TERMS",
    "CUDA_CONTEXT_BYTES", "DTYPE_NAMES", "FOLK_RULE_BYTES_PER_PARAM", "FOLK_RULE_PARTS", "GC_COST", "GiB",
    "MiB", "NF4_BLOCK", "NF4_NESTED_BLOCK", "REFERENCE_NLL_MAX_LEN", "SHIPPED_DIR", "TEMPLATE_TOKENS",
    "TEMPLATE_TOKENS_PER_MESSAGE", "TERM_LABELS", "TERM_ORDER", "Arch", "Estimate", "FixStep", "Inventory",
    "Knob", "LoadedRows", "MemoryCallback", "MemoryProbe", "ModelConfig", "ModelConfigError", "PreflightResult", "SharedPlan", "TrainPlan",
    "UserError", "AUTO_GRADING_BATCH_MAX", "SCORE_CHUNK_BYTES", "GradingProbe", "auto_grading_batch",
    "GENERATION_ROW_BYTES", "generation_bytes", "grading_bytes", "grading_estimate", "grading_phase", "grading_record", "measured_epoch", "scoring_bytes",
    "apply_levels", "build_inventory", "cache_dir", "compare", "estimate", "fits_or_explain",
    "fmt_bytes", "folk_rule_rows", "inventory_from_model", "knobs_for", "load_model_config", "make_plan",
    "measure_step", "memory_record", "model_inventory", "nvml_memory", "nvml_used", "parse_size", "plan_from_suite",
    "preflight", "refresh_shipped_configs", "render_preflight", "resolve_budget", "run_preflight",
    "shipped_configs", "suggest_fix",
]


def __getattr__(name: str):
    # MemoryCallback subclasses transformers.TrainerCallback: built on first use (harness.memory.callback)
    # so that importing this package for the preflight does not import transformers.
    if name == "MemoryCallback":
        from harness.memory import callback

        cls = callback.MemoryCallback
        globals()["MemoryCallback"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
