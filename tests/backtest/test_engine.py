"""Tests of kallos.backtest.engine.run_backtest: a hand-computed example, timing, costs, properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.backtest import run_backtest
from kallos.backtest.engine import drift_weights, rebalance_cost
from kallos.exceptions import DataValidationError
from kallos.types import BacktestResult

D = pd.date_range("2024-01-01", periods=6, freq="D")  # D[0] .. D[5]
AB = ["a", "b"]


def _frame(rows: dict, columns=AB) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns, dtype=float)


@pytest.fixture
def hand() -> tuple[pd.DataFrame, pd.DataFrame]:
    targets = _frame({D[0]: [0.5, 0.5], D[2]: [0.5, 0.5]})
    returns = _frame(
        {
            D[1]: [0.10, -0.10],
            D[2]: [0.00, 0.20],
            D[3]: [-0.05, 0.05],
            D[4]: [0.02, 0.00],
        }
    )
    return targets, returns


def test_hand_computed_two_assets_four_days(hand):
    # cost 10 bps → rate 0.001 per unit of traded notional, paid so that the target is held after it.
    # Close of day 0: buy [0.5, 0.5] from cash: c = 0.001 · (1 − c) → c = 0.001/1.001, turnover 1/1.001.
    # Day 1: returns [+10%, −10%] → gross = 0.5·0.1 − 0.5·0.1 = 0;
    #        net = (1 − c)(1 + 0) − 1 = −0.001/1.001.
    #        drift: [0.5·1.1, 0.5·0.9] / 1 = [0.55, 0.45].
    # Day 2: returns [0, +20%] → gross = 0.45·0.2 = 0.09 = net (no trade).
    #        drift: [0.55, 0.45·1.2] / 1.09 = [0.55, 0.54] / 1.09 = [0.5045872, 0.4954128].
    # Close of day 2: back to [0.5, 0.5]: sell a, buy b; the (1 − c) terms cancel, as 0.5 − 0.5 = 0:
    #        turnover = (0.55 − 0.545)/1.09 + (0.545 − 0.54)/1.09 = 0.01/1.09 = 0.00917431;
    #        cost = 0.001 · 0.01/1.09 = 9.17431e-6.
    # Day 3: returns [−5%, +5%] → gross = 0; net = (1 − 9.17431e-6) − 1 = −9.17431e-6.
    #        drift: [0.475, 0.525].
    # Day 4: returns [+2%, 0] → gross = 0.475·0.02 = 0.0095 = net.
    targets, returns = hand
    res = run_backtest(targets, returns, end=D[4], cost_bps=10.0)
    assert isinstance(res, BacktestResult)
    days = D[1:5]
    pd.testing.assert_index_equal(res.returns_gross.index, days)
    np.testing.assert_allclose(res.returns_gross.to_numpy(), [0.0, 0.09, 0.0, 0.0095], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        res.returns_net.to_numpy(),
        [-0.001 / 1.001, 0.09, -0.001 * 0.01 / 1.09, 0.0095],
        rtol=1e-12,
        atol=1e-15,
    )
    pd.testing.assert_index_equal(res.turnover.index, targets.index)
    np.testing.assert_allclose(res.turnover.to_numpy(), [1 / 1.001, 0.01 / 1.09], rtol=1e-12)
    np.testing.assert_allclose(res.costs.to_numpy(), [0.001 / 1.001, 0.001 * 0.01 / 1.09], rtol=1e-12)
    expected_holdings = [[0.5, 0.5], [0.55, 0.45], [0.5, 0.5], [0.475, 0.525]]
    np.testing.assert_allclose(res.holdings.to_numpy(), expected_holdings, rtol=0, atol=1e-15)
    assert list(res.holdings.columns) == AB
    assert res.missing_returns == 0
    # Compounded: (1/1.001) × 1.09 × (1 − 9.17431e-6) × 1.0095.
    growth = (1 + res.returns_net).prod()
    assert growth == pytest.approx(1.09 / 1.001 * (1 - 0.001 * 0.01 / 1.09) * 1.0095, rel=1e-14)


def test_first_rebalance_buys_from_cash(hand):
    targets, returns = hand
    for bps in (0.0, 10.0, 25.0):
        res = run_backtest(targets.iloc[:1], returns, end=D[2], cost_bps=bps)
        rate = bps / 1e4
        # c = rate × (1 − c): the post-cost value is fully invested.
        assert res.costs.iloc[0] == pytest.approx(rate / (1 + rate), abs=1e-15)
        assert res.turnover.iloc[0] == pytest.approx(1 / (1 + rate), abs=1e-15)
        g = res.returns_gross.iloc[0]
        assert res.returns_net.iloc[0] == pytest.approx((1 + g) / (1 + rate) - 1, abs=1e-15)


def test_zero_cost_net_equals_gross(hand):
    targets, returns = hand
    res = run_backtest(targets, returns, end=D[4], cost_bps=0.0)
    np.testing.assert_allclose(res.returns_net, res.returns_gross, rtol=0, atol=1e-15)
    assert (res.costs == 0).all()
    assert res.turnover.iloc[0] == 1.0


def test_constant_weights_rebalanced_daily_earn_the_weighted_average():
    rng = np.random.default_rng(5)
    cols = ["a", "b", "c"]
    days = pd.date_range("2024-01-01", periods=31, freq="D")
    returns = pd.DataFrame(rng.normal(0, 0.04, size=(31, 3)), index=days, columns=cols)
    w = np.array([0.2, 0.3, 0.5])
    targets = pd.DataFrame([w] * 30, index=days[:30], columns=cols)
    res = run_backtest(targets, returns, end=days[-1], cost_bps=0.0)
    expected = returns.iloc[1:].to_numpy() @ w
    np.testing.assert_allclose(res.returns_gross.to_numpy(), expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(res.holdings.to_numpy(), np.tile(w, (30, 1)), rtol=1e-15)
    # After day 1, each day's turnover only undoes the previous day's drift.
    assert res.turnover.iloc[0] == 1.0 and (res.turnover.iloc[1:] < 0.1).all()


def test_decision_day_return_does_not_count(hand):
    targets, returns = hand
    base = run_backtest(targets, returns, end=D[4])
    # A return on the decision day itself (day 0) and on day 2 for a decision taken at day 2's
    # close cannot change what the portfolio earned by then.
    with_day0 = pd.concat([_frame({D[0]: [5.0, -0.9]}), returns])
    other = run_backtest(targets, with_day0, end=D[4])
    pd.testing.assert_series_equal(other.returns_net, base.returns_net)
    pd.testing.assert_frame_equal(other.holdings, base.holdings)
    # Changing the day-2 decision changes days 3-4 only.
    changed = run_backtest(_frame({D[0]: [0.5, 0.5], D[2]: [1.0, 0.0]}), returns, end=D[4])
    pd.testing.assert_series_equal(changed.returns_net[: D[2]], base.returns_net[: D[2]])
    assert changed.returns_gross[D[3]] == pytest.approx(-0.05)
    assert changed.returns_gross[D[4]] == pytest.approx(0.02)


def test_decision_on_the_end_date_is_ignored(hand):
    targets, returns = hand
    later = pd.concat([targets, _frame({D[4]: [1.0, 0.0]})])
    res = run_backtest(later, returns, end=D[4])
    pd.testing.assert_series_equal(res.returns_net, run_backtest(targets, returns, end=D[4]).returns_net)
    assert D[4] not in res.turnover.index


def test_names_removed_from_target_are_sold():
    cols = ["a", "b", "c"]
    targets = _frame({D[0]: [0.5, 0.5, np.nan], D[1]: [np.nan, 0.5, 0.5]}, cols)
    returns = _frame({D[1]: [0.2, 0.0, 0.0], D[2]: [0.3, 0.1, -0.1], D[3]: [0.0, 0.0, 0.0]}, cols)
    res = run_backtest(targets, returns, end=D[3], cost_bps=0.0)
    # Day 1: [0.5, 0.5, 0] earns 0.1; drift → [0.6, 0.5, 0] / 1.1.
    # Close of day 1: sell a, keep b at 0.5, buy c: turnover = 0.6/1.1 + |0.5 − 0.5/1.1| + 0.5
    #   = 0.545454 + 0.045454 + 0.5 = 1.0909...
    assert res.holdings.loc[D[2], "a"] == 0.0
    np.testing.assert_allclose(res.holdings.loc[D[2]].to_numpy(), [0.0, 0.5, 0.5])
    assert res.returns_gross[D[2]] == pytest.approx(0.0)  # a's +30% no longer held
    assert res.turnover[D[1]] == pytest.approx(0.6 / 1.1 + (0.5 - 0.5 / 1.1) + 0.5, rel=1e-12)


def test_missing_return_for_held_coin_is_flat_and_counted():
    cols = ["a", "b", "c"]
    targets = _frame({D[0]: [0.5, 0.5, 0.0]}, cols)
    returns = _frame(
        {D[1]: [np.nan, 0.10, np.nan], D[2]: [0.04, np.nan, 0.5], D[3]: [0.0, 0.0, 0.0]},
        cols,
    )
    res = run_backtest(targets, returns, end=D[3], cost_bps=0.0)
    # c is never held, so its NaN is not counted: 1 (a on day 1) + 1 (b on day 2).
    assert res.missing_returns == 2
    # Day 1: 0.5·0 + 0.5·0.1 = 0.05; drift → [0.5, 0.55] / 1.05.
    # Day 2: (0.5/1.05)·0.04 + (0.55/1.05)·0 = 0.02/1.05.
    np.testing.assert_allclose(res.returns_gross.to_numpy(), [0.05, 0.02 / 1.05, 0.0], rtol=1e-12)


@pytest.mark.parametrize(
    ("targets", "returns", "match"),
    [
        (_frame({D[0]: [0.5, 0.4]}), _frame({D[1]: [0, 0], D[2]: [0, 0]}), "sum to"),
        (_frame({D[0]: [1.2, -0.2]}), _frame({D[1]: [0, 0], D[2]: [0, 0]}), "long-only"),
        (_frame({D[0]: [0.5, 0.5]}), _frame({D[1]: [0], D[2]: [0]}, ["a"]), r"no returns for \['b'\]"),
        (_frame({D[0]: [0.5, 0.5]}), _frame({D[1]: [0, 0]}), "miss day"),
        (_frame({D[0]: [0.5, 0.5]}), _frame({D[1]: [0, 0], D[3]: [0, 0]}), "miss day"),
        (_frame({D[2]: [0.5, 0.5]}), _frame({D[1]: [0, 0], D[2]: [0, 0]}), "no target weights"),
    ],
)
def test_validation_errors(targets, returns, match):
    with pytest.raises(DataValidationError, match=match):
        run_backtest(targets, returns, end=D[2])


@st.composite
def scenarios(draw):
    n_assets = draw(st.integers(1, 4))
    n_days = draw(st.integers(2, 15))
    cols = [f"c{i}" for i in range(n_assets)]
    days = pd.date_range("2024-01-01", periods=n_days + 1, freq="D")
    rets = draw(
        st.lists(
            st.lists(st.floats(-0.9, 2.0, allow_nan=False), min_size=n_assets, max_size=n_assets),
            min_size=n_days,
            max_size=n_days,
        )
    )
    returns = pd.DataFrame(rets, index=days[1:], columns=cols)
    decision_days = [0, *draw(st.sets(st.integers(1, n_days - 1), max_size=n_days - 1))]
    rows = []
    for _ in decision_days:
        raw = draw(st.lists(st.floats(0.0, 1.0), min_size=n_assets, max_size=n_assets))
        raw = np.asarray(raw) + np.eye(n_assets)[draw(st.integers(0, n_assets - 1))]  # never all zero
        rows.append(raw / raw.sum())
    targets = pd.DataFrame(rows, index=days[sorted(decision_days)], columns=cols)
    cost = draw(st.sampled_from([0.0, 10.0, 50.0]))
    return targets, returns, days[-1], cost


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_properties(scenario):
    targets, returns, end, cost = scenario
    res = run_backtest(targets, returns, end=end, cost_bps=cost)
    h = res.holdings.to_numpy()
    np.testing.assert_allclose(h.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert (h >= 0).all()
    assert len(res.returns_gross) == len(returns)
    # Net ≤ gross on rebalance days (costs only reduce), net == gross on the other days.
    traded = res.returns_gross.index.isin(targets.index + pd.Timedelta(days=1))
    assert (res.returns_net[traded] <= res.returns_gross[traded] + 1e-15).all()
    np.testing.assert_allclose(res.returns_net[~traded], res.returns_gross[~traded], rtol=0, atol=1e-15)
    # 1 + net = (1 − cost)(1 + gross) with the cost of the decision taken the evening before.
    cost_by_day = res.costs.set_axis(res.costs.index + pd.Timedelta(days=1)).reindex(res.returns_net.index)
    np.testing.assert_allclose(
        1 + res.returns_net, (1 - cost_by_day.fillna(0.0)) * (1 + res.returns_gross), rtol=1e-12
    )
    assert (res.turnover >= 0).all() and (res.turnover <= 2 + 1e-12).all()
    assert res.turnover.iloc[0] == pytest.approx(1 / (1 + cost / 1e4))
    np.testing.assert_allclose(res.costs, res.turnover * cost / 1e4, rtol=1e-12, atol=0)
    # Holdings on a day after a decision are exactly the target.
    for d, row in targets.iterrows():
        np.testing.assert_allclose(res.holdings.loc[d + pd.Timedelta(days=1)], row.to_numpy(), atol=1e-15)


def test_rebalance_cost_known_answer():
    # Swap everything: c = r (|1 − c| + 1) = r (2 − c) → c = 2r / (1 + r).
    r = 0.003
    assert rebalance_cost(np.array([1.0, 0.0]), np.array([0.0, 1.0]), r) == pytest.approx(
        2 * r / (1 + r), rel=1e-15
    )
    # Nothing to trade costs nothing.
    assert rebalance_cost(np.array([0.4, 0.6]), np.array([0.4, 0.6]), r) == 0.0


def test_slippage_is_charged_like_costs(hand):
    targets, returns = hand
    both = run_backtest(targets, returns, end=D[4], cost_bps=10.0, slippage_bps=15.0)
    pd.testing.assert_series_equal(
        both.returns_net, run_backtest(targets, returns, end=D[4], cost_bps=25.0).returns_net
    )
    assert both.costs.iloc[0] == pytest.approx(0.0025 / 1.0025, rel=1e-14)
    without = run_backtest(targets, returns, end=D[4], cost_bps=10.0)
    assert (both.returns_net.iloc[0] < without.returns_net.iloc[0]) and both.costs.iloc[
        1
    ] > without.costs.iloc[1]


def test_cash_sleeve_earns_the_cash_rate(hand):
    # Half in a, half cash at 3.65%/yr = 1e-4 a day; no costs.
    targets = _frame({D[0]: [0.5, 0.0]})
    _, returns = hand
    res = run_backtest(targets, returns, end=D[2], cost_bps=0.0, allow_cash=True, cash_rate=0.0365)
    # Day 1: 0.5·0.10 + 0.5·1e-4 = 0.05005; drift: a = 0.55/1.05005, cash = 0.50005/1.05005.
    # Day 2: a earns 0 → gross = 0.50005/1.05005 · 1e-4.
    np.testing.assert_allclose(res.returns_gross, [0.05005, 0.50005 / 1.05005 * 1e-4], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(res.holdings.sum(axis=1), [0.5, 0.55 / 1.05005], rtol=1e-13)
    with pytest.raises(DataValidationError, match="allow_cash"):
        run_backtest(targets, returns, end=D[2])
    with pytest.raises(DataValidationError, match="sum to"):
        run_backtest(_frame({D[0]: [0.7, 0.7]}), returns, end=D[2], allow_cash=True)


@pytest.mark.slow
@pytest.mark.parametrize("allow_cash", [False, True])
def test_equity_matches_vectorbt(allow_cash):
    """vectorbt Portfolio.from_orders (target percent w*(1 − c_t), fees, shared cash) gives our equity.

    vectorbt books the fee at the trade's close, we on the first day the new weights earn, so its
    value on a decision day equals ours times ``1 - c_t``. Slow only for numba's first compile.
    """
    vbt = pytest.importorskip("vectorbt")
    rng = np.random.default_rng(11)
    n, n_days = 6, 120
    days = pd.date_range("2023-01-01", periods=n_days + 1, freq="D")
    cols = [f"c{i}" for i in range(n)]
    returns = pd.DataFrame(rng.normal(0.001, 0.05, (n_days, n)), index=days[1:], columns=cols)
    decisions = days[:-1][::7]
    w = rng.random((len(decisions), n))
    w[rng.random(w.shape) < 0.4] = 0.0  # names dropped and re-bought
    w[:, 0] += 0.05
    w /= w.sum(axis=1, keepdims=True)
    if allow_cash:
        w *= rng.uniform(0.5, 1.0, size=(len(decisions), 1))
    targets = pd.DataFrame(w, index=decisions, columns=cols)
    res = run_backtest(targets, returns, days[-1], cost_bps=10.0, slippage_bps=5.0, allow_cash=allow_cash)

    prices = pd.concat([pd.DataFrame(1.0, index=days[:1], columns=cols), (1 + returns).cumprod()])
    size = pd.DataFrame(np.nan, index=days, columns=cols)
    size.loc[decisions] = targets.mul(1 - res.costs, axis=0).to_numpy()
    pf = vbt.Portfolio.from_orders(
        prices,
        size=size,
        size_type="targetpercent",
        fees=15.0 / 1e4,
        init_cash=1.0,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        freq="1D",
        min_size=0.0,
    )
    theirs = pf.value().loc[days[1:]]
    ours = (1 + res.returns_net).cumprod() * (1 - res.costs.reindex(days[1:]).fillna(0.0))
    np.testing.assert_allclose(theirs.to_numpy(), ours.to_numpy(), rtol=1e-12, atol=0)
    assert res.costs.iloc[0] > 0 and (res.turnover.iloc[1:] > 0.1).all()


def _share_simulation(targets: pd.DataFrame, returns: pd.DataFrame, rate: float) -> np.ndarray:
    """Equity after each day by the book: shares at prices ``prod(1 + r)``, cash, trades at decisions."""
    prices = np.vstack([np.ones(returns.shape[1]), np.cumprod(1 + returns.to_numpy(), axis=0)])
    decisions = {returns.index.get_loc(d) + 1 if d in returns.index else 0: w for d, w in targets.iterrows()}
    shares, cash, equity = np.zeros(returns.shape[1]), 1.0, []
    for i, price in enumerate(prices):
        value = cash + shares @ price
        if i in decisions:
            w = decisions[i].to_numpy()
            c = rebalance_cost(w, shares * price / value, rate)
            shares = w * (1 - c) * value / price
            cash = value * (1 - c) - shares @ price
            value = cash + shares @ price
        equity.append(value)
    return np.array(equity[1:])


def test_long_run_equals_a_share_by_share_simulation():
    """3,000 days, weekly rebalancing with costs: the vectorised drift (exp of cumulative log growth
    per segment) keeps the equity of a plain share/cash simulation to ~1e-13 (no drift in precision)."""
    rng = np.random.default_rng(5)
    n_days, n = 3_000, 8
    days = pd.date_range("2000-01-01", periods=n_days + 1, freq="D")
    returns = pd.DataFrame(rng.normal(0.0003, 0.03, (n_days, n)), index=days[1:], columns=list("abcdefgh"))
    w = rng.random((len(days[:-1][::7]), n))
    w[rng.random(w.shape) < 0.3] = 0.0
    w[:, 0] += 0.01
    targets = pd.DataFrame(w / w.sum(axis=1, keepdims=True), index=days[:-1][::7], columns=returns.columns)
    res = run_backtest(targets, returns, days[-1], cost_bps=10.0, slippage_bps=5.0)
    ours = (1 + res.returns_net).cumprod() * (1 - res.costs.reindex(days[1:]).fillna(0.0))
    np.testing.assert_allclose(
        ours.to_numpy(), _share_simulation(targets, returns, 15e-4), rtol=1e-11, atol=0
    )


def test_drift_weights_follow_the_engine(hand):
    targets, returns = hand
    # Weights held after the day-0 trade, drifted over days 1-2, equal the engine's holdings on day 3.
    res = run_backtest(targets.iloc[:1], returns, end=D[4], cost_bps=0.0)
    drifted = drift_weights(targets.iloc[0], returns.loc[D[1] : D[2]])
    np.testing.assert_allclose(drifted.to_numpy(), res.holdings.loc[D[3]].to_numpy(), rtol=1e-14)
    np.testing.assert_allclose(drifted.to_numpy(), [0.55 / 1.09, 0.54 / 1.09], rtol=1e-14)
    # Half in cash at 0 %: a grows to 0.55, cash stays 0.5 → a = 0.55 / 1.05.
    half = drift_weights(pd.Series([0.5, 0.0], index=AB), returns.loc[D[1] : D[1]])
    np.testing.assert_allclose(half.to_numpy(), [0.55 / 1.05, 0.0], rtol=1e-14)
