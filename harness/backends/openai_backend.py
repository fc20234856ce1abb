"""Generation through an OpenAI-compatible chat endpoint (`vllm serve`, `transformers serve`, TGI, ...).

Requests go out asynchronously through the `openai` client (`pip install 'harness[openai]'`),
at most `concurrency` at a time. The client owns timeouts and retries: a 408/409/429/5xx answer
or a dropped connection is retried up to `max_retries` times with exponential backoff (0.5 s,
1 s, 2 s, ... capped at 8 s, minus up to 25 % jitter; a server's Retry-After wins). What cannot
be fixed by waiting (server down, unknown model, a 4xx) stops grading with one line.

The endpoint returns text, not token likelihoods of a given reference, so perplexity is skipped
and says so. The server applies its own copy of the chat template and its own stop tokens:
docs/scale.md explains when its greedy outputs can differ from the transformers backend's.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from harness.backends.base import Capabilities, Generation
from harness.errors import UserError
from harness.messages import Example
from harness.suite import GenerationSpec, ModelSpec

DEFAULT_CONCURRENCY = 16


class EndpointError(UserError):
    """The endpoint cannot answer: down, wrong model name, or it keeps failing after retries."""


def base_url(endpoint: str) -> str:
    """`http://host:port`, `.../v1` or `.../v1/` → `http://host:port/v1` (what the client expects)."""
    url = endpoint.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _client_module():
    try:
        import openai
    except ImportError:
        raise UserError("backend openai needs the openai client: pip install 'harness[openai]'") from None
    return openai


class OpenAIBackend(Capabilities):
    name = "openai"
    parameters = None
    remote = True

    def __init__(self, endpoint: str, model: str, api_key: Optional[str] = None, timeout: float = 120.0,
                 max_retries: int = 4, concurrency: int = DEFAULT_CONCURRENCY,
                 model_aliases: Sequence[str] = ()):
        self.url = base_url(endpoint)
        self.model, self.timeout, self.max_retries = model, timeout, max_retries
        self.concurrency = max(1, concurrency)
        # other names the same weights may be served under (a builtin's resolved directory ...)
        self.model_aliases = [a for a in model_aliases if a and a != model]
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"   # local servers ignore it
        self._checked = False

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: str, endpoint: Optional[str] = None,
                  concurrency: int = DEFAULT_CONCURRENCY) -> "OpenAIBackend":
        endpoint = endpoint or os.environ.get("OPENAI_BASE_URL")
        if not endpoint:
            raise UserError("backend openai needs --endpoint URL (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000")
        if spec.adapter:   # vLLM serves a LoRA adapter under its --lora-modules NAME=PATH name
            return cls(endpoint, Path(spec.adapter).name, concurrency=concurrency, model_aliases=[spec.adapter])
        return cls(endpoint, spec.path, concurrency=concurrency, model_aliases=[path])

    # ---------------------------------------------------------------- client side
    def _client(self):
        openai = _client_module()
        return openai.AsyncOpenAI(base_url=self.url, api_key=self.api_key, timeout=self.timeout,
                                  max_retries=self.max_retries)

    async def _one(self, client, sem: asyncio.Semaphore, ex: Example, gen: GenerationSpec) -> Generation:
        openai = _client_module()
        async with sem:
            try:
                resp = await client.chat.completions.create(
                    model=self.model, messages=ex.prompt_messages, max_tokens=gen.max_new_tokens,
                    temperature=gen.temperature if gen.do_sample else 0.0, top_p=gen.top_p if gen.do_sample else 1.0,
                    **({"seed": gen.seed} if gen.do_sample and gen.seed is not None else {}))
            except openai.APITimeoutError:
                raise EndpointError(f"endpoint {self.url}: item {ex.id} timed out after {self.timeout:.0f}s "
                                    f"and {self.max_retries} retries") from None
            except openai.APIConnectionError:
                raise EndpointError(f"endpoint {self.url}: connection lost at item {ex.id} "
                                    f"(after {self.max_retries} retries); is the server running?") from None
            except openai.APIStatusError as e:
                raise EndpointError(f"endpoint {self.url}: item {ex.id}: HTTP {e.status_code}"
                                    f"{' after ' + str(self.max_retries) + ' retries' if _retried(e) else ''}: "
                                    f"{_detail(e)}") from None
        choice = resp.choices[0]
        usage = resp.usage
        return Generation(text=(choice.message.content or "").strip(),
                          finish_reason="length" if choice.finish_reason == "length" else "eos",
                          output_tokens=usage.completion_tokens if usage else 0,
                          prompt_tokens=usage.prompt_tokens if usage else 0)

    async def _generate(self, examples: Sequence[Example], gen: GenerationSpec,
                        on_items: Optional[Callable[[int], None]]) -> list[Generation]:
        async def one(client, sem, ex: Example) -> Generation:
            answer = await self._one(client, sem, ex, gen)
            if on_items:
                on_items(1)
            return answer

        async with self._client() as client:
            sem = asyncio.Semaphore(self.concurrency)
            return list(await asyncio.gather(*(one(client, sem, ex) for ex in examples)))

    def generate(self, examples: Sequence[Example], gen: GenerationSpec,
                 on_items: Optional[Callable[[int], None]] = None) -> list[Generation]:
        if not self._checked:   # fail before the first item when the server is down or the name wrong
            self.model = served_model(self.url, self.model, self.model_aliases, self.api_key, self.timeout)
            self._checked = True
        return asyncio.run(self._generate(examples, gen, on_items))

    def reference_nll(self, examples, batch_size):
        return None


def served_model(url: str, model: str, aliases: Sequence[str] = (), api_key: str = "EMPTY",
                 timeout: float = 30.0) -> str:
    """The name the endpoint serves `model` under: itself or one of its aliases (GET /v1/models).

    Down, or serving neither name: one clear error. A server without /v1/models (404) or one
    listing nothing is trusted with `model` as given; its first answer will tell.
    """
    openai = _client_module()
    try:
        with openai.OpenAI(base_url=url, api_key=api_key, timeout=timeout, max_retries=1) as client:
            served = [m.id for m in client.models.list()]
    except openai.APIConnectionError:
        raise EndpointError(f"endpoint {url} is not reachable (connection refused or timed out); "
                            f"is the server running?") from None
    except openai.APIStatusError as e:
        if e.status_code == 404:
            return model
        raise EndpointError(f"endpoint {url}/models answered HTTP {e.status_code}: {_detail(e)}") from None
    if not served or model in served:
        return model
    alias = next((a for a in aliases if a in served), None)
    if alias is None:
        raise EndpointError(f"endpoint {url} does not serve model {model!r}; it serves "
                            f"{', '.join(repr(s) for s in served)}: pass that name as --model")
    return alias


def _retried(e) -> bool:
    return e.status_code in (408, 409, 429) or e.status_code >= 500


def _detail(e) -> str:
    """The server's own one-line reason (`detail` from FastAPI, `error.message` from vLLM/OpenAI)."""
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        msg = body.get("detail") or body.get("message") or (body.get("error") or {}).get("message")
        if msg:
            return " ".join(str(msg).split())[:300]
    return " ".join(str(e).split())[:300]
