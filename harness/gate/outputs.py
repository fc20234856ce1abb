"""Gate outputs: the rich table, JUnit XML, the Markdown summary, and `run_gate` (the command)."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection, Optional, Union

from harness.gate.evaluation import _checkpoint_label, _fmt, _fmt_p, _fmt_threshold, evaluate_gates
from harness.gate.specs import GateError, gates_from_results, load_gates_file
from harness.files import check_output_file
from harness.results import ResultsError, load_results, write_atomic, write_json

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def write_junit(verdicts: dict, path: Union[str, Path]) -> Path:
    """JUnit XML: one <testcase> per gate (failure / skipped), in one <testsuite>."""
    gates = verdicts.get("gates") or []
    failures = sum(g["status"] == "fail" for g in gates)
    skipped = sum(g["status"] == "skipped" for g in gates)
    errors = sum(g["status"] == "error" for g in gates)
    counts = {"tests": str(len(gates)), "failures": str(failures), "errors": str(errors),
              "skipped": str(skipped), "time": "0"}
    root = ET.Element("testsuites", {"name": "harness gate", **counts})
    suite_name = "harness gate"
    if verdicts.get("suite_name") or verdicts.get("model"):
        suite_name += ": " + "/".join(str(x) for x in (verdicts.get("suite_name"), verdicts.get("model")) if x)
    attrs = {"name": suite_name, **counts}
    if verdicts.get("evaluated"):
        attrs["timestamp"] = str(verdicts["evaluated"])[:19]  # JUnit wants no timezone suffix
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for key in ("results", "baseline", "model"):
        if verdicts.get(key):
            ET.SubElement(props, "property", {"name": key, "value": str(verdicts[key])})
    ET.SubElement(props, "property", {"name": "verdict", "value": verdicts["verdict"]["summary"]})
    for g in gates:
        case = ET.SubElement(suite, "testcase", {"name": g["name"], "classname": f"harness.gate.{g.get('task', '')}",
                                                 "time": "0"})
        details = "\n".join(f"{k}: {g.get(k)}" for k in ("model", "checkpoint", "epoch", "kind", "value", "threshold",
                                                          "reference", "reference_value", "delta", "p_value", "p_adjusted",
                                                          "paired_items", "mode") if k in g)
        if g["status"] == "fail":
            ET.SubElement(case, "failure", {"message": g["message"], "type": "GateFailed"}).text = details
        elif g["status"] == "error":
            ET.SubElement(case, "error", {"message": g["message"], "type": "BadInput"}).text = g["message"]
        elif g["status"] == "skipped":
            ET.SubElement(case, "skipped", {"message": g["message"]})
        ET.SubElement(case, "system-out").text = g["message"]
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    p = Path(path)
    write_atomic(p, '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
    return p


def _md_cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _deciding_p(g: dict):
    """The p a gate decided on: Holm-adjusted over the run's paired-test gates (raw in older files)."""
    return g.get("p_adjusted", g.get("p_value"))


