"""Model artifacts on disk without pickle: tensors in safetensors, metadata in JSON.

A model artifact is a pair of files, ``<stem>.safetensors`` (the state_dict) and ``<stem>.json``
(scalers, config, training log). Two layouts use it:

* a named pair at a path of the caller's choice (:func:`save_model_state`, :func:`load_model_state`);
* a **content-addressed** store under a root directory (the model registry's artifact directory):
  ``<root>/<id[:2]>/<id>.safetensors`` + ``<id>.json``, where ``id`` is the artifact hash
  (:func:`artifact_hash`, sha256 over the two files' bytes). :func:`put_model_state` writes there,
  atomically and idempotently; identical models are stored once.

A run directory holds no model files: its ``models.json`` (:data:`MANIFEST`) lists, for each
(forecaster, coin, fold), the artifact's hash, its path in the store and the sha256 of each file.
:func:`read_models_manifest` reads it back; :meth:`RunModels.load` verifies a model's bytes
against the manifest before deserialising them and names the file and the fix when they differ.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as load_bytes
from safetensors.numpy import load_file
from safetensors.numpy import save as save_bytes

from kallos.exceptions import KallosError

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "ArtifactRef",
    "ModelArtifactError",
    "ModelReference",
    "RunModels",
    "artifact_hash",
    "content_stem",
    "decode_model_state",
    "encode_model_state",
    "load_model_state",
    "put_model_state",
    "read_models_manifest",
    "save_model_state",
    "write_models_manifest",
]

#: The run directory's model manifest.
MANIFEST = "models.json"
#: ``format`` of :data:`MANIFEST` (bumped on an incompatible change).
MANIFEST_FORMAT = "kallos.run-models/1"
_SUFFIXES = {"safetensors": ".safetensors", "json": ".json"}


class ModelArtifactError(KallosError):
    """A model artifact a run references is missing or its bytes differ from the recorded hash."""


def encode_model_state(tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[bytes, bytes]:
    """The bytes of ``<stem>.safetensors`` and ``<stem>.json`` for a model state (deterministic)."""
    weights = save_bytes({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    info = json.dumps(meta, indent=1, sort_keys=True, default=str).encode("utf-8")
    return weights, info


def decode_model_state(weights: bytes, info: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The state (tensors, meta) of the bytes :func:`encode_model_state` returns."""
    return load_bytes(weights), json.loads(info.decode("utf-8"))


