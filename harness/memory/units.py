"""Units and sizes: bytes per dtype, GiB/MiB, '12GiB' parsing and printing."""
from __future__ import annotations

import re
from typing import Any

from harness.errors import UserError

GiB = 1024 ** 3
MiB = 1024 ** 2
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp64": 8, "int64": 8, "int32": 4, "bool": 1, "uint8": 1}
DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "fp32": "fp32", "bf16": "bf16",
               "fp16": "fp16"}

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


def _n(x: float) -> str:
    return f"{int(round(x)):,}"
