"""Report stage: the self-contained HTML report and the run's output files."""

from kallos.report.html import ReportFrames, render_report, write_report
from kallos.report.outputs import write_outputs

__all__ = ["ReportFrames", "render_report", "write_outputs", "write_report"]
