"""Which memory terms a multi-GPU strategy divides across GPUs, and by how much (pure functions).

Per GPU, data parallelism keeps activations, logits and generation as they are (each GPU runs
its own per-device batch); what the strategies change is where weights, gradients and optimizer
states live:

    strategy              divides by N (GPUs sharding)                     keeps whole
    ddp                   nothing                                          everything
    zero1                 optimizer states, fp32 master weights            weights, gradients
    zero2                 + gradients                                      weights
    zero3                 + weights                                        (one layer gathered at a time)
    fsdp full_shard       weights, gradients, optimizer, master weights    (one unit gathered at a time)
    fsdp shard_grad_op    gradients, optimizer, master weights             weights (unsharded fwd→bwd)
    fsdp hybrid_shard     as full_shard, but N = GPUs per node             -
    fsdp no_shard         nothing (it is DDP)                              everything

Offloading moves a term to CPU memory: DeepSpeed `offload_optimizer` puts optimizer states,
master weights and the optimizer step on the CPU (0 on the GPU); `offload_param` (ZeRO-3) and
FSDP `offload` do the same for the weights. Terms are the names of harness.memory's estimate.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from harness.distributed import launched_world_size
from harness.errors import UserError

OPTIMIZER_TERMS = ("optimizer", "master_weights", "optimizer_step")
DIVIDED: dict[str, tuple[str, ...]] = {
    "ddp": (),
    "zero1": OPTIMIZER_TERMS,
    "zero2": OPTIMIZER_TERMS + ("gradients",),
    "zero3": OPTIMIZER_TERMS + ("gradients", "weights"),
    "fsdp_full_shard": OPTIMIZER_TERMS + ("gradients", "weights"),
    "fsdp_shard_grad_op": OPTIMIZER_TERMS + ("gradients",),
    "fsdp_hybrid_shard": OPTIMIZER_TERMS + ("gradients", "weights"),
    "fsdp_no_shard": (),
}
# strategies whose weights are sharded outside a layer's compute: the model object on rank 0
# does not hold the full weights, so per-epoch grading goes through a gathered checkpoint
WEIGHTS_SHARDED = frozenset({"zero3", "fsdp_full_shard", "fsdp_hybrid_shard"})


@dataclass(frozen=True)
class ShardingPlan:
    strategy: str                         # a key of DIVIDED
    gpus: int                             # processes (one GPU each)
    gpus_per_node: Optional[int] = None   # hybrid_shard divides by this
    offloaded: tuple[str, ...] = field(default_factory=tuple)   # terms moved to CPU memory

    @property
    def divisor(self) -> int:
        if self.strategy == "fsdp_hybrid_shard" and self.gpus_per_node:
            return max(1, min(self.gpus, self.gpus_per_node))
        return max(1, self.gpus)

    @property
    def divided_terms(self) -> tuple[str, ...]:
        return DIVIDED[self.strategy] if self.divisor > 1 else ()

    @property
    def weights_sharded(self) -> bool:
        return self.strategy in WEIGHTS_SHARDED and self.gpus > 1


def strategy_of(deepspeed: Union[str, dict, None], fsdp: Optional[str], base_dir: Path = Path(".")
                ) -> tuple[str, tuple[str, ...]]:
    """(strategy, offloaded terms) from the suite's `train.distributed` (no section: ddp)."""
    if deepspeed is not None:
        cfg = deepspeed if isinstance(deepspeed, dict) else _read_json(base_dir / deepspeed)
        zero = cfg.get("zero_optimization") or {}
        stage = int(zero.get("stage", 0))
        offloaded: tuple[str, ...] = ()
        if _device(zero.get("offload_optimizer")) in ("cpu", "nvme"):
            offloaded += OPTIMIZER_TERMS
        if stage == 3 and _device(zero.get("offload_param")) in ("cpu", "nvme"):
            offloaded += ("weights",)
        return ("ddp", "zero1", "zero2", "zero3")[stage], offloaded
    if fsdp:
        words = fsdp.split()
        kind = next((w for w in words if w in ("full_shard", "shard_grad_op", "hybrid_shard",
                                               "hybrid_shard_zero2", "no_shard")), "full_shard")
        kind = "shard_grad_op" if kind == "hybrid_shard_zero2" else kind
        offloaded = ("weights", "gradients") + OPTIMIZER_TERMS if "offload" in words else ()
        return f"fsdp_{kind}", offloaded
    return "ddp", ()


def per_gpu_terms(terms: dict[str, int], plan: ShardingPlan) -> tuple[dict[str, int], dict[str, str]]:
    """Terms as one GPU holds them, and for each changed term how (for the formula)."""
    out, how = dict(terms), {}
    for k in plan.offloaded:
        if out.get(k):
            out[k], how[k] = 0, "offloaded to CPU memory"
    for k in plan.divided_terms:
        if out.get(k):
            out[k] = -(-out[k] // plan.divisor)          # ceil: a shard is never smaller than its share
            how[k] = f"÷ {plan.divisor} ({plan.strategy})"
    return out, how


def describe(plan: ShardingPlan) -> str:
    divided = ", ".join(plan.divided_terms) or "no term"
    whole = [k for k in ("weights", "gradients", "optimizer") if k not in plan.divided_terms]
    text = f"{plan.strategy} over {plan.gpus} GPU(s): per GPU, {divided} divided by {plan.divisor}"
    if whole:
        text += f"; kept whole on every GPU: {', '.join(whole)}"
    if plan.offloaded:
        text += f"; {', '.join(plan.offloaded)} offloaded to CPU"
    if plan.weights_sharded:
        text += "; rank 0 grades each epoch from a gathered checkpoint (the full weights, once more)"
    return text + "; activations, logits and generation are per GPU (per-device batch), not divided"


def _device(section: Any) -> Optional[str]:
    return section.get("device") if isinstance(section, dict) else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"train.distributed.deepspeed: config file {path} not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"train.distributed.deepspeed: {path}:{e.lineno}: not valid JSON ({e.msg})") from None


def sharding_plan(distributed) -> Optional[ShardingPlan]:
    """The suite's `train.distributed` (a DistributedSpec or None) as a plan for the estimate; None
    for a single process with no distributed section. GPUs: num_processes, else the launcher's
    WORLD_SIZE, else the visible GPUs."""
    gpus = (distributed.num_processes if distributed is not None else None) or launched_world_size()
    if gpus <= 1 and distributed is not None and distributed.num_processes is None:
        try:
            import torch

            gpus = max(1, torch.cuda.device_count())
        except Exception:  # no torch/CUDA: one process
            gpus = 1
    if distributed is None:
        return ShardingPlan("ddp", gpus) if gpus > 1 else None
    strategy, offloaded = strategy_of(distributed.deepspeed, distributed.fsdp)
    return ShardingPlan(strategy, gpus, distributed.gpus_per_node, offloaded)
