"""Client-side rate limiting and the retry policy shared by the live clients (tenacity).

Every attempt, retried ones included, passes the rate limiter (CoinGecko counts failed calls
against the per-minute quota). Retries cover :class:`TransientError` only; a ``Retry-After``
header is honoured (capped), otherwise the wait is exponential with jitter. The whole call is
bounded by ``max_attempts`` *and* ``max_total_s`` (tenacity ``stop_after_attempt`` |
``stop_before_delay``), so a dead provider fails in bounded time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from kallos.data.live.errors import LiveSourceError, TransientError

__all__ = ["RateLimiter", "RetryPolicy", "call_with_retries", "parse_retry_after"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a live client tries.

    Attributes
    ----------
    calls_per_minute : client-side rate limit (0 = unlimited). CoinGecko Demo allows 30-100/min.
    timeout_s : per-request timeout in seconds (connect and read).
    max_attempts : attempts per request, the first included.
    max_total_s : wall-clock bound for one request including all waits.
    backoff_initial_s, backoff_max_s : exponential backoff (with jitter) when the server gives no
        ``Retry-After``.
    retry_after_max_s : cap on an honoured ``Retry-After``.
    empty_retries : how many times an empty page is asked again before it is taken as "no data".
    """

    calls_per_minute: float = 30.0
    timeout_s: float = 30.0
    max_attempts: int = 6
    max_total_s: float = 300.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 120.0
    empty_retries: int = 1

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.timeout_s <= 0 or self.max_total_s <= 0 or self.calls_per_minute < 0:
            raise LiveSourceError(f"invalid retry policy {self}")


class RateLimiter:
    """At most ``calls_per_minute`` calls, spaced evenly (thread-safe).

    ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        calls_per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval_s = 60.0 / calls_per_minute if calls_per_minute > 0 else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until the next call is allowed."""
        with self._lock:
            wait = self._next - self._clock()
            if wait > 0:
                self._sleep(wait)
            self._next = max(self._clock(), self._next) + self.interval_s


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _WaitRetryAfter(wait_base):
    """``Retry-After`` of the last error if it had one (capped), else the fallback wait."""

    def __init__(self, fallback: wait_base, cap_s: float) -> None:
        self.fallback, self.cap_s = fallback, cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return min(float(after), self.cap_s)
        return self.fallback(retry_state)


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    is_empty: Callable[[T], bool] | None = None,
) -> T:
    """Call ``fn`` under ``policy``; return its result.

    ``fn`` signals a retryable failure by raising :class:`TransientError`. If ``is_empty`` says a
    result is empty, it is asked again up to ``policy.empty_retries`` times, then accepted.

    Raises
    ------
    LiveSourceError
        When attempts or time run out (``what`` and the last reason in the message), or at once
        for a non-transient :class:`LiveSourceError` raised by ``fn``.
    """
    empties = [0]

    def retry_empty(result: T) -> bool:
        if is_empty is None or not is_empty(result) or empties[0] >= policy.empty_retries:
            return False
        empties[0] += 1
        return True

    retrying = Retrying(
        retry=retry_if_exception_type(TransientError) | retry_if_result(retry_empty),
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.max_total_s),
        wait=_WaitRetryAfter(
            wait_exponential_jitter(multiplier=policy.backoff_initial_s, max=policy.backoff_max_s),
            policy.retry_after_max_s,
        ),
        sleep=sleep,
        reraise=True,
        retry_error_callback=lambda rs: rs.outcome.result(),  # an empty page after its retries
    )
    try:
        return retrying(fn)
    except TransientError as err:
        raise LiveSourceError(
            f"{what}: gave up after {policy.max_attempts} attempt(s) / {policy.max_total_s:g} s: {err}"
        ) from None
