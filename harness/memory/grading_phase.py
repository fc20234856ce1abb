"""The grading phase inside a training job: inference mode, the training's autocast, its own peak.

    with grading_phase(device, precision) as probe:
        record = grade_epoch(probe.wrap(backend), ...)
    record["grading_memory"] = probe.record(estimate)

* no autograd (`torch.inference_mode`), the training's autocast (bf16/fp16 mixed precision), and
  what grading allocated freed before training resumes (on CUDA: `gc.collect`, `torch.cuda.empty_cache`);
* its peak, per term (generation, scoring), on top of what was allocated when it began (every
  epoch on CUDA; on CPU, where counting costs time, the first graded epoch with --measure-memory:
  `measured_epoch`):
  - CUDA: `torch.cuda.reset_peak_memory_stats()` at the start of each term, then
    `max_memory_allocated() - memory_allocated()` at its start; NVML's used memory after it
    (the run's own peaks before the reset are carried, see probes.CUDA_PEAKS_BEFORE_RESET);
  - CPU: every tensor an op returns is seen by a TorchDispatchMode (composite ops with
    intermediates decomposed into the ops that allocate; those that allocate only their outputs
    run whole, `_WHOLE_OPS`); each new storage (not one of the op's inputs') adds its bytes to a
    live count until Python frees it (a weak reference's callback), and the term's peak is the
    highest live count. It counts tensor storages only (not the allocator's or the libraries'
    own scratch memory): the same things the estimate counts. Counting costs about twice the
    batch's own time, so grading counts only each term's representative batch (the most padded
    tokens over the whole grading, the batch the estimate describes: `plan_measurement`,
    harness.backends.base.MEASURE_BATCH), and the other batches run uncounted: the figure is the
    same, the cost one batch's.
"""
from __future__ import annotations

import contextlib
import time
import weakref
from typing import Optional

from harness.backends.base import MEASURE_BATCH
from harness.memory.budget import nvml_used
from harness.memory.probes import CUDA_PEAKS_BEFORE_RESET

TERMS = ("generation", "scoring")


# Composite ops run whole, not decomposed: their C++ kernels allocate nothing but their outputs.
# Decomposing them in Python (linear → matmul → mm, `to` → `_to_copy`) was over half of the
# counting's cost, and gave the same peaks. linear and matmul only while their inputs are
# contiguous: a strided input may be copied on the way (matmul's folding or its batched path),
# which their decomposition shows.
_WHOLE_OPS = ("to", "linear", "matmul", "reshape", "contiguous", "flatten", "type_as", "view_as", "expand_as")
_WHOLE_IF_CONTIGUOUS = ("linear", "matmul")
DECOMPOSE, COUNT, NOTHING_NEW = range(3)


class _LiveTensorBytes:
    """Bytes of the tensor storages created inside the mode that are still alive, and their peak."""

    def __init__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self
        self.live = self.peak = 0
        self._refs: dict[int, object] = {}   # data_ptr → weakref to the storage counted
        kinds: dict = {}                     # op → what its outputs are (_kind), decided once per op
        tensor = torch.Tensor
        whole = {getattr(torch.ops.aten, name) for name in _WHOLE_OPS}
        if_contiguous = {getattr(torch.ops.aten, name) for name in _WHOLE_IF_CONTIGUOUS}

        def ptrs(args) -> set:
            """Storages of an op's tensor arguments (tensors and lists of tensors): its outputs
            that share one are not new."""
            out = set()
            for a in args:
                if isinstance(a, tensor):
                    out.add(counter._ptr(a))
                elif isinstance(a, (list, tuple)):
                    out.update(counter._ptr(x) for x in a if isinstance(x, tensor))
            return out

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                kind = kinds.get(func)
                if kind is None:
                    kind = kinds[func] = _kind(torch, func, whole)
                # Under inference mode composite ops (cross_entropy, softmax...) arrive whole: decompose
                # them (as torch's FlopCounterMode does) so that their intermediates are counted too.
                if kind == DECOMPOSE or (func.overloadpacket in if_contiguous and any(
                        isinstance(a, tensor) and not a.is_contiguous() for a in args)):
                    with self:
                        out = func.decompose(*args, **kwargs)
                    if out is not NotImplemented:
                        return out
                    kind = kinds[func] = _kind(torch, func, whole, decomposes=False)
                if kind == NOTHING_NEW:
                    return func(*args, **kwargs)
                out = func(*args, **kwargs)
                inputs = None
                for t in (out,) if isinstance(out, tensor) else out if isinstance(out, (list, tuple)) else ():
                    if isinstance(t, tensor):
                        if inputs is None:   # an output sharing an input's storage (to, reshape, _unsafe_view) is not new
                            inputs = ptrs(args) | ptrs(kwargs.values())
                        counter._count(t, inputs)
                return out

        self.mode = Mode()

    @staticmethod
    def _ptr(t) -> int:
        try:
            return t.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):
            return 0

    def _count(self, t, inputs) -> None:
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return
        ptr = st.data_ptr()
        if ptr and ptr not in self._refs and ptr not in inputs:
            n = st.nbytes()
            self._refs[ptr] = weakref.ref(st, lambda _ref, ptr=ptr, n=n: self._free(ptr, n))
            self.live += n
            if self.live > self.peak:
                self.peak = self.live

    def _free(self, ptr: int, n: int) -> None:
        self._refs.pop(ptr, None)
        self.live -= n


