"""Checks across the fields of a parsed suite: names that must refer to something the suite
defines (the early-stopping score, the tasks gates name) and options that only one grading
backend reads. Each raises SuiteError naming the file, line and field, before any work starts.
`suite` is a harness.suite.Suite (not imported: the suite module calls these)."""
from __future__ import annotations

import difflib

from harness.errors import SuiteError
from harness.metrics import build_metrics


def check_early_stopping(suite, file: str, lines: dict[tuple, int]) -> None:
    """early_stopping.metric must name a score the suite's tasks produce: 'TASK/METRIC' or 'TASK/loss'."""
    es = suite.train.early_stopping if suite.train else None
    if es is None:
        return
    loc = ("train", "early_stopping", "metric")
    where = f"{file}:{lines[loc]}" if loc in lines else file
    task, _, metric = es.metric.partition("/")
    tasks = {t.name: t for t in suite.tasks}
    if task not in tasks:
        raise SuiteError(f"{where}: field 'train.early_stopping.metric': no task {task!r}; "
                         f"write TASK/METRIC with TASK one of {', '.join(tasks)}")
    try:
        names = [m.name for m in build_metrics(tasks[task].metrics, tasks[task].metric_options)] + ["loss"]
    except Exception:  # a metric's own options are wrong: the grader reports that with its own message
        return
    if metric not in names:
        hint = difflib.get_close_matches(metric, names, n=1)
        raise SuiteError(f"{where}: field 'train.early_stopping.metric': task {task!r} has no score {metric!r}"
                         + (f"; did you mean '{task}/{hint[0]}'?" if hint else f"; it has {', '.join(names)}"))


def check_gate_tasks(suite, file: str, lines: dict[tuple, int]) -> None:
    """A gate on a task the suite does not grade would fail only after training: refused at load."""
    tasks = [t.name for t in suite.tasks]
    for i, g in enumerate(suite.gates):
        if g.task not in tasks and g.drift is None:
            loc = ("gates", i, "task")
            where = f"{file}:{lines[loc]}" if loc in lines else file
            hint = difflib.get_close_matches(g.task, tasks, n=1)
            raise SuiteError(f"{where}: field 'gates.{i}.task': the suite grades no task {g.task!r}; "
                             + (f"did you mean {hint[0]!r}?" if hint else f"use one of {', '.join(tasks)}"))


def check_grading_engine(suite, file: str, lines: dict[tuple, int]) -> None:
    """generation.engine chooses how the transformers backend generates: meaningless under vllm."""
    if suite.grading.backend == "transformers":
        return
    for i, t in enumerate(suite.tasks):
        if t.generation.engine != "padded":
            loc = ("tasks", i, "generation", "engine")
            where = f"{file}:{lines[loc]}" if loc in lines else file
            raise SuiteError(f"{where}: field 'tasks.{i}.generation.engine': {t.generation.engine!r} is a transformers "
                             f"option and grading.backend is {suite.grading.backend}: remove it, or set "
                             f"grading.backend: transformers")
