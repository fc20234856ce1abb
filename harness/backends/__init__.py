"""Generation backends: one visible table from the name (`harness grade --backend`, `grading.backend`)
to the class, imported when chosen (transformers_backend imports torch).

What a backend can do is on its class (base.py `Capabilities`: remote, serves_many_checkpoints,
sleeps_during_training, measures_grading_memory, unavailable); the CLI and the pipeline read those,
never the name. Heavy libraries (vLLM, the openai client) are imported on first use, so a class's
capabilities are read without them. Add a backend: a module with a class that inherits
`Capabilities` and provides `Backend`'s methods and `from_spec`, and one line here.
"""
from __future__ import annotations

from harness.backends.base import Backend, Capabilities, Generation

BACKENDS = {
    "transformers": "harness.backends.transformers_backend:TransformersBackend",
    "vllm": "harness.backends.vllm_backend:VLLMBackend",
    "openai": "harness.backends.openai_backend:OpenAIBackend",
}


def backend_class(name: str) -> type[Capabilities]:
    import importlib

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["Backend", "Capabilities", "Generation", "BACKENDS", "backend_class"]
