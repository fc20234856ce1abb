"""The memory budget: --gpu-memory, the suite's memory.gpu_memory, or the GPU's memory through NVML."""
from __future__ import annotations

import os
from typing import Optional

from harness.errors import UserError
from harness.memory.units import fmt_bytes, parse_size


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


def parse_budget(text: str, where: str) -> int:
    """A budget in bytes; one of no bytes fits nothing (a typo: a missing unit or digit), refused
    as such. `where` names the flag or suite field."""
    size = parse_size(text)
    if size <= 0:
        raise UserError(f"{where} {text!r}: a memory budget must be more than 0 bytes, e.g. 12GiB")
    return size


def check_budget(gpu_memory: Optional[str], suite) -> None:
    """The given budgets (flag and suite), parsed before a run directory exists; NVML is not asked."""
    if gpu_memory is not None:
        parse_budget(gpu_memory, "--gpu-memory")
    if suite.memory.gpu_memory is not None:
        parse_budget(suite.memory.gpu_memory, "suite memory.gpu_memory")


def resolve_budget(gpu_memory: Optional[str], suite=None, nvml: str = "free") -> tuple[Optional[int], str]:
    """(bytes, where it came from): --gpu-memory, else the suite's memory.gpu_memory, else NVML.

    From NVML, before a job starts, the budget is the GPU's free memory (other processes keep
    theirs); after a run (`nvml="total"`), the card's total.
    """
    if gpu_memory is not None:
        return parse_budget(gpu_memory, "--gpu-memory"), f"--gpu-memory {gpu_memory}"
    if suite is not None and suite.memory.gpu_memory is not None:
        return (parse_budget(suite.memory.gpu_memory, "suite memory.gpu_memory"),
                f"suite memory.gpu_memory {suite.memory.gpu_memory}")
    info = nvml_memory()
    if info:
        return info[nvml], (f"NVML: {info['name']}, {fmt_bytes(info['free'])} free of "
                            f"{fmt_bytes(info['total'])}")
    return None, "no budget: give --gpu-memory or set memory.gpu_memory (no GPU found through NVML)"
