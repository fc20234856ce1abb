"""Generation through an OpenAI-compatible chat endpoint (`vllm serve`, TGI, llama.cpp, ...).

Requests run concurrently (up to the task's generation batch size). The endpoint returns
text, not token likelihoods of a given reference, so perplexity is skipped and says so.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from harness.backends.base import Generation
from harness.data import Example
from harness.errors import UserError
from harness.suite import GenerationSpec, ModelSpec


class OpenAIBackend:
    name = "openai"
    parameters = None

    def __init__(self, endpoint: str, model: str, api_key: Optional[str] = None, timeout: float = 120.0):
        self.url = endpoint.rstrip("/") + ("" if endpoint.rstrip("/").endswith("/v1") else "/v1") + "/chat/completions"
        self.model, self.timeout = model, timeout
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "")

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: str, endpoint: Optional[str] = None) -> "OpenAIBackend":
        endpoint = endpoint or os.environ.get("OPENAI_BASE_URL")
        if not endpoint:
            raise UserError("backend openai needs --endpoint URL (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000")
        return cls(endpoint, spec.path)

    def _one(self, ex: Example, gen: GenerationSpec) -> Generation:
        body = {"model": self.model, "messages": ex.prompt_messages, "max_tokens": gen.max_new_tokens,
                "temperature": gen.temperature if gen.do_sample else 0.0, "top_p": gen.top_p}
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read())
        except urllib.error.URLError as e:
            raise UserError(f"endpoint {self.url}: request failed ({e}); is the server running?") from None
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Generation(text=(choice["message"].get("content") or "").strip(),
                          finish_reason="length" if choice.get("finish_reason") == "length" else "eos",
                          output_tokens=usage.get("completion_tokens", 0), prompt_tokens=usage.get("prompt_tokens", 0))

    def generate(self, examples: Sequence[Example], gen: GenerationSpec) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=max(1, min(gen.batch_size, 32))) as pool:
            return list(pool.map(lambda ex: self._one(ex, gen), examples))

    def reference_nll(self, examples, batch_size):
        return None
