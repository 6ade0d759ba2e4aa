"""Asset categories, used to keep non-crypto assets out of risky universes.

Categories are canonical strings: ``crypto``, ``stablecoin``, ``gold``,
``tokenized_fund``, ``wrapped`` and ``liquid_staking``. Wrapped, bridged and liquid-staking
tokens are claims on another coin (WBTC on BTC, stETH on ETH): a universe holding both would
count the underlying twice, so the default quality rules exclude them. A source's own
category text (for example CoinGecko's "gold-backed token") is mapped with
:func:`canonical_category`; coins a source does not describe get :data:`KNOWN_NON_CRYPTO` or,
failing that, ``crypto``.
"""

from __future__ import annotations

__all__ = ["CATEGORIES", "KNOWN_NON_CRYPTO", "canonical_category", "default_category", "resolve_category"]

CATEGORIES = ("crypto", "stablecoin", "gold", "tokenized_fund", "wrapped", "liquid_staking")

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
    **{
        s: "wrapped"
        for s in (
            "wbtc weth wbnb wtrx wavax wmatic wsol wbeth btcb cbbtc tbtc lbtc solvbtc fbtc renbtc "
            "hbtc wbch weeth beth"
        ).split()
    },
    **{
        s: "liquid_staking"
        for s in (
            "steth wsteth reth cbeth meth sweth ankreth oseth lseth sfrxeth frxeth ezeth rseth "
            "jitosol msol stsol bnsol jupsol bbsol bsol stbnb ankrbnb "
            "susde stkaave"
        ).split()
    },
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
    if "wrapped" in t or "bridged" in t:
        return "wrapped"
    if "staking" in t or "staked" in t or "restak" in t:
        return "liquid_staking"
    return "crypto"


def default_category(coin_id: str) -> str:
    """Category of a coin no metadata describes: the known list, else ``crypto``."""
    return KNOWN_NON_CRYPTO.get(coin_id.lower(), "crypto")


def resolve_category(coin_id: str, text: str | None = None) -> str:
    """The category of a coin from a source's text, where the known list overrides ``crypto``.

    A source that calls a wrapped or liquid-staking token plain "crypto" (or a store imported
    before the token was listed here) must not let it into a risky universe, so a coin id in
    :data:`KNOWN_NON_CRYPTO` keeps its listed category unless the text names another non-crypto one.

    >>> resolve_category("wbtc", "crypto")
    'wrapped'
    >>> resolve_category("btc", None)
    'crypto'
    """
    category = canonical_category(text)
    return default_category(coin_id) if category == "crypto" else category
