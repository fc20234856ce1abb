"""Gate specs: the `gates:` list of a gates file or of the suite stored in results.json →
validated `GateSpec`s, every error one line naming file, line and field."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import ValidationError

from harness.errors import UserError
from harness.files import read_text
from harness.suite import GateSpec, format_validation_error
from harness.yaml_lines import line_map, yaml_load

KINDS = ("min", "max", "max_drop_from_base", "max_drop_from_baseline")


class GateError(UserError, ValueError):
    """Bad gate input (gates file, unknown task or metric, missing epoch); one line, exit 2."""


def _validate(raw: Any, file: str, text: Optional[str] = None, key: str = "gates") -> list[GateSpec]:
    if not isinstance(raw, list):
        raise GateError(f"{file}: `{key}` must be a list of gates (task, metric, min/max/max_drop_...)")
    if not raw:
        raise GateError(f"{file}: `{key}` is empty: nothing to gate")
    lines: dict[tuple, int] = {}
    if text is not None:
        try:
            lines = line_map(text)
        except yaml.YAMLError:
            lines = {}
    gates: list[GateSpec] = []
    for i, g in enumerate(raw):
        try:
            spec = GateSpec.model_validate(g)
        except ValidationError as e:
            raw_errors, seen = [], set()
            for err in e.errors():
                loc = err["loc"]
                if loc and loc[0] == "checkpoint":  # a union: one message, not one per member
                    if "checkpoint" in seen:
                        continue
                    seen.add("checkpoint")
                    err = {**err, "loc": ("checkpoint",), "type": "value_error",
                           "msg": "checkpoint is 'best', 'last' or an epoch number"}
                raw_errors.append(err)
            errors = [format_validation_error({**err, "loc": ("gates", i, *err["loc"])}, file, lines) for err in raw_errors]
            if key != "gates":
                errors = [m.replace("'gates.", f"'{key}.") for m in errors]
            raise GateError(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")) from None
        if all(getattr(spec, k) is None for k in KINDS):
            line = lines.get(("gates", i))
            where = f"{file}:{line}" if line else file
            raise GateError(f"{where}: gate '{key}.{i}' ({spec.task}/{spec.metric}) sets none of "
                            f"{', '.join(KINDS)}: add one")
        gates.append(spec)
    return gates


def load_gates_file(path: Union[str, Path]) -> list[GateSpec]:
    """Gates from a YAML or JSON file with a top-level `gates:` list (other keys are ignored,
    so a suite file works too)."""
    p = Path(path)
    text = read_text(p, "gates file", GateError)
    if p.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise GateError(f"{p}:{e.lineno}: not valid JSON: {e.msg}") from None
    else:
        try:
            raw = yaml_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise GateError(f"{p}{f':{mark.line + 1}' if mark else ''}: not valid YAML: "
                            f"{getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict) or "gates" not in raw:
        raise GateError(f"{p}: a gates file is a mapping with a top-level `gates:` list")
    return _validate(raw["gates"], str(p), text)


def gates_from_results(results: dict, source: str = "results.json") -> list[GateSpec]:
    """The gates of the suite stored in a results file."""
    suite = results.get("suite") if isinstance(results.get("suite"), dict) else {}
    raw = suite.get("gates")
    if not raw:
        raise GateError(f"{source}: the suite stored in the results defines no gates: "
                        f"give a gates file with --gates")
    return _validate(raw, source, key="suite.gates")

