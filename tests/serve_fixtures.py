"""A real OpenAI-compatible server for tests: `transformers serve` on 127.0.0.1, pinned to one
local model directory, started as a subprocess and waited for with a bounded timeout."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

READY_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_command() -> list[str]:
    try:
        import fastapi, uvicorn  # noqa: F401,E401
        from transformers.cli.transformers import main  # noqa: F401  (the `transformers` console script)
    except ImportError:
        pytest.skip("transformers serve needs fastapi and uvicorn: pip install 'harness[serve]'")
    # this interpreter, not whichever `transformers` script is first on PATH
    return [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; "
                                  "sys.argv[0] = 'transformers'; sys.exit(main())", "serve"]


@contextmanager
def transformers_server(model_dir: Path, log_path: Path):
    """Yield the base URL (http://127.0.0.1:PORT) of a server answering for `model_dir`."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*_serve_command(), str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu", "--dtype", "float32", "--log-level", "warning"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready after {READY_TIMEOUT_S}s: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
