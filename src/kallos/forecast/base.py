"""The forecaster interface shared by the GRU and the baselines.

Forecasters are scikit-learn estimators (:class:`sklearn.base.BaseEstimator`, as skfolio's
are): ``__init__`` only stores keyword hyper-parameters, ``get_params``/``set_params`` come
from scikit-learn, ``fit(...) -> self`` sets attributes ending in ``_``, ``predict`` has no
side effects, and :meth:`BaseForecaster.clone` (:func:`sklearn.base.clone`) gives an unfitted
copy for the next fold.

Look-ahead is impossible by construction: :meth:`BaseForecaster.fit` receives a
:class:`CoinHistory` and refuses one that holds any row after the fold's cutoff, so a
label that would cross the cutoff cannot even be computed; ``predict`` computes the
forecast for date ``t`` from rows up to ``t`` only (checked by the no-look-ahead test).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import pandas as pd
from sklearn.base import BaseEstimator, clone

from kallos.exceptions import DataValidationError
from kallos.features import compute_indicators
from kallos.features.labels import trailing_log_return
from kallos.forecast.walk_forward import Fold

__all__ = ["BaseForecaster", "CoinHistory", "check_cutoff", "coin_history", "daily_log_returns"]


@dataclass(frozen=True)
class CoinHistory:
    """Everything a forecaster may see about one coin, up to a date.

    Attributes
    ----------
    coin_id : the coin.
    close : cleaned daily close (USD) on a complete daily index; NaN where unknown.
    features : indicator features on the same index (see :mod:`kallos.features`).
    """

    coin_id: str
    close: pd.Series
    features: pd.DataFrame

    @property
    def last_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.close.index[-1])

    def upto(self, end: pd.Timestamp) -> CoinHistory:
        """The history as known at the close of ``end`` (later rows removed)."""
        end = pd.Timestamp(end)
        return CoinHistory(self.coin_id, self.close.loc[:end], self.features.loc[:end])


def coin_history(panel: Any, coin_id: str, end: pd.Timestamp) -> CoinHistory:
    """A coin's cleaned close and causal indicator features from a ``MarketPanel``, up to ``end``.

    ``panel`` is a :class:`kallos.data.panel.MarketPanel` (its ``bars`` and ``close``).
    """
    bars = panel.bars(coin_id).loc[:end]
    return CoinHistory(
        coin_id, panel.close[coin_id].loc[bars.index], compute_indicators(bars, coin_id=coin_id)
    )


def check_cutoff(history: CoinHistory, fold: Fold) -> None:
    """Refuse training ``history`` that reaches past ``fold.cutoff`` (look-ahead).

    Every path that trains a model calls this: :meth:`BaseForecaster.fit`, and
    :meth:`kallos.forecast.neural.NeuralForecaster.prepare` for stacked training.

    Raises
    ------
    DataValidationError
        Naming the coin, the last history date and the cutoff.
    """
    if history.last_date > fold.cutoff:
        raise DataValidationError(
            f"{history.coin_id}: training history ends {history.last_date.date()}, after the "
            f"fold cutoff {fold.cutoff.date()}; pass history.upto(fold.cutoff)"
        )


def daily_log_returns(close: pd.Series) -> pd.Series:
    """log(close_t / close_{t-1}); NaN where either close is unknown."""
    return trailing_log_return(close, 1)


class BaseForecaster(BaseEstimator, ABC):
    """Forecasts the forward log return over ``horizon`` days of one coin.

    Subclasses implement :meth:`_fit` and :meth:`_predict`.
    """

    name: ClassVar[str]
    #: Heavy forecasters are trained in worker processes by the walk-forward driver.
    parallel: ClassVar[bool] = False

    def clone(self, **overrides: Any) -> Self:
        """An unfitted copy with the same hyper-parameters (``overrides`` replace some)."""
        return clone(self).set_params(**overrides) if overrides else clone(self)

    def fit(self, history: CoinHistory, fold: Fold) -> Self:
        """Fit on ``history``, which must end at or before ``fold.cutoff``.

        Raises
        ------
        DataValidationError
            If ``history`` holds any row after the cutoff (look-ahead).
        InsufficientDataError
            If too few training samples remain.
        """
        check_cutoff(history, fold)
        self._fit(history, fold)
        self.cutoff_ = fold.cutoff
        return self

    def predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series:
        """Forecast the ``horizon``-day forward log return at the close of each of ``dates``.

        The forecast for date ``t`` uses rows of ``history`` up to ``t`` only.

        Returns
        -------
        pd.Series indexed by ``dates``: forward log return over ``horizon`` days (not
        annualised); NaN where the history is too short.
        """
        dates = pd.DatetimeIndex(dates)
        if len(dates) and dates.max() > history.last_date:
            raise DataValidationError(
                f"{history.coin_id}: cannot forecast at {dates.max().date()}, history ends "
                f"{history.last_date.date()}"
            )
        return self._predict(history, dates).rename(self.name)

    @abstractmethod
    def _fit(self, history: CoinHistory, fold: Fold) -> None: ...

    @abstractmethod
    def _predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series: ...

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({params})"
