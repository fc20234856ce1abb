"""Measurement probes: exact bytes of one training step (saved tensors, states) and GPU peaks."""
from __future__ import annotations

from typing import Optional

from harness.memory.budget import nvml_used

# Grading resets torch's peak counters to measure its own peak (harness/memory/grading_phase.py);
# the run's peaks from before each reset are kept here so that `cuda_peaks` still covers the run.
CUDA_PEAKS_BEFORE_RESET = {"allocated": 0, "reserved": 0}


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
        peaks = {"cuda_peak_allocated": max(int(torch.cuda.max_memory_allocated()), CUDA_PEAKS_BEFORE_RESET["allocated"]),
                 "cuda_peak_reserved": max(int(torch.cuda.max_memory_reserved()), CUDA_PEAKS_BEFORE_RESET["reserved"])}
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