def _kind(torch, func, whole: set, decomposes: bool = True) -> int:
    """What an op's outputs are, read from its schema once: DECOMPOSE (a composite op with
    intermediates worth seeing), NOTHING_NEW (no tensor returned; in-place and out= ops; the view
    ops with kernels of their own: view, slice, transpose...), else COUNT (outputs compared with the
    inputs' storages: `to`, `reshape` or `contiguous` may return an input, `_unsafe_view` a view)."""
    composite = torch._C._dispatch_has_kernel_for_dispatch_key(func.name(),
                                                               torch._C.DispatchKey.CompositeImplicitAutograd)
    if decomposes and composite and func.overloadpacket not in whole:
        return DECOMPOSE
    returns = func._schema.returns
    if not any("Tensor" in str(r.type) for r in returns) \
            or any(r.alias_info is not None and r.alias_info.is_write for r in returns) \
            or (func.is_view and not composite):
        return NOTHING_NEW
    return COUNT


class GradingProbe:
    """Per-term peaks of one grading phase (bytes above what was allocated when the term began).

    On CPU, `one_batch` (how grading inside a job measures): only the representative batch of each
    term is counted (harness.backends.base.representative_batch: the most padded tokens, what the
    estimate describes; across tasks, only a batch larger than the term's last measured one), the
    other batches run at full speed. Without it (benchmarks, direct use) the whole term is counted."""

    def __init__(self, device: str, measure: bool = True, one_batch: bool = False):
        self.device = device
        self.measure = measure
        self.one_batch = one_batch and device == "cpu"
        self.peaks: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.batch_tokens: dict[str, int] = {}   # one_batch: the padded tokens of each term's measured batch
        self.planned: dict[str, int] = {}        # one_batch: the grading's largest batch per term, when known
        self.nvml_used: Optional[int] = None
        self._cpu = _LiveTensorBytes() if (device == "cpu" and measure) else None

    @property
    def counts_one_batch(self) -> bool:
        """Counting tensors (CPU, measuring) the representative batch of each term only."""
        return self.one_batch and self._cpu is not None

    @contextlib.contextmanager
    def term(self, name: str):
        import torch

        t0 = time.perf_counter()
        if not self.measure:
            yield
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            return
        if self.counts_one_batch:
            token = MEASURE_BATCH.set(lambda size: self._one_batch(name, size))
            try:
                yield
            finally:
                MEASURE_BATCH.reset(token)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            return
        if self.device == "cuda":
            torch.cuda.synchronize()
            CUDA_PEAKS_BEFORE_RESET["allocated"] = max(CUDA_PEAKS_BEFORE_RESET["allocated"],
                                                       int(torch.cuda.max_memory_allocated()))
            CUDA_PEAKS_BEFORE_RESET["reserved"] = max(CUDA_PEAKS_BEFORE_RESET["reserved"],
                                                      int(torch.cuda.max_memory_reserved()))
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            yield
            torch.cuda.synchronize()
            peak = int(torch.cuda.max_memory_allocated()) - base
            used = nvml_used()
            if used is not None:
                self.nvml_used = max(used, self.nvml_used or 0)
        elif self._cpu is not None:
            with self._counted(name):
                yield
            peak = self.peaks[name]
        else:
            yield
            peak = 0
        self.peaks[name] = max(self.peaks.get(name, 0), int(peak))
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    @contextlib.contextmanager
    def _counted(self, name: str):
        """Count tensor storages (CPU) inside: the term's peak is the highest live count above its start."""
        counter = self._cpu
        base = counter.live
        counter.peak = counter.live
        with counter.mode:
            yield
        self.peaks[name] = max(self.peaks.get(name, 0), int(counter.peak - base))

    def _one_batch(self, name: str, size: int):
        """The representative batch of a term: counted unless a batch as large was measured already,
        or a larger one is still to come in this grading (`planned`, from every task's batches)."""
        if size <= self.batch_tokens.get(name, -1) or size < self.planned.get(name, 0):
            return contextlib.nullcontext()
        self.batch_tokens[name] = size
        self.peaks.pop(name, None)   # the larger batch's peak replaces the smaller one's
        return self._counted(name)

    def wrap(self, backend):
        """The backend with its generate / reference_nll measured as the generation / scoring terms."""
        return _MeasuredBackend(backend, self)

    def record(self, estimate: Optional[dict] = None) -> dict:
        """results.json epochs[i].grading_memory: measured per term next to the estimate's."""
        est = {k: (estimate or {}).get(k) for k in TERMS}
        measured = {k: self.peaks.get(k) for k in TERMS}
        out = {"device": self.device, "batch_size": (estimate or {}).get("batch"),
               "batch_size_auto": (estimate or {}).get("auto"),
               "estimate": est, "measured": measured,
               "ratio": {k: (round(measured[k] / est[k], 4) if measured[k] is not None and est[k] else None)
                         for k in TERMS},
               "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
               "how": self._how()}
        if self.batch_tokens:
            out["measured_batch_tokens"] = dict(self.batch_tokens)
        if self.nvml_used is not None:
            out["nvml_used"] = self.nvml_used
        return out


    def _how(self) -> str:
        if not self.measure or self.device not in HOW:
            return NOT_MEASURED
        return HOW["cpu"] + ONE_BATCH if self.one_batch else HOW[self.device]


