"""The parity page: its content, and in a real headless Chromium no console errors and every chart drawn."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kallos.trading.parity import compute_parity
from kallos.trading.report import render_trade_report, write_trade_report

from .conftest import PERIODS, paper_trader

CHARTS_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  id: gd.id,
  rendered: !!gd._fullLayout && gd.querySelectorAll('.main-svg').length > 0,
  points: (gd._fullData || []).map(t => t._length || 0),
}))
"""


@pytest.fixture(scope="module")
def parity(small_db, tmp_path_factory):
    from .conftest import copy_store

    tmp = tmp_path_factory.mktemp("report")
    store = copy_store(small_db, tmp)
    for period in PERIODS[:4]:
        assert paper_trader(store, tmp).run(as_of=period).status == "done"
    return compute_parity(store, "paper")


def test_page_shows_values_cycles_orders_and_the_verdict(parity, tmp_path):
    html = render_trade_report(parity)
    assert html.count("<script type='text/javascript'>") == 1  # plotly.js inlined once
    assert 'id="fig-nav"' in html and 'id="fig-difference"' in html
    assert "the paper account equals the backtest to 1e-09 USDT" in html
    for period in PERIODS[:4]:
        assert f"{period:%Y-%m-%d}" in html
    for cid in parity.orders["client_order_id"]:
        assert cid in html
    assert html.count("as the backtest") == len(parity.orders)
    path = write_trade_report(tmp_path / "deep" / "paper.html", parity)
    assert path.read_text(encoding="utf-8") == html


def test_a_missed_decision_close_is_shown(parity):
    periods = parity.periods.copy()
    periods.loc[1, "status"] = "missed"
    from dataclasses import replace

    html = render_trade_report(replace(parity, periods=periods))
    assert "1 decision close(s) missed" in html and "skipped rebalances the backtest made" in html
    assert "equals the backtest" not in html


@pytest.mark.slow
def test_page_in_headless_chromium(parity, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("KALLOS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.fail(
            f"headless Chromium not found at {chromium}: `sudo apt-get install -y chromium`", pytrace=False
        )
    page_path = write_trade_report(tmp_path / "paper.html", parity)
    console, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri(), wait_until="load")
            drawn = (
                "() => Array.from(document.querySelectorAll('.js-plotly-plot')).every(gd => !!gd._fullLayout)"
            )
            page.wait_for_function(drawn, timeout=30_000)
            charts = {c["id"]: c for c in page.evaluate(CHARTS_JS)}
            rows = page.eval_on_selector_all("#orders + table tbody tr", "rows => rows.length")
        finally:
            browser.close()
    assert console == [] and errors == []
    assert set(charts) == {"fig-nav", "fig-difference"}
    for chart in charts.values():
        assert chart["rendered"] and chart["points"] and all(n > 0 for n in chart["points"]), chart
    assert rows == len(parity.orders)