def save_model_state(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` (the state_dict) and ``<path>.json`` (scalers, config, training log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = path.with_suffix(".safetensors")
    info = path.with_suffix(".json")
    blob, text = encode_model_state(tensors, meta)
    weights.write_bytes(blob)
    info.write_bytes(text)
    return weights, info


def load_model_state(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`save_model_state` wrote (``path`` without suffix)."""
    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    return tensors, meta


def artifact_hash(weights: bytes, info: bytes) -> str:
    """sha256 of ``weights || 0x00 || info || 0x00``: the artifact's id in the content-addressed store.

    The same digest the model registry records as ``artifact_hash`` (also for artifacts stored
    before the store was content-addressed).
    """
    h = hashlib.sha256()
    for part in (weights, info):
        h.update(part)
        h.update(b"\x00")
    return h.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_stem(root: Path, digest: str) -> Path:
    """``<root>/<digest[:2]>/<digest>``: where the store keeps the artifact ``digest`` (no suffix)."""
    return Path(root) / digest[:2] / digest


@dataclass(frozen=True)
class ArtifactRef:
    """One artifact in a content-addressed store.

    artifact_hash : :func:`artifact_hash` of the two files (the id).
    path : the stem relative to the store's root, ``<id[:2]>/<id>`` (POSIX separators).
    sha256 : plain sha256 hex digest of each file's bytes, by kind (``safetensors``, ``json``);
        ``sha256sum <root>/<path>.safetensors`` prints the first.
    n_bytes : each file's size in bytes, by kind.
    """

    artifact_hash: str
    path: str
    sha256: Mapping[str, str]
    n_bytes: Mapping[str, int]

    @classmethod
    def of(cls, weights: bytes, info: bytes) -> ArtifactRef:
        digest = artifact_hash(weights, info)
        return cls(
            digest,
            f"{digest[:2]}/{digest}",
            {"safetensors": _sha256(weights), "json": _sha256(info)},
            {"safetensors": len(weights), "json": len(info)},
        )

    def files(self, root: Path) -> dict[str, Path]:
        """The two files' paths under ``root``, by kind."""
        stem = Path(root) / self.path
        return {kind: stem.with_suffix(suffix) for kind, suffix in _SUFFIXES.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact_hash": self.artifact_hash,
            "path": self.path,
            "sha256": dict(self.sha256),
            "bytes": dict(self.n_bytes),
        }


def _intact(path: Path, sha256: str) -> bool:
    try:
        return _sha256(path.read_bytes()) == sha256
    except FileNotFoundError:
        return False


def put_model_state(root: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> ArtifactRef:
    """Store a model state under ``root`` by content (module docstring); return its reference.

    Idempotent: an intact copy is left alone, a missing or altered one is (re)written. Each file
    is written to a hidden ``.partial-*`` file beside its final name and renamed into place,
    the ``.json`` first, so a ``.safetensors`` file is only ever seen complete and with its
    metadata; a failure removes the partial files.
    """
    weights, info = encode_model_state(tensors, meta)
    ref = ArtifactRef.of(weights, info)
    files = ref.files(root)
    shard = files["json"].parent
    shard.mkdir(parents=True, exist_ok=True)
    for kind, data in (("json", info), ("safetensors", weights)):
        target = files[kind]
        if _intact(target, ref.sha256[kind]):
            continue
        fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=target.suffix, dir=shard)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return ref


@dataclass(frozen=True)
class ModelReference:
    """A run's model: ``forecaster`` for ``coin_id`` fitted in the fold ``fold`` (its cutoff date)."""

    forecaster: str
    coin_id: str
    fold: str
    artifact: ArtifactRef

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.forecaster, self.coin_id, self.fold)

    def as_dict(self) -> dict[str, Any]:
        return {
            "forecaster": self.forecaster,
            "coin_id": self.coin_id,
            "fold": self.fold,
            **self.artifact.as_dict(),
        }


_FIX_MISSING = (
    "If the artifact directory was moved, load with artifact_dir=<its new location>; otherwise re-run "
    "the study that made this run (same configuration, same database): the registry retrains the "
    "model, deterministically, and stores it again under the same hash."
)
_FIX_ALTERED = (
    "Restore the file from a backup, or delete it and re-run the study that made this run (same "
    "configuration, same database): the registry retrains the model and stores the recorded bytes again."
)


@dataclass(frozen=True)
class RunModels:
    """The models a run directory references (its :data:`MANIFEST`).

    run_dir : the run directory.
    artifact_dir : the registry's artifact directory when the run was written (None without models).
    models : one reference per (forecaster, coin_id, fold), in job order.
    """

    run_dir: Path
    artifact_dir: Path | None
    models: tuple[ModelReference, ...]

    def find(self, forecaster: str, coin_id: str, fold: str) -> ModelReference:
        """The reference of one model.

        Raises
        ------
        KeyError
            If the run holds no such model.
        """
        for ref in self.models:
            if ref.key == (forecaster, coin_id, fold):
                return ref
        raise KeyError(f"{self.run_dir / MANIFEST}: no model {forecaster}/{coin_id}/{fold}")

    def load(
        self, ref: ModelReference, artifact_dir: str | Path | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The state (tensors, meta) of ``ref``, after checking both files against the manifest.

        ``artifact_dir`` replaces the recorded artifact directory (e.g. after moving it).

        Raises
        ------
        ModelArtifactError
            If a file is missing or its sha256 differs from the manifest's; the message names the
            file, the run and how to fix it.
        """
        root = Path(artifact_dir) if artifact_dir is not None else self.artifact_dir
        if root is None:
            raise ModelArtifactError(
                f"{self.run_dir / MANIFEST}: no artifact_dir recorded; pass artifact_dir"
            )
        name = "/".join(ref.key)
        data: dict[str, bytes] = {}
        for kind, path in ref.artifact.files(root).items():
            try:
                data[kind] = path.read_bytes()
            except FileNotFoundError:
                raise ModelArtifactError(
                    f"{path}: missing; run {self.run_dir} references it for model {name} "
                    f"(sha256 {ref.artifact.sha256[kind]}). {_FIX_MISSING}"
                ) from None
            got = _sha256(data[kind])
            if got != ref.artifact.sha256[kind]:
                raise ModelArtifactError(
                    f"{path}: altered; its sha256 is {got} but run {self.run_dir} recorded "
                    f"{ref.artifact.sha256[kind]} for model {name}. {_FIX_ALTERED}"
                )
        return decode_model_state(data["safetensors"], data["json"])


def write_models_manifest(run_dir: Path, artifact_dir: Path | None, models: Iterable[ModelReference]) -> Path:
    """Write ``<run_dir>/models.json`` (format :data:`MANIFEST_FORMAT`); return its path.

    Keys: ``format``; ``artifact_dir`` (absolute, or null without models); ``hash`` (how the
    digests are computed); ``models``: one object per model with ``forecaster``, ``coin_id``,
    ``fold`` (the cutoff date), ``artifact_hash``, ``path`` (relative to ``artifact_dir``, without
    suffix), ``sha256`` and ``bytes`` (each by file kind, ``safetensors`` and ``json``).
    """
    doc = {
        "format": MANIFEST_FORMAT,
        "artifact_dir": None if artifact_dir is None else str(artifact_dir),
        "hash": "sha256: each file's own digest; artifact_hash: sha256(safetensors || 0x00 || json || 0x00)",
        "models": [m.as_dict() for m in models],
    }
    path = Path(run_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def read_models_manifest(run_dir: str | Path) -> RunModels:
    """The models ``run_dir`` references (:func:`write_models_manifest`).

    Raises
    ------
    ModelArtifactError
        If the run directory has no ``models.json`` (e.g. written before runs referenced the
        registry: it then has a ``models/`` folder of its own) or the file is not a manifest.
    """
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not path.is_file():
        legacy = (
            " (this run predates models.json: its models are files under models/)"
            if (run_dir / "models").is_dir()
            else ""
        )
        raise ModelArtifactError(f"{path}: missing; not a run directory with a model manifest{legacy}")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != MANIFEST_FORMAT:
        raise ModelArtifactError(f"{path}: format {doc.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    models = tuple(
        ModelReference(
            m["forecaster"],
            m["coin_id"],
            m["fold"],
            ArtifactRef(m["artifact_hash"], m["path"], m["sha256"], m["bytes"]),
        )
        for m in doc["models"]
    )
    root = doc.get("artifact_dir")
    return RunModels(run_dir, None if root is None else Path(root), models)