def render_markdown(verdicts: dict) -> str:
    """A GitHub-flavoured Markdown summary (heading, verdict line, one table row per gate)."""
    status = verdicts["verdict"]["status"]
    icon = {"pass": "✅", "fail": "❌"}.get(status, "⚠️")
    title = f"{verdicts.get('suite_name') or 'run'} / {verdicts.get('model') or ''}".rstrip(" /")
    lines = [f"### {icon} Gates {status.upper()}: {_md_cell(title)}", "",
             _md_cell(verdicts["verdict"]["summary"]), ""]
    if verdicts.get("baseline"):
        lines += [f"Baseline: `{_md_cell(verdicts['baseline'])}`", ""]
    lines += ["| result | gate | checkpoint | value | reference | delta | p | mode | details |",
              "|---|---|---|---:|---:|---:|---:|---|---|"]
    marks = {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭️ skipped", "error": "⚠️ error"}
    for g in verdicts.get("gates") or []:
        ref = "–"
        if g.get("kind") in ("min", "max"):
            ref = f"{'≥' if g['kind'] == 'min' else '≤'} {_fmt_threshold(g['threshold'])}"
        elif g.get("reference_value") is not None:
            ref = f"{_fmt(g['reference_value'])} ({g['reference']})"
        cp = _checkpoint_label(g["checkpoint"], g["epoch"]) if g.get("epoch") is not None else str(g.get("checkpoint", "–"))
        cells = [marks.get(g["status"], g["status"]), f"`{g['name']}`", cp, _fmt(g.get("value")), ref,
                 _fmt(g.get("delta")), _fmt_p(_deciding_p(g)), g.get("mode") or "–", g["message"]]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def print_table(verdicts: dict, console) -> None:
    """The verdicts as a rich table, then the one-line verdict."""
    from rich.table import Table
    from rich.text import Text

    from harness.tables import print_table

    table = Table(title=f"gates: {verdicts.get('model') or ''}", show_lines=False)
    for col, just in (("result", "left"), ("gate", "left"), ("checkpoint", "left"), ("value", "right"),
                      ("reference", "right"), ("delta", "right"), ("p", "right"), ("mode", "left"),
                      ("details", "left")):
        table.add_column(col, justify=just)
    colours = {"pass": "green", "fail": "red", "skipped": "yellow", "error": "red"}
    for g in verdicts["gates"]:
        ref = "–"
        if g["kind"] in ("min", "max"):
            ref = f"{'>=' if g['kind'] == 'min' else '<='} {_fmt_threshold(g['threshold'])}"
        elif g.get("reference_value") is not None:
            ref = f"{_fmt(g['reference_value'])} ({g['reference']})"
        table.add_row(Text(g["status"].upper(), style=colours.get(g["status"], "white")), Text(g["name"]),
                      Text(_checkpoint_label(g["checkpoint"], g["epoch"])), _fmt(g.get("value")), Text(ref),
                      _fmt(g.get("delta")), _fmt_p(_deciding_p(g)), g.get("mode") or "–", Text(g["message"]))
    print_table(console, table)
    v = verdicts["verdict"]
    colour = colours.get(v["status"], "white")
    console.print(f"gates: [{colour}]{v['status']}[/] ", end="")
    console.print(v["summary"], markup=False, highlight=False)


def _error_verdicts(message: str, results_path: Any) -> dict:
    return {"passed": False, "verdict": {"status": "fail", "summary": f"bad input: {message}"},
            "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "gates": [{"name": "gate input", "task": "input", "status": "error", "passed": False,
                       "message": message}],
            "results": str(results_path)}


def _write_markdown(text: str, path: Union[str, Path]) -> None:
    p = Path(path)
    if os.environ.get("GITHUB_STEP_SUMMARY") and Path(os.environ["GITHUB_STEP_SUMMARY"]) == p:
        with open(p, "a", encoding="utf-8") as f:  # the job summary file is shared by the step
            f.write(text)
    else:
        write_atomic(p, text)


def run_gate(results_path: Union[str, Path], baseline_path: Optional[Union[str, Path]] = None,
             gates_path: Optional[Union[str, Path]] = None, junit: Optional[Union[str, Path]] = None,
             markdown: Optional[Union[str, Path]] = None, model: Optional[str] = None, console=None,
             write_back: bool = True, errors=None, allow: Collection[str] = ()) -> int:
    """`harness gate`: evaluate, print, write JUnit/Markdown, store verdicts; return the exit code."""
    if console is None:
        from rich.console import Console

        console = Console(soft_wrap=True)
    if errors is None:   # errors never go to stdout, where CI logs keep the table
        from rich.console import Console

        errors = Console(stderr=True, soft_wrap=True)
    try:
        results, run = load_results(results_path)
        baseline = load_results(baseline_path) if baseline_path else None
        gates = load_gates_file(gates_path) if gates_path else gates_from_results(results, str(run.results_path))
        for path, what in ((junit, "--junit output"), (markdown, "--markdown output")):
            if path:
                check_output_file(path, what, GateError)
        verdicts = evaluate_gates(results, run, gates, baseline, model=model, allow=allow)
    except (ResultsError, GateError) as e:
        errors.print(f"error: {e}", style="red", markup=False, highlight=False)
        bad = _error_verdicts(str(e), results_path)
        try:
            if junit:
                write_junit(bad, junit)
            if markdown:
                _write_markdown(render_markdown(bad), markdown)
        except OSError:
            pass
        return EXIT_BAD_INPUT
    print_table(verdicts, console)
    try:
        if junit:
            write_junit(verdicts, junit)
        if markdown:
            _write_markdown(render_markdown(verdicts), markdown)
    except OSError as e:
        errors.print(f"error: cannot write gate output: {e}", style="red", markup=False, highlight=False)
        return EXIT_BAD_INPUT
    if write_back:
        stored = {k: v for k, v in verdicts.items()}
        stored["source"] = str(gates_path) if gates_path else "suite"
        results["gates"] = stored
        try:
            write_json(run.results_path, results)
        except OSError as e:
            errors.print(f"warning: verdicts not stored in {run.results_path}: {e}", style="yellow",
                          markup=False, highlight=False)
    return EXIT_PASS if verdicts["passed"] else EXIT_FAIL

