"""Generation backends, found by name. Heavy ones import their library on first use."""
from __future__ import annotations

from harness.backends.base import Backend, Generation

BACKENDS = {
    "transformers": "harness.backends.transformers_backend:TransformersBackend",
    "vllm": "harness.backends.vllm_backend:VLLMBackend",
    "openai": "harness.backends.openai_backend:OpenAIBackend",
}


def backend_class(name: str):
    import importlib

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["Backend", "Generation", "BACKENDS", "backend_class"]
