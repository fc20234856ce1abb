"""The openai backend against real servers on 127.0.0.1: `transformers serve` on the tiny model
(greedy outputs compared item by item with the transformers backend), and a small scripted HTTP
server that answers 429/500 to check retries, backoff limits and bounded concurrency."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.backends.openai_backend import EndpointError, OpenAIBackend, base_url
from harness.messages import Example
from harness.suite import GenerationSpec
from tests.serve_fixtures import free_port, transformers_server

pytest.importorskip("openai", reason="backend openai needs the openai client: pip install 'harness[openai]'")


def _examples(n: int):
    from harness.messages import Example
    from harness.suite import SyntheticSource
    from harness.synthetic import generate_rows   # the suites' own synthetic translation rows

    return [Example(**r) for r in generate_rows(SyntheticSource(kind="translation", direction="en-fr", split="val", n=n))]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with transformers_server(tiny_model_dir, tmp_path_factory.mktemp("serve") / "server.log") as url:
        yield url


# ---------------------------------------------------------------- the real server
def test_greedy_outputs_agree_with_transformers_backend(server, tiny_model_dir, tiny_model_and_tokenizer):
    from harness.backends.transformers_backend import TransformersBackend

    exs = _examples(12)
    gen = GenerationSpec(max_new_tokens=24, batch_size=12)
    remote = OpenAIBackend(server, str(tiny_model_dir), concurrency=4).generate(exs, gen)
    model, tok = tiny_model_and_tokenizer
    local = TransformersBackend(model, tok, device="cpu").generate(exs, gen)
    assert [r.text for r in remote] == [l.text for l in local]
    assert [r.finish_reason for r in remote] == [l.finish_reason for l in local]
    assert all(r.prompt_tokens == l.prompt_tokens for r, l in zip(remote, local))


def test_wrong_model_name_is_one_clear_error(server, tiny_model_dir):
    with pytest.raises(EndpointError, match=r"does not serve model 'no-such-model'.*" + str(tiny_model_dir.name)):
        OpenAIBackend(server, "no-such-model").generate(_examples(1), GenerationSpec(max_new_tokens=4))


def test_alias_resolves_builtin_style_names(server, tiny_model_dir):
    backend = OpenAIBackend(server, "builtin:tiny-translator", model_aliases=[str(tiny_model_dir)])
    out = backend.generate(_examples(2), GenerationSpec(max_new_tokens=8))
    assert backend.model == str(tiny_model_dir) and len(out) == 2 and all(o.output_tokens > 0 for o in out)


def test_grade_cli_through_the_server(server, tiny_model_dir, tmp_path):
    import subprocess
    import sys

    suite = tmp_path / "s.yaml"
    suite.write_text(f"""
name: served
models: [{{name: tiny, path: {tiny_model_dir}}}]
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 6}}}}
    metrics: [bleu, perplexity]
    generation: {{max_new_tokens: 16}}
bootstrap: {{samples: 20}}
""")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "-q", "grade", str(suite), "--backend", "openai",
                           "--endpoint", server + "/v1/", "--run-dir", str(tmp_path / "run"), "--no-report"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    metrics = res["models"][0]["epochs"][0]["tasks"]["en-fr"]["metrics"]
    assert metrics["bleu"]["score"] is not None
    assert metrics["perplexity"]["score"] is None and "likelihood" in metrics["perplexity"]["skipped"]


def test_server_down_is_one_clear_line(tmp_path):
    import subprocess
    import sys

    suite = tmp_path / "s.yaml"
    suite.write_text("""
name: down
models: [{name: m, path: some-model}]
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 2}}
    metrics: [bleu]
