"""`harness gate`: decide pass or fail for a graded run, for CI.

Gates (`GateSpec` in suite.py) come from the suite stored in results.json or from a gates file
(YAML or JSON with a top-level `gates:` list). One GateSpec can set several conditions; each
set condition is one gate verdict:

    min / max                    absolute threshold on the gated checkpoint's corpus score
    max_drop_from_base           forgetting budget: drop against epoch 0 of the same model
    max_drop_from_baseline       regression budget: drop against a baseline results file

A drop is measured in the metric's direction (a rise of perplexity or TER is a drop). A drop
gate fails only when the observed drop exceeds the budget AND a one-sided paired bootstrap
over the same test items (paired by sample `id`) says the gated checkpoint is worse at the
gate's `confidence` (p < 1 - confidence). Without per-sample statistics on either side the
gate falls back to the plain threshold and says so (mode `threshold-only`).

Outputs: a rich table, exit code 0 pass / 1 fail / 2 bad input, JUnit XML (one test case per
gate), a Markdown summary, and the verdicts stored in results.json `gates`. See docs/gates.md.

The package, one concern a file: `specs` (gates file / stored suite → GateSpec), `checks`
(refusals before any verdict: incomplete run, different test data, overridden references),
`evaluation` (verdicts), `outputs` (table, JUnit, Markdown, and `run_gate`, the command).
"""
from __future__ import annotations

from harness.gate.evaluation import DEFAULT_SAMPLES, evaluate_gates
from harness.gate.outputs import (
    EXIT_BAD_INPUT, EXIT_FAIL, EXIT_PASS, print_table, render_markdown, run_gate, write_junit,
)
from harness.gate.specs import KINDS, GateError, gates_from_results, load_gates_file

__all__ = ["DEFAULT_SAMPLES", "EXIT_BAD_INPUT", "EXIT_FAIL", "EXIT_PASS", "GateError", "KINDS", "evaluate_gates",
           "gates_from_results", "load_gates_file", "print_table", "render_markdown", "run_gate", "write_junit"]
