"""The openai backend against `transformers serve` vs the transformers backend, same model.

Starts `transformers serve` on 127.0.0.1 pinned to the model directory, generates greedily for
the same items through both backends, and prints the item-by-item agreement (text and finish
reason), the items/s of each measured in this run, and the first few differing items.

    ./run python benchmarks/served_vs_local.py [--model builtin:tiny-translator] [--n 100]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness.backends.openai_backend import OpenAIBackend
from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
from harness.builtin import resolve_model_path
from harness.suite import GenerationSpec, SyntheticSource
from harness.synthetic import generate_examples


def start_server(model_dir: str, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from transformers.cli.transformers import main; "
                             "sys.argv[0] = 'transformers'; sys.exit(main())", "serve", model_dir,
                             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server not ready; see {log}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="builtin:tiny-translator")
    ap.add_argument("--n", type=int, default=100, help="items per direction")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    path = resolve_model_path(args.model)
    items = [ex for d in ("en-fr", "fr-en") for ex in generate_examples(
        SyntheticSource(kind="translation", direction=d, split="val", n=args.n))]
    gen = GenerationSpec(max_new_tokens=args.max_new_tokens, batch_size=50)
    local = TransformersBackend(*load_model_and_tokenizer(path), device="cpu")
    t0 = time.perf_counter()
    a = local.generate(items, gen)
    t_local = time.perf_counter() - t0
    proc, url = start_server(path, Path(tempfile.mkdtemp()) / "server.log")
    try:
        served = OpenAIBackend(url, path, concurrency=args.concurrency)
        served.generate(items[:1], gen)            # load + first-request warm-up, not timed
        t0 = time.perf_counter()
        b = served.generate(items, gen)
        t_served = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait()
    same_text = sum(x.text == y.text for x, y in zip(a, b))
    same_finish = sum(x.finish_reason == y.finish_reason for x, y in zip(a, b))
    print(f"{len(items)} items, greedy, max_new_tokens {args.max_new_tokens}")
    print(f"agreement: text {same_text}/{len(items)}, finish reason {same_finish}/{len(items)}")
    print(f"transformers backend: {len(items) / t_local:.2f} items/s (batch {gen.batch_size})")
    print(f"openai backend via transformers serve: {len(items) / t_served:.2f} items/s "
          f"(concurrency {args.concurrency}); ratio served/local {t_local / t_served:.2f}")
    for ex, x, y in [(ex, x, y) for ex, x, y in zip(items, a, b) if x.text != y.text][:5]:
        print(f"differs {ex.id}: local {x.text!r} ({x.finish_reason}) / served {y.text!r} ({y.finish_reason})")


if __name__ == "__main__":
    main()