""")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "grade", str(suite), "--backend", "openai",
                           "--endpoint", f"http://127.0.0.1:{free_port()}", "--run-dir", str(tmp_path / "run"),
                           "--no-report"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "is not reachable" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- a scripted server: 429/500, concurrency
class Scripted:
    """Answers chat completions with the next status of `statuses` (then 200), after `delay` s."""

    def __init__(self, statuses=(), delay=0.0, reply=None):
        self.statuses, self.delay = list(statuses), delay
        self.reply = reply or (lambda prompt: prompt[::-1])   # the prompt reversed: checks order
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.posts = self.inflight = self.max_inflight = 0

    def handler(self):
        script = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with script.lock:
                    script.posts += 1
                    script.requests.append(req)
                    status = script.statuses.pop(0) if script.statuses else 200
                    script.inflight += 1
                    script.max_inflight = max(script.max_inflight, script.inflight)
                time.sleep(script.delay)
                with script.lock:
                    script.inflight -= 1
                if status != 200:
                    return self._send(status, {"error": {"message": f"scripted {status}"}})
                text = script.reply(req["messages"][-1]["content"])
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

        return Handler


@pytest.fixture
def scripted():
    servers = []

    def start(**kw):
        script = Scripted(**kw)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), script.handler())
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return script, f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _prompts(n):
    return [Example(id=str(i), messages=[{"role": "user", "content": f"prompt {i}"},
                                         {"role": "assistant", "content": "-"}]) for i in range(n)]


def test_retries_429_and_500_then_succeeds(scripted):
    script, url = scripted(statuses=[429, 500])
    out = OpenAIBackend(url, "m", max_retries=2, concurrency=1).generate(_prompts(2), GenerationSpec())
    assert [o.text for o in out] == ["0 tpmorp", "1 tpmorp"]
    assert script.posts == 4          # item 0: 429, 500, ok; item 1: ok


def test_persistent_500_gives_up_after_max_retries(scripted):
    script, url = scripted(statuses=[500] * 10)
    with pytest.raises(EndpointError, match=r"HTTP 500 after 2 retries: scripted 500"):
        OpenAIBackend(url, "m", max_retries=2, concurrency=1).generate(_prompts(1), GenerationSpec())
    assert script.posts == 3


def test_client_errors_are_not_retried(scripted):
    script, url = scripted(statuses=[400])
    with pytest.raises(EndpointError, match=r"HTTP 400: scripted 400"):
        OpenAIBackend(url, "m", max_retries=3).generate(_prompts(1), GenerationSpec())
    assert script.posts == 1


def test_concurrency_is_bounded_and_order_kept(scripted):
    script, url = scripted(delay=0.3)
    out = OpenAIBackend(url, "m", concurrency=3).generate(_prompts(9), GenerationSpec())
    assert [o.text for o in out] == [f"{i} tpmorp" for i in range(9)]
    assert 2 <= script.max_inflight <= 3


def test_timeout_is_one_clear_error(scripted):
    script, url = scripted(delay=1.5)
    with pytest.raises(EndpointError, match="timed out after"):
        OpenAIBackend(url, "m", timeout=0.3, max_retries=0).generate(_prompts(1), GenerationSpec())


@pytest.mark.parametrize("given", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"])
def test_base_url_accepts_either_form(given):
    assert base_url(given) == "http://h:1/v1"


def test_an_output_with_a_lone_surrogate_is_graded_counted_and_flagged(scripted, tmp_path, capsys):
    """JSON can carry "\\ud800", UTF-8 cannot: the output is graded with U+FFFD, counted, warned about."""
    from harness.cli import main

    script, url = scripted(reply=lambda prompt: "Le chat \ud800 dort." if "cat" in prompt else "Le chien mange.")
    (tmp_path / "val.jsonl").write_text(
        '{"id": "a", "prompt": "The cat sleeps.", "completion": "Le chat dort."}\n'
        '{"id": "b", "prompt": "The dog eats.", "completion": "Le chien mange."}\n')
    (tmp_path / "s.yaml").write_text("name: s\nmodels: [{path: m}]\ntasks:\n  - name: en-fr\n"
                                     "    data: {path: val.jsonl}\n    metrics: [bleu, chrf]\n"
                                     "bootstrap: {samples: 10}\n")
    code = main(["grade", str(tmp_path / "s.yaml"), "--backend", "openai", "--endpoint", url,
                 "--run-dir", str(tmp_path / "run"), "--no-report"])
    out, err = capsys.readouterr()
    assert code == 0, err
    task = json.loads((tmp_path / "run" / "results.json").read_text())["models"][0]["epochs"][0]["tasks"]["en-fr"]
    assert task["unencodable_outputs"] == 1
    assert task["metrics"]["bleu"]["score"] is not None
    rows = [json.loads(line) for line in (tmp_path / "run" / task["samples"]).read_text().splitlines()]
    assert [r["output"] for r in rows] == ["Le chat \ufffd dort.", "Le chien mange."]
    assert "1 output(s) held a lone surrogate" in out


def test_sampling_sends_the_seed_and_greedy_sends_none(scripted):
    script, url = scripted()
    backend = OpenAIBackend(url, "m", concurrency=1)
    backend.generate(_prompts(1), GenerationSpec(do_sample=True, temperature=0.7, seed=11))
    backend.generate(_prompts(1), GenerationSpec())
    assert script.requests[0]["seed"] == 11 and script.requests[0]["temperature"] == 0.7
    assert "seed" not in script.requests[1]
