"""Asset categories, used to keep non-crypto assets out of risky universes.

Categories are canonical strings: ``crypto``, ``stablecoin``, ``gold``,
``tokenized_fund`` and ``wrapped``. A source's own category text (for example
CoinGecko's "gold-backed token") is mapped with :func:`canonical_category`; coins a
source does not describe get :data:`KNOWN_NON_CRYPTO` or, failing that, ``crypto``.
"""

from __future__ import annotations

__all__ = ["CATEGORIES", "KNOWN_NON_CRYPTO", "canonical_category", "default_category"]

CATEGORIES = ("crypto", "stablecoin", "gold", "tokenized_fund", "wrapped")

# Lower-case coin ids / tickers of well-known non-crypto tokens.
KNOWN_NON_CRYPTO: dict[str, str] = {
    **{
        s: "stablecoin"
        for s in (
            "usdt usdc dai busd tusd usdp gusd usdd fdusd pyusd usde usds usd1 usdf usdg ust "
            "frax lusd eurs eurc susd usdn husd usdj usdx rlusd usdb usdy"
        ).split()
    },
    **{s: "gold" for s in ("paxg", "xaut", "dgx", "kau")},
    **{s: "tokenized_fund" for s in ("buidl", "figr_heloc", "ousg", "benji", "usyc")},
    **{s: "wrapped" for s in ("wbtc", "weth", "steth", "wsteth", "cbbtc", "weeth", "wbeth", "btcb")},
}


def canonical_category(text: str | None) -> str:
    """Map a source's free-text category to a canonical one.

    >>> canonical_category("gold-backed token")
    'gold'
    >>> canonical_category("exchange token")
    'crypto'
    """
    t = (text or "").strip().lower()
    if not t:
        return "crypto"
    if "stable" in t:
        return "stablecoin"
    if "gold" in t:
        return "gold"
    if "fund" in t or "rwa" in t or "tokenized" in t or "tokenised" in t:
        return "tokenized_fund"
    if "wrapped" in t:
        return "wrapped"
    return "crypto"


def default_category(coin_id: str) -> str:
    """Category of a coin no metadata describes: the known list, else ``crypto``."""
    return KNOWN_NON_CRYPTO.get(coin_id.lower(), "crypto")
