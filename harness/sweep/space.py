"""The `sweep:` block checked against the suite it sits in, and each trial's suite built from it.

Everything here runs before any trial starts: a parameter path that names no suite field, a
value the field refuses, a setting this machine cannot run (fp16 without CUDA), an objective
no task produces are each one `SuiteError` line naming the suite file's line (exit code 2).
"""
from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import ValidationError

from harness.errors import SuiteError
from harness.metrics import build_metrics
from harness.suite import Suite
from harness.sweep.spec import RangeSpace, SweepSpec

# pruner steps: seed k's epoch e is step k * STEPS_PER_SEED + e (epochs are at most 1000), so a
# pruner compares a trial's epoch only with other trials' same seed and epoch
STEPS_PER_SEED = 1001


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep: the suite it varies (its own `sweep` removed) and what it optimises."""

    suite: Suite
    spec: SweepSpec
    task: str
    metric: str
    higher: bool

    @property
    def direction(self) -> str:
        return "maximize" if self.higher else "minimize"

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"


def plan_sweep(suite: Suite) -> SweepPlan:
    """The suite's sweep, every path, value and the objective checked (SuiteError otherwise)."""
    spec = suite.sweep
    if spec is None:
        raise SuiteError(f"{suite.where()}: no `sweep:` block: add one (docs/sweep.md), e.g. "
                         f"sweep: {{params: {{train.lr: [1e-4, 1e-3]}}, objective: {{metric: TASK/bleu}}}}")
    if suite.train is None:
        raise SuiteError(f"{suite.where()}: a sweep varies training: the suite needs a `train:` section")
    base = suite.model_copy(deep=True)
    base.sweep = None
    base._file, base._lines = suite._file, suite._lines
    for path, space in spec.params.items():
        _check_path(suite, path)
        for value in candidate_values(space):
            _with_overrides(base, {path: value}, where=suite.where("sweep", "params", path), path=path)
    if spec.sampler == "grid":
        for path, space in spec.params.items():
            if isinstance(space, RangeSpace) and space.kind != "int":
                raise SuiteError(f"{suite.where('sweep', 'params', path)}: field 'sweep.params.{path}': the grid "
                                 f"sampler needs a list of choices (or an int range), not {space.kind}: list the "
                                 f"values, or use sampler: tpe")
    task, metric, higher = _objective(suite, spec)
    return SweepPlan(base, spec, task, metric, higher)


def candidate_values(space) -> list:
    """The values a space can take that are worth validating: every choice, a range's two ends."""
    return list(space) if isinstance(space, list) else list(space.bounds)


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the choices (an int range counts each integer), in order."""
    axes = [list(s) if isinstance(s, list) else
            (list(range(s.bounds[0], s.bounds[1] + 1)) if s.kind == "int" else list(s.bounds))
            for s in spec.params.values()]
    return [dict(zip(spec.params, combo)) for combo in itertools.product(*axes)]


def trial_suite(plan: SweepPlan, params: dict[str, Any], seed: int, study: Optional[str] = None) -> Suite:
    """The suite one trial runs: the sweep's suite with the trial's values and `train.seed` set;
    a suite that tracks its runs (a `tracking:` block with a `group`) groups them by study."""
    overrides = {**params, "train.seed": seed}
    tracking = getattr(plan.suite, "tracking", None)
    if study and tracking is not None and hasattr(tracking, "group"):
        overrides["tracking.group"] = study
    return _with_overrides(plan.suite, overrides, where=plan.suite.where("sweep"), path=None)


def _with_overrides(base: Suite, overrides: dict[str, Any], where: str, path: Optional[str]) -> Suite:
    raw = base.model_dump(mode="json", exclude={"base_dir"})
    for dotted, value in overrides.items():
        _set(raw, dotted.split("."), value)
    try:
        out = Suite.model_validate({**raw, "base_dir": base.base_dir})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        value = overrides.get(path) if path else None
        raise SuiteError(f"{where}: field 'sweep.params.{path or field}': value {value!r} is refused by "
                         f"{field}: {msg}") from None
    out._file, out._lines = base._file, base._lines
    if path is not None:   # a value this machine cannot train with (fp16 without CUDA, ...)
        from harness.machine_checks import check_runs_here

        try:
            check_runs_here(out, cuda=_cuda(), train=True)
        except SuiteError as e:
            raise SuiteError(f"{where}: field 'sweep.params.{path}': value {overrides[path]!r}: "
                             f"{str(e).split(': ', 2)[-1]}") from None
    return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _set(raw: dict, parts: list[str], value: Any) -> None:
    node: Any = raw
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _check_path(suite: Suite, path: str) -> None:
    """`path` names a field of the loaded suite: each part a key of the model at that depth (an
    index into a list), the last one a value, not a whole section."""
    where = suite.where("sweep", "params", path)
    node: Any = suite.model_dump(mode="json", exclude={"base_dir", "sweep"})
    seen: list[str] = []
    for part in path.split("."):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SuiteError(f"{where}: field 'sweep.params.{path}': {'.'.join(seen)} is a list of {len(node)}: "
                                 f"write an index from 0 to {len(node) - 1} after it (got {part!r})")
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                known = [k for k in node if k != "sweep"]
                hint = difflib.get_close_matches(part, known, n=1)
                at = ".".join(seen) or "the suite"
                raise SuiteError(f"{where}: unknown parameter path '{path}': {at} has no field {part!r}; "
                                 + (f"did you mean '{'.'.join([*seen, hint[0]])}'?" if hint
                                    else f"it has {', '.join(known)}"))
            node = node[part]
        else:
            raise SuiteError(f"{where}: unknown parameter path '{path}': {'.'.join(seen)} is a value, not a section")
        if node is None and part != path.split(".")[-1]:
            raise SuiteError(f"{where}: field 'sweep.params.{path}': {'.'.join([*seen, part])} is not set in the "
                             f"suite: set it there first, then vary its fields")
        seen.append(part)
    if isinstance(node, dict):
        raise SuiteError(f"{where}: field 'sweep.params.{path}': a whole section; vary one of its fields "
                         f"({', '.join(f'{path}.{k}' for k in list(node)[:4])}, ...)")


def _objective(suite: Suite, spec: SweepSpec) -> tuple[str, str, bool]:
    """(task, metric, higher is better) of the objective, which must name a score the suite grades."""
    where = suite.where("sweep", "objective", "metric")
    task, _, metric = spec.objective.metric.partition("/")
    tasks = {t.name: t for t in suite.tasks}
    if task not in tasks:
        raise SuiteError(f"{where}: field 'sweep.objective.metric': no task {task!r} produces "
                         f"{spec.objective.metric!r}; write TASK/METRIC with TASK one of {', '.join(tasks)}")
    if metric == "loss":
        return task, metric, False
    metrics = {m.name: m for m in build_metrics(tasks[task].metrics, tasks[task].metric_options)}
    if metric not in metrics:
        names = [*metrics, "loss"]
        hint = difflib.get_close_matches(metric, names, n=1)
        raise SuiteError(f"{where}: field 'sweep.objective.metric': task {task!r} produces no {metric!r}"
                         + (f"; did you mean '{task}/{hint[0]}'?" if hint else f"; it has {', '.join(names)}"))
    return task, metric, metrics[metric].higher_is_better is not False
