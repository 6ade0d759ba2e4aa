"""The comparison report in a real headless Chromium: no JavaScript errors, every chart drawn with data.

Uses Debian's ``chromium`` (``/usr/bin/chromium``, or ``$KALLOS_CHROMIUM``) through Playwright; no
browser download. A full-page screenshot is saved under ``$KALLOS_TEST_ARTIFACTS`` (default
``test-artifacts/`` at the repository root, git-ignored) and its path printed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kallos.report.html import ReportFrames, write_report

pytestmark = pytest.mark.slow  # launches a browser (~10-20 s)

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "headless Chromium not found at {path}: install it with `sudo apt-get install -y chromium` "
    "(Debian/Ubuntu; CI does this in .ci/run) or point $KALLOS_CHROMIUM at a Chromium binary"
)

# Per chart: its id, whether plotly drew it, and per trace the number of plotted points as plotly
# computed them (``_length`` of the full trace; for heatmaps the finite z cells).
CHARTS_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  id: gd.id,
  rendered: !!gd._fullLayout && gd.querySelectorAll('.main-svg').length > 0,
  traces: (gd.data || []).length,
  points: (gd._fullData || []).map((t, i) => {
    const cd = (gd.calcdata || [])[i] || [];
    if (t.type === 'heatmap') {
      const z = (cd[0] && cd[0].z) || [];
      return z.reduce((s, row) => s + Array.from(row).filter(v => Number.isFinite(v)).length, 0);
    }
    return t._length || 0;
  }),
}))
"""


def _chromium() -> str:
    path = os.environ.get("KALLOS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(INSTALL_HINT.format(path=path), pytrace=False)
    return path


def _artifacts() -> Path:
    folder = Path(os.environ.get("KALLOS_TEST_ARTIFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module", params=["inline", "shared"])
def rendered(
    request: pytest.FixtureRequest,
    study: tuple[dict[str, Any], ReportFrames],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict:
    """Open the fixture report in Chromium; collect console errors, page errors and chart data.

    Once with plotly.js inlined, once loading the shared ``plotly.min.js`` from beside the file.
    """
    from playwright.sync_api import sync_playwright

    results, frames = study
    folder = tmp_path_factory.mktemp(f"browser-{request.param}")
    report = write_report(folder / "report.html", results, frames, assets=request.param)
    console_errors: list[str] = []
    page_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".every(gd => !!gd._fullLayout)",
                timeout=30_000,
            )
            charts = page.evaluate(CHARTS_JS)
            toc = page.eval_on_selector_all("nav.toc a", "els => els.map(a => a.getAttribute('href'))")
            ids = page.eval_on_selector_all("main > section", "els => els.map(s => s.id)")
            screenshot = _artifacts() / f"report-fixture-{request.param}.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"report screenshot: {screenshot}")
    return {
        "console": console_errors,
        "page": page_errors,
        "charts": charts,
        "toc": toc,
        "ids": ids,
        "screenshot": screenshot,
    }


def test_no_console_or_page_errors(rendered: dict) -> None:
    assert rendered["page"] == []
    assert rendered["console"] == []


def test_every_chart_rendered_with_data(rendered: dict) -> None:
    charts = {c["id"]: c for c in rendered["charts"]}
    expected = {
        "fig-primary-intervals",
        "fig-calibration-power",
        "fig-universe",
        "fig-universe-pit",
        "fig-cumulative",
        "fig-drawdowns",
        "fig-rolling-sharpe",
        "fig-weights",
        "fig-turnover",
        "fig-pbo-logits",
        "fig-regimes",
        "fig-quarters",
        "fig-da-quarter",
        "fig-residuals",
    }
    assert set(charts) == expected
    for chart_id, chart in charts.items():
        assert chart["rendered"], chart_id
        assert chart["traces"] > 0, chart_id
        assert all(n > 0 for n in chart["points"]), (chart_id, chart["points"])


def test_toc_links_every_section_and_screenshot_saved(rendered: dict) -> None:
    assert rendered["toc"] == [f"#{i}" for i in rendered["ids"]]
    assert "verdicts" in rendered["ids"] and "sharpe" in rendered["ids"]
    shot = rendered["screenshot"]
    assert shot.is_file() and shot.stat().st_size > 50_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
