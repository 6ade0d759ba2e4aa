"""Property tests of the pure parts: request windows and the CoinGecko point-to-day mapping."""

from __future__ import annotations

import datetime as dt
import itertools

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.data.live.coingecko import market_chart_to_frame, request_windows

DAY_MS = 86_400_000
EPOCH_2021 = 1_609_459_200_000  # 2021-01-01 00:00 UTC


@settings(max_examples=60, deadline=None)
@given(
    start=st.dates(dt.date(2015, 1, 1), dt.date(2025, 1, 1)),
    length=st.integers(0, 800),
    window=st.integers(1, 400),
)
def test_windows_tile_the_range(start, length, window):
    end = start + dt.timedelta(days=length)
    wins = request_windows(start, end, window)
    assert wins[0][0] == start and wins[-1][1] == end
    for (_, hi), (nxt, _) in itertools.pairwise(wins):
        assert nxt == hi + dt.timedelta(days=1)  # no gap, no overlap
    assert all(0 <= (hi - lo).days < window for lo, hi in wins)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 23), st.floats(1.0, 1e5, allow_nan=False)),
        min_size=1,
        max_size=80,
    )
)
def test_each_close_date_takes_the_point_nearest_midnight(points):
    """Hourly points on calendar day D collapse to one row dated D-1 holding the earliest point."""
    payload = {
        "prices": [[EPOCH_2021 + d * DAY_MS + h * 3_600_000, p] for d, h, p in points],
        "market_caps": [],
        "total_volumes": [],
    }
    frame = market_chart_to_frame(payload, "btc", dt.date(2020, 12, 1), dt.date(2021, 3, 1))
    assert frame["date"].is_unique and frame["date"].is_monotonic_increasing
    # per day: the last point given for the earliest hour (later duplicates of one stamp win)
    raw = pd.DataFrame(points, columns=["d", "h", "p"]).drop_duplicates(["d", "h"], keep="last")
    first = raw.sort_values(["d", "h"]).groupby("d").first()
    want_dates = [pd.Timestamp("2021-01-01") + pd.Timedelta(days=int(d) - 1) for d in first.index]
    assert list(frame["date"]) == want_dates
    assert list(frame["close"]) == list(first["p"])
    assert frame["market_cap"].isna().all()
