"""HTML reports, rendered from run directories only (results.json, samples/, suite.yaml).

    render_report([run_dir])              -> RUN/report.html
    render_report([run_a, run_b], out)    -> one comparison page

Modules: `collect` reads run directories into plain data, `samples` prepares the sample
browser's rows, `charts` draws matplotlib figures as inline SVG, `html` renders the jinja2
template in `templates/`. Nothing in `harness/` imports this package except the CLI.
"""
from reports.html import render_report

__all__ = ["render_report"]
