"""A local stand-in for the CoinGecko and Binance REST APIs (stdlib ``http.server``, in a thread).

Used by the test suite and for offline demos: it serves ``/api/v3/coins/{id}/market_chart/range``
and ``/api/v3/exchangeInfo`` + ``/api/v3/klines`` from in-memory tables on 127.0.0.1, logs every
request, and injects faults on request: ``429`` (with ``Retry-After``), ``500``, ``slow`` (answers
after ``slow_s``), ``malformed`` (truncated JSON), ``empty`` (no points) and ``overlap`` (the page
starts ``overlap_days`` before the requested start). With a ``spot`` venue
(:class:`kallos.testing.spot.SpotExchange`) it also serves Binance's spot trading endpoints
(signed requests checked) and their faults (see that module).

Tables
------
coingecko : API id -> DataFrame with ``stamp`` (UTC timestamps), ``price``, ``market_cap``,
    ``total_volume`` (the CSV export's columns).
binance : pair (``BTCUSDT``) -> DataFrame with ``date`` (UTC days), ``open``, ``high``, ``low``,
    ``close``, ``volume`` (base units).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

from kallos.testing.spot import SIGNED, SPOT_ROUTES, SpotExchange, SpotRefusal, symbol_info

__all__ = ["MarketStub", "StubRequest"]

_DAY_MS = 86_400_000
ROUTES = ("cg_range", "bn_exchange_info", "bn_klines", *SPOT_ROUTES.values())


@dataclass(frozen=True)
class StubRequest:
    route: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    index: int
    method: str = "GET"


@dataclass
class MarketStub:
    """Serve CoinGecko- and Binance-shaped responses; see the module docstring.

    Attributes
    ----------
    api_key, key_header : if set, CoinGecko requests must carry this header (else 401, code 10002).
    demo_oldest : if set, a CoinGecko ``from`` earlier than this day answers 401 / error_code 10012.
    faults : route -> {index of the request on that route (0-based): fault name}.
    delays : route -> (first request index, seconds): requests from that index on are slowed.
    spot : the simulated spot venue behind the trading endpoints (None: no trading endpoints).
    """

    coingecko: dict[str, pd.DataFrame] = field(default_factory=dict)
    binance: dict[str, pd.DataFrame] = field(default_factory=dict)
    api_key: str | None = None
    key_header: str | None = None
    demo_oldest: dt.date | None = None
    faults: dict[str, dict[int, str]] = field(default_factory=dict)
    delays: dict[str, tuple[int, float]] = field(default_factory=dict)
    retry_after: str = "7"
    slow_s: float = 1.0
    overlap_days: int = 2
    requests: list[StubRequest] = field(default_factory=list)
    spot: SpotExchange | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MarketStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub._handle(self)

            def do_POST(self) -> None:
                stub._handle(self)

            def do_DELETE(self) -> None:
                stub._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MarketStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "stub not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def coingecko_url(self) -> str:
        return f"{self.url}/api/v3"

    def calls(self, route: str) -> list[StubRequest]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    # ------------------------------------------------------------------ dispatch
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(parts.query)) | dict(parse_qsl(body))
        path, method = parts.path, h.command
        if path.startswith("/api/v3/coins/") and path.endswith("/market_chart/range"):
            route = "cg_range"
        elif path == "/api/v3/exchangeInfo":
            route = "bn_exchange_info"
        elif path == "/api/v3/klines":
            route = "bn_klines"
        elif self.spot is not None and (method, path) in SPOT_ROUTES:
            route = SPOT_ROUTES[(method, path)]
        else:
            self._send(h, 404, {"error": f"no route {method} {path}"})
            return
        with self._lock:
            index = sum(1 for r in self.requests if r.route == route)
            headers = {k.lower(): v for k, v in h.headers.items()}
            self.requests.append(StubRequest(route, path, params, headers, index, method))
        fault = self.faults.get(route, {}).get(index)
        first_slow, delay = self.delays.get(route, (0, 0.0))
        if delay and index >= first_slow:
            time.sleep(delay)
        if fault == "slow":
            time.sleep(self.slow_s)
        elif fault == "429":
            self._send(h, 429, {"status": {"error_code": 429, "error_message": "rate limited"}},
                       {"Retry-After": self.retry_after})  # fmt: skip
            return
        elif fault == "500":
            self._send(h, 500, {"error": "internal"})
            return
        elif fault == "malformed":
            self._send_raw(h, 200, b'{"prices": [[16094592000')
            return
        if route in SPOT_ROUTES.values():
            self._spot(h, route, params, fault, parts.query, body)
            return
        try:
            answer = getattr(self, f"_{route}")(h, path, params, fault)
        except _Refusal as r:
            self._send(h, r.status, r.body)
            return
        self._send(h, 200, answer)

    def _spot(
        self,
        h: BaseHTTPRequestHandler,
        route: str,
        params: dict[str, str],
        fault: str | None,
        query: str,
        body: str,
    ) -> None:
        assert self.spot is not None
        try:
            if route in SIGNED:
                self.spot.check_signature({k.lower(): v for k, v in h.headers.items()}, query, body)
            answer = self.spot.handle(route, params, fault)
        except SpotRefusal as r:
            self._send(h, r.status, r.body)
            return
        if fault == "timeout_after_accept":
            time.sleep(self.slow_s)  # the venue has the order; its answer comes too late
        self._send(h, 200, answer)

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict | None = None) -> None:
        self._send_raw(h, status, json.dumps(body).encode(), headers)

    @staticmethod
    def _send_raw(h: BaseHTTPRequestHandler, status: int, raw: bytes, headers: dict | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    # ------------------------------------------------------------------ CoinGecko
    def _cg_range(
        self, h: BaseHTTPRequestHandler, path: str, params: dict[str, str], fault: str | None
    ) -> Any:
        if self.key_header and h.headers.get(self.key_header) != self.api_key:
            raise _Refusal(401, {"status": {"error_code": 10002, "error_message": "API key missing"}})
        lo_s, hi_s = int(params["from"]), int(params["to"])
        if self.demo_oldest is not None and dt.datetime.fromtimestamp(lo_s, dt.UTC).date() < self.demo_oldest:
            raise _Refusal(
                401,
                {
                    "error": {
                        "status": {
                            "error_code": 10012,
                            "error_message": "Your request exceeds the allowed time range. Public API users "
                            "are limited to querying historical data within the past 365 days.",
                        }
                    }
                },
            )
        api_id = path.split("/")[4]
        if api_id not in self.coingecko:
            raise _Refusal(404, {"error": "coin not found"})
        if fault == "empty":
            return {"prices": [], "market_caps": [], "total_volumes": []}
        if fault == "overlap":
            lo_s -= self.overlap_days * 86_400
        t = self.coingecko[api_id]
        ms = _epoch_ms(t["stamp"])
        sel = t[(ms >= lo_s * 1000) & (ms <= hi_s * 1000)]
        sel_ms = ms[sel.index]

        def pts(col: str) -> list[list[float]]:
            return [[int(m), float(v) if pd.notna(v) else 0.0] for m, v in zip(sel_ms, sel[col], strict=True)]

        return {
            "prices": pts("price"),
            "market_caps": pts("market_cap"),
            "total_volumes": pts("total_volume"),
        }

    # ------------------------------------------------------------------ Binance
    def _bn_exchange_info(self, h: BaseHTTPRequestHandler, path: str, params: dict, fault: str | None) -> Any:
        symbols = [symbol_info(pair, pair[:-4], pair[-4:], []) for pair in self.binance]
        if self.spot is not None:
            traded = self.spot.symbols()
            names = {t["symbol"] for t in traded}
            symbols = [s for s in symbols if s["symbol"] not in names] + traded
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "symbols": symbols,
        }

    def _bn_klines(
        self, h: BaseHTTPRequestHandler, path: str, params: dict[str, str], fault: str | None
    ) -> Any:
        pair = params.get("symbol", "")
        if pair not in self.binance:
            raise _Refusal(400, {"code": -1121, "msg": "Invalid symbol."})
        if fault == "empty":
            return []
        since = int(params.get("startTime", 0))
        if fault == "overlap":
            since -= self.overlap_days * _DAY_MS
        limit = int(params.get("limit", 500))
        t = self.binance[pair]
        ms = _epoch_ms(t["date"])
        sel = t[ms.to_numpy() >= since].head(limit)
        out = []
        for (_, r), m in zip(sel.iterrows(), ms[sel.index], strict=True):
            qv = r["volume"] * r["close"]
            out.append(
                [int(m), f"{r['open']}", f"{r['high']}", f"{r['low']}", f"{r['close']}", f"{r['volume']}",
                 int(m) + _DAY_MS - 1, f"{qv}", 100, "0", "0", "0"]
            )  # fmt: skip
        return out


def _epoch_ms(stamps: pd.Series) -> pd.Series:
    """Milliseconds since the epoch, whatever the datetime unit; naive stamps are UTC."""
    s = pd.to_datetime(stamps)
    if s.dt.tz is None:
        s = s.dt.tz_localize("UTC")
    return (s - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


class _Refusal(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body
