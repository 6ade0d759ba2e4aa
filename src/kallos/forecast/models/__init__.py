"""Forecaster plug-ins: one module per model family, each exposing ``SPECS``.

See :mod:`kallos.forecast.registry`, which lists them.
"""
