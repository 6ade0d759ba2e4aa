"""Report stage: the self-contained HTML report and the run's output files."""

from kallos.report.export import export_results
from kallos.report.html import ReportFrames, render_report, write_report
from kallos.report.outputs import read_run, write_outputs
from kallos.report.schema import validate_results

__all__ = [
    "ReportFrames",
    "export_results",
    "read_run",
    "render_report",
    "validate_results",
    "write_outputs",
    "write_report",
]
