"""The trainer callback: measures a real Trainer run (first step exactly, peaks on a GPU).

MemoryCallback subclasses transformers.TrainerCallback; it is built on first use so that importing
harness.memory (for the preflight) does not import transformers.
"""
from __future__ import annotations

from typing import Optional

from harness.memory.budget import nvml_used
from harness.memory.probes import MemoryProbe


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
