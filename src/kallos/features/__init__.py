"""Features stage: causal, scale-free technical indicators and forward-return labels.

A feature at date ``t`` uses bars up to and including ``t``; a label starts strictly after ``t``.
"""

from kallos.features.indicators import (
    FAMILIES,
    FEATURE_FAMILIES,
    FEATURE_NAMES,
    INDICATORS,
    BarArrays,
    IndicatorSpec,
    compute_indicators,
    warmup_days,
)
from kallos.features.labels import forward_log_return, trailing_log_return

__all__ = [
    "FAMILIES",
    "FEATURE_FAMILIES",
    "FEATURE_NAMES",
    "INDICATORS",
    "BarArrays",
    "IndicatorSpec",
    "compute_indicators",
    "forward_log_return",
    "trailing_log_return",
    "warmup_days",
]
