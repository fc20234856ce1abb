"""JSON validity: does the output parse as JSON, and does it satisfy the task's JSON Schema?

Definitions (per sample value 1 or 0; corpus score = mean × 100):

- ``json_valid``: ``extract_json(output, accept, max_chars)`` returns a value (no error).
- ``json_schema_valid``: as ``json_valid`` AND the value validates against the task's
  schema with ``jsonschema.Draft202012Validator`` (``format`` is an annotation only, as in
  the 2020-12 default; no remote ``$ref`` is fetched). Produced only when a schema is given.

``extract_json`` (strict, never ``eval``):

1. ``None``/whitespace-only output → invalid, "empty output".
2. ``len(output) > max_chars`` (default 100 000) → invalid, "output too long".
3. Leading/trailing whitespace is ignored. Under ``accept: fenced`` an output that is, as
   a whole, one Markdown code fence opened by ``` or ```json (any case) has the fence
   removed; prose around the fence is not accepted.
4. The text is parsed with Python's ``json`` module in strict RFC 8259 mode: trailing
   commas, single quotes, comments, ``NaN``/``Infinity`` and unescaped control characters
   in strings are errors. Nesting too deep for the parser (``RecursionError``) and integers
   longer than Python's digit limit are errors, not crashes.
5. ``accept: object`` (default) and ``fenced`` require a JSON object (``{...}``); ``any``
   accepts any JSON value (object, array, string, number, true/false/null).

Options: ``schema`` (dict, loaded by the caller), ``accept`` (object | fenced | any),
``max_chars`` (int). ``details`` gives ``{"error": ...}`` per invalid sample (parse errors
as "Expecting ',' delimiter: line 1 column 9"; schema errors as
"$.age: 'x' is not of type 'integer'" with ``"path": "$.age"``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Optional, Sequence

from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.metric_options import JsonValidityOptions, validate_options

ACCEPT = ("object", "fenced", "any")
DEFAULT_MAX_CHARS = 100_000
MAX_MESSAGE = 300  # longest error message kept in details



def _clip(msg: str) -> str:
    return msg if len(msg) <= MAX_MESSAGE else msg[: MAX_MESSAGE - 3] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "number"


def _unfence(body: str) -> Optional[str]:
    """The content of a whole-output ``` / ```json fence, else None (no regex: linear time)."""
    if len(body) < 6 or not body.endswith("```"):
        return None
    inner = body[3:-3]
    if inner[:4].lower() == "json":
        inner = inner[4:]
    return inner  # whitespace around the content is ignored by json.loads


def extract_json(text: Optional[str], accept: str = "object", max_chars: int = DEFAULT_MAX_CHARS
                 ) -> tuple[Any, Optional[str]]:
    """(value, None) when `text` is acceptable JSON, else (None, error message).

    A parsed JSON ``null`` under ``accept: any`` is returned as ``(None, None)``: test the
    error, not the value.
    """
    if accept not in ACCEPT:
        raise ValueError(f"accept must be one of {', '.join(ACCEPT)}, not {accept!r}")
    if text is None or not text.strip():
        return None, "empty output"
    if len(text) > max_chars:
        return None, "output too long"
    body = text.strip()
    if body.startswith("```"):
        if accept != "fenced":
            return None, f"JSON inside a code fence (not accepted with accept: {accept})"
        inner = _unfence(body)
        if inner is None:
            return None, "unterminated or malformed code fence"
        body = inner
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        msg = e.msg
        if e.pos < len(body) and body[e.pos] in "]}" and body[: e.pos].rstrip().endswith(","):
            msg = "Illegal trailing comma before end of " + ("array" if body[e.pos] == "]" else "object")
        return None, f"{msg}: line {e.lineno} column {e.colno}"
    except RecursionError:
        return None, "nesting too deep"
    except ValueError as e:  # NaN/Infinity, over-long integers
        return None, _clip(str(e))
    if accept != "any" and not isinstance(value, dict):
        return None, f"not a JSON object (got {_type_name(value)})"
    return value, None


class JsonValidity(MeanMetric):
    """The suite's json_validity: json_valid, and json_schema_valid when the task has a schema."""

    options, results = JsonValidityOptions, ("json_valid", "json_schema_valid")
    rate = True

    def __init__(self, accept: str, max_chars: int):
        self.accept, self.max_chars = accept, max_chars

    @classmethod
    def from_options(cls, options: JsonValidityOptions) -> list[Metric]:
        metrics: list[Metric] = [JsonValid(options.accept, options.max_chars)]
        if options.schema_ is not None:
            metrics.append(JsonSchemaValid(options.accept, options.max_chars, options.schema_))
        return metrics

    def error(self, item: GradedItem) -> Optional[dict]:
        """None when the sample passes, else its details dict."""
        raise NotImplementedError

    def value(self, item: GradedItem) -> float:
        return 0.0 if self.error(item) else 1.0

    def details(self, items: Sequence[GradedItem]) -> list[dict]:
        return [self.error(it) or {} for it in items]


class JsonValid(JsonValidity):
    name = "json_valid"

    def error(self, item: GradedItem) -> Optional[dict]:
        _, err = extract_json(item.output, self.accept, self.max_chars)
        return {"error": err} if err else None

    def signature(self) -> str:
        return f"json_valid|accept:{self.accept}|max_chars:{self.max_chars}|parser:strict"


class JsonSchemaValid(JsonValidity):
    name = "json_schema_valid"

    def __init__(self, accept: str, max_chars: int, schema: dict):
        # jsonschema loads when a schema is graded, not with the catalogue (and so the suite)
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError, best_match

        self.best_match = best_match
        super().__init__(accept, max_chars)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            raise ValueError(f"json_validity: the schema is not a valid Draft 2020-12 schema: {e.message}") from e
        self.validator = Draft202012Validator(schema)
        canon = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self.schema_hash = hashlib.sha256(canon.encode("utf-8")).hexdigest()[:12]

    def error(self, item: GradedItem) -> Optional[dict]:
        value, err = extract_json(item.output, self.accept, self.max_chars)
        if err:
            return {"error": err}
        try:
            found = self.best_match(self.validator.iter_errors(value))
        except RecursionError:
            return {"error": "nesting too deep to validate"}
        if found is None:
            return None
        return {"error": _clip(f"{found.json_path}: {found.message}"), "path": found.json_path}

    def signature(self) -> str:
        return (f"json_schema_valid|draft:2020-12|schema:sha256:{self.schema_hash}"
                f"|accept:{self.accept}|max_chars:{self.max_chars}|parser:strict")


def json_validity(options: JsonValidityOptions | dict) -> list[Metric]:
    return JsonValidity.from_options(validate_options("json_validity", JsonValidityOptions, options))
