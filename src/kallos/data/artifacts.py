"""Model artifacts on disk without pickle: tensors in safetensors, metadata in JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

__all__ = ["load_model_state", "save_model_state"]


def save_model_state(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` (the state_dict) and ``<path>.json`` (scalers, config, training log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = path.with_suffix(".safetensors")
    info = path.with_suffix(".json")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(weights))
    info.write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    return weights, info


def load_model_state(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`save_model_state` wrote (``path`` without suffix)."""
    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    return tensors, meta
