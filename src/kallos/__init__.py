"""Kallos: do GRU return forecasts build better crypto portfolios than simple estimates, after costs?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kallos")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
