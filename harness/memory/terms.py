"""Per-term formulas of the static terms: weights and optimizer states (grading: harness/memory/grading.py)."""
from __future__ import annotations

import math

from harness.memory.plan import TrainPlan, _trainable_dtype
from harness.memory.units import BYTES, _n

NF4_BLOCK, NF4_NESTED_BLOCK = 64, 256     # bitsandbytes 4-bit blocks (double quantization)
BNB8_BLOCK, BNB8_MIN_SIZE = 256, 4096     # bitsandbytes 8-bit optimizer blocks; smaller params stay 32-bit


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