HOW = {"cuda": "torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus memory_allocated at the "
               "start of the term",
       "cpu": "peak bytes of live tensor storages created during the term (TorchDispatchMode + weak references)"}


ONE_BATCH = (", in each term's representative batch only (the grading's most padded tokens: rows × longest row, "
             "as the estimate assumes; measured_batch_tokens), the other batches run uncounted")

NOT_MEASURED = ("not measured: on CPU the grading phase is measured only with --measure-memory, and then at the "
                "first graded epoch (every epoch grades the same items at the same batch; counting tensors "
                "slows CPU grading)")


class _MeasuredBackend:
    def __init__(self, backend, probe: GradingProbe):
        self._backend, self._probe = backend, probe

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def plan_measurement(self, work) -> None:
        """`work`: (examples, generation spec at its batch size, generates?, scores?) per task about
        to be graded. On CPU the probe then counts only the grading's largest batch of each term
        (several tasks would otherwise each count a representative batch larger than the last);
        a backend that cannot say its batches (`batch_tokens`) keeps the per-task rule."""
        sizes = getattr(self._backend, "batch_tokens", None)
        if sizes is None or not self._probe.counts_one_batch:
            return
        generation = [sizes(examples, gen, "generation") for examples, gen, generates, _ in work if generates]
        scoring = [sizes(examples, gen, "scoring") for examples, gen, _, scores in work if scores]
        for term, planned in (("generation", generation), ("scoring", scoring)):
            if planned:
                self._probe.planned[term] = max(planned)

    def generate(self, examples, gen, on_items=None):
        with self._probe.term("generation"):
            return self._backend.generate(examples, gen, on_items)

    def reference_nll(self, examples, batch_size, *args, **kwargs):
        with self._probe.term("scoring"):
            return self._backend.reference_nll(examples, batch_size, *args, **kwargs)


def measured_epoch(device: str, epoch: int, asked: bool = False) -> bool:
    """Whether an epoch's grading is measured: every epoch on CUDA (free); on CPU, where counting
    tensors costs about twice the counted batch's time (7-12% of a grading's generation), only
    when asked (`--measure-memory`), and then the first graded epoch (the same batches every epoch)."""
    return device == "cuda" or (asked and epoch == 0)


@contextlib.contextmanager
def grading_phase(device: str, precision: Optional[str] = None, measure: bool = True, one_batch: bool = True):
    """Inference mode, the training's autocast, a GradingProbe; what grading allocated freed after.
    On CPU the probe counts each term's representative batch only (`one_batch`: counting tensors
    costs time there; see GradingProbe)."""
    import gc

    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision or "")
    autocast = torch.autocast(device, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    probe = GradingProbe(device, measure, one_batch)
    try:
        with torch.inference_mode(), autocast:
            yield probe
    finally:
        if device == "cuda":   # GPU memory handed back to training; on CPU a full collection costs
            gc.collect()       # ~0.8 s (every object of the job traversed) and frees nothing training needs
            torch.cuda.empty_cache()
