"""Report stage: the HTML report and the run's output files.

The package face imports nothing, so loading one small module (``kallos.report.files``) never
loads the report's renderer, and no module of the package reaches another through it. Import
from the modules themselves:

* :mod:`kallos.report.html`: ``render_report``, ``write_report`` and ``SECTIONS``, the ordered
  registry of the report's sections;
* :mod:`kallos.report.blocks`: ``ReportFrames``, ``SectionContext`` and the block model;
* :mod:`kallos.report.outputs`: ``write_outputs`` (results.json, Parquet, tearsheets, report) and
  ``read_run``;
* :mod:`kallos.report.export`: ``export_results`` (CSV / Excel);
* :mod:`kallos.report.schema`: ``validate_results``;
* :mod:`kallos.report.results`: the typed result objects.
"""

__all__: list[str] = []
