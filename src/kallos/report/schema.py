"""Validate a ``results.json`` document against the JSON Schema shipped with the package."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from kallos.exceptions import DataValidationError

__all__ = ["SCHEMA_FILE", "ResultsSchemaError", "results_schema", "validate_results"]

SCHEMA_FILE = "results.schema.json"


class ResultsSchemaError(DataValidationError):
    """A results document does not match ``results.schema.json`` (the message names the JSON path)."""


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The Draft 2020-12 schema of ``results.json`` (``kallos/report/results.schema.json``)."""
    text = resources.files("kallos.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def _path(error: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def validate_results(results: Mapping[str, Any]) -> None:
    """Check ``results`` against the shipped schema.

    Parameters
    ----------
    results : mapping
        The JSON-ready document (as :func:`kallos.pipeline.results.build_results` returns it).

    Raises
    ------
    ResultsSchemaError
        On the first (most relevant) violation, e.g.
        ``results.json invalid at $.strategies.gru/max_sharpe.metrics_net: ...``; the full list of
        violations follows on further lines.
    """
    validator = Draft202012Validator(results_schema())
    errors = sorted(validator.iter_errors(results), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    first = best_match(errors)
    lines = [f"results.json invalid at {_path(first)}: {first.message}"]
    lines += [f"  also at {_path(e)}: {e.message}" for e in errors if e is not first][:20]
    raise ResultsSchemaError("\n".join(lines))
