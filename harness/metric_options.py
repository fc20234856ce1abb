"""Metric options as one typed model per metric, validated when the suite loads.

A metric class names its model (`options = RougeOptions`); the catalogue (harness/metrics/__init__.py
`METRICS`) derives from those the suite's `MetricOptions`, so a task's `metric_options: {rouge:
{tokenizer: char}}` becomes `MetricOptions(rouge=RougeOptions(...))` and a misspelt option or a bad
value is a one-line error naming the suite file, line and field ("did you mean ...") before anything
runs. Given a plain dict (tests, readers of a stored suite), `validate_options` checks it with the
metric's name in the message.

Only pydantic is imported here, and no metric name is listed: the models, not which metric uses them.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

# sacrebleu's BLEU tokenizers (sacrebleu.metrics.bleu.BLEU.TOKENIZERS, 2.x); ja-mecab/ko-mecab/spm
# need their optional packages at grading time.
BLEU_TOKENIZERS = ("none", "zh", "13a", "intl", "char", "ja-mecab", "ko-mecab", "spm", "flores101",
                   "flores200", "spBLEU-1K")


def _no_bool(v: Any) -> Any:
    """YAML `true` is not a number: pydantic would read it as 1."""
    if isinstance(v, bool):
        raise ValueError(f"must be a number, not {str(v).lower()}")
    return v


Int = Annotated[int, BeforeValidator(_no_bool)]
Number = Annotated[float, BeforeValidator(_no_bool)]


class Options(BaseModel):
    """The base of every metric's options model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BleuOptions(Options):
    """sacrebleu BLEU arguments (defaults are sacrebleu's)."""

    tokenize: Optional[Literal[BLEU_TOKENIZERS]] = Field(None, description="sacrebleu tokenizer; default 13a "
                                                                           "(zh / ja-mecab / ko-mecab for CJK).")
    lowercase: bool = False
    smooth_method: Literal["none", "floor", "add-k", "exp"] = "exp"
    smooth_value: Optional[Number] = None
    max_ngram_order: Int = Field(4, ge=1, le=10)
    effective_order: bool = False
    trg_lang: str = ""


class ChrfOptions(Options):
    """sacrebleu chrF arguments; word_order 2 gives chrF++."""

    char_order: Int = Field(6, ge=1, le=20)
    word_order: Int = Field(0, ge=0, le=10)
    beta: Int = Field(2, ge=0)
    lowercase: bool = False
    whitespace: bool = False
    eps_smoothing: bool = False


class TerOptions(Options):
    """sacrebleu TER arguments."""

    normalized: bool = False
    no_punct: bool = False
    asian_support: bool = False
    case_sensitive: bool = False


class RougeOptions(Options):
    tokenizer: Literal["default", "char"] = Field("default", description="char: one token per CJK character.")
    use_stemmer: bool = Field(False, description="Porter stemming (default tokenizer only).")

    @model_validator(mode="after")
    def _stemmer_needs_default_tokenizer(self) -> "RougeOptions":
        if self.use_stemmer and self.tokenizer != "default":
            raise ValueError("use_stemmer works with the default tokenizer only")
        return self


class ExactMatchOptions(Options):
    mode: Literal["text", "number"] = "text"
    tol: Number = Field(1e-6, ge=0, description="Absolute tolerance in mode number.")


class JsonValidityOptions(Options):
    accept: Literal["object", "fenced", "any"] = "object"
    max_chars: Int = Field(100_000, ge=1, description="Longer outputs are invalid.")
    schema_: Optional[Union[dict[str, Any], bool]] = Field(
        None, alias="schema", description="An inline JSON Schema (or set the task's json_schema file).")
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True,
                              serialize_by_alias=True)

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, v: Any) -> Any:
        if isinstance(v, dict):
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(v)
            except SchemaError as e:
                raise ValueError(f"the schema is not a valid Draft 2020-12 schema: {e.message}") from None
        return v


class NoOptions(Options):
    """This metric takes no options."""


class MetricOptionsBase(Options):
    """What the catalogue's `MetricOptions` (one optional field per metric) does besides its fields."""

    @model_serializer(mode="wrap")
    def _only_set(self, handler):
        """Stored suites list only the metrics given options, not one empty entry per metric."""
        return {k: v for k, v in handler(self).items() if v is not None}


def _message(metric: str, model: type[Options], e: ValidationError) -> str:
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        unknown = sorted(str(x["loc"][-1]) for x in e.errors() if x["type"] == "extra_forbidden")
        known = ", ".join(f.alias or k for k, f in model.model_fields.items()) or "none"
        return f"{metric}: unknown option(s) {', '.join(unknown)}; known: {known}"
    if err["type"] == "literal_error":
        choices = err["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        return f"{metric}: {field} must be one of {choices}, not {err['input']!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{metric}: {field + ': ' if field else ''}{msg} (got {err.get('input')!r})"


def validate_options(metric: str, model: type[Options], options: Union[Options, dict, None]) -> Options:
    """`options` as `model`; a dict is validated (ValueError naming the metric)."""
    if isinstance(options, model):
        return options
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as e:
        raise ValueError(_message(metric, model, e)) from None
