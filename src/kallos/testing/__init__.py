"""Test infrastructure: a local stand-in for the CoinGecko and Binance REST APIs.

Not part of any pipeline stage: only the test suite (and offline demos) import it, and no module of
``kallos`` outside this package may (``tests/test_import_graph.py`` checks it).

* :class:`~kallos.testing.stub.MarketStub`: a stdlib HTTP server in a thread serving market data
  from in-memory tables, with injected faults (429, 500, slow, malformed, empty, overlapping pages).
* :class:`~kallos.testing.spot.SpotExchange`: a Binance spot trading venue in memory (signed
  requests checked, filters, balances, order faults), served by ``MarketStub(spot=...)``.
"""

from kallos.testing.spot import SPOT_ROUTES, SpotExchange, SpotMarket, SpotRefusal, symbol_info
from kallos.testing.stub import MarketStub, StubRequest

__all__ = [
    "SPOT_ROUTES",
    "MarketStub",
    "SpotExchange",
    "SpotMarket",
    "SpotRefusal",
    "StubRequest",
    "symbol_info",
]
