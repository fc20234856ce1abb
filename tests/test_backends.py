"""The backend table (harness/backends/__init__.py BACKENDS) and the capabilities on its classes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends import BACKENDS, Capabilities, backend_class
from harness.cli import _parser

REPO = Path(__file__).resolve().parents[1]


def test_the_cli_offers_the_tables_backends(monkeypatch, capsys):
    def backend(*args: str) -> str:
        return _parser().parse_args(["grade", "s.yaml", "--backend", *args]).backend

    assert [backend(name) for name in ("transformers", "vllm", "openai")] == ["transformers", "vllm", "openai"]
    with pytest.raises(SystemExit):
        backend("echo")
    assert "invalid choice: 'echo'" in capsys.readouterr().err
    monkeypatch.setitem(BACKENDS, "echo", f"{__name__}:Echo")
    assert backend("echo") == "echo" and backend_class("echo") is Echo
    with pytest.raises(ValueError, match="unknown backend 'ecco'; choose one of transformers, vllm, openai, echo"):
        backend_class("ecco")


class Echo(Capabilities):
    """A remote backend as a new one would declare itself: one attribute, no name anywhere else."""

    name, remote = "echo", True


def test_capabilities_say_what_each_backend_does():
    got = {name: (cls.remote, cls.serves_many_checkpoints, cls.sleeps_during_training, cls.measures_grading_memory)
           for name in BACKENDS for cls in [backend_class(name)]}
    assert got == {"transformers": (False, False, False, True), "vllm": (False, True, True, False),
                   "openai": (True, False, False, False)}


def test_capabilities_are_read_without_the_backends_libraries():
    """vLLM and the openai client load when a backend starts, not when the CLI reads what it can do."""
    script = ("import sys; from harness.backends import backend_class; "
              "print('RESULT', backend_class('vllm').serves_many_checkpoints, backend_class('openai').remote, "
              "'vllm' in sys.modules, 'openai' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120).stdout
    assert out.split("RESULT")[-1].split() == ["True", "True", "False", "False", "False"], out
