"""QuantStats tearsheets against the market-cap benchmark."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kallos.exceptions import DataValidationError
from kallos.report.tearsheets import tearsheet_name, write_tearsheets


def _returns(n_days: int = 500, seed: int = 3) -> pd.DataFrame:
    """Crypto-like daily simple returns: fat tails, a common market factor, leading NaNs for one variant."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2022-01-01", periods=n_days, freq="D")
    market = rng.standard_t(4, n_days) * 0.025 + 0.0008
    out = pd.DataFrame(
        {
            "gru/max_sharpe": 0.9 * market + rng.normal(0.0004, 0.01, n_days),
            "historical_mean/max_sharpe": 1.1 * market + rng.normal(0.0, 0.012, n_days),
            "market_cap": market,
        },
        index=dates,
    )
    out.iloc[:30, 1] = np.nan
    return out


def _metric(html: str, label: str) -> list[str]:
    row = re.search(rf"<tr><td>{re.escape(label)}</td>(.*?)</tr>", html)
    assert row, label
    return re.findall(r"<td>(.*?)</td>", row.group(1))


@pytest.mark.slow
def test_tearsheet_has_our_metrics(tmp_path: Path) -> None:
    returns = _returns()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = write_tearsheets(tmp_path, returns, keys=["gru/max_sharpe"])
    assert not caught  # library deprecation noise is silenced
    assert written == {"gru/max_sharpe": "tearsheets/gru__max_sharpe.html"}
    html = (tmp_path / written["gru/max_sharpe"]).read_text(encoding="utf-8")
    assert "gru/max_sharpe vs market_cap" in html and "Periods/Year: 365" in html
    # Columns: benchmark, then strategy. Sharpe = mean / std * sqrt(365), as in our metrics table.
    for key, value in zip(("market_cap", "gru/max_sharpe"), _metric(html, "Sharpe"), strict=True):
        r = returns[key]
        assert float(value) == pytest.approx(r.mean() / r.std() * math.sqrt(365), abs=0.006)
    wealth = (1 + returns["gru/max_sharpe"]).cumprod()
    max_dd = float((wealth / wealth.cummax().clip(lower=1.0) - 1).min())
    assert float(_metric(html, "Max Drawdown")[1].rstrip("%")) == pytest.approx(max_dd * 100, abs=0.006)
    for label in ("CAGR﹪", "Sortino", "Volatility (ann.)", "Cumulative Return"):
        assert len(_metric(html, label)) == 2
    assert sorted(p.name for p in (tmp_path / "tearsheets").iterdir()) == ["gru__max_sharpe.html"]


def test_tearsheet_names_and_errors(tmp_path: Path) -> None:
    assert tearsheet_name("gru/max_sharpe") == "gru__max_sharpe.html"
    returns = _returns(60)
    with pytest.raises(DataValidationError, match="benchmark column 'market_cap' not in returns"):
        write_tearsheets(tmp_path, returns.drop(columns="market_cap"))
    empty = returns.assign(**{"gru/max_sharpe": np.nan})
    with pytest.raises(DataValidationError, match="gru/max_sharpe has no finite daily returns"):
        write_tearsheets(tmp_path, empty, keys=["gru/max_sharpe"])
    assert not list((tmp_path / "tearsheets").glob("*"))  # nothing half-written
