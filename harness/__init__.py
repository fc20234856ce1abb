"""harness: evaluation and diagnostics for fine-tuning small language models."""
__version__ = "0.1.0"
