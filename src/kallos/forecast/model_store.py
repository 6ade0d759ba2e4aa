"""The model registry: trained models stored once, found again by content, reused instead of retrained.

One row per trained model in the ``model_registry`` table (:mod:`kallos.data.schema`) and one
artifact, stored by content (:func:`kallos.data.artifacts.put_model_state`):
``<artifact_dir>/<h[:2]>/<h>.safetensors`` (the network's state_dict, no pickle) and
``<h>.json`` (scaler, parameters, training log), ``h`` being the row's ``artifact_hash``.
Identical models are stored once, and a run directory references them by that hash
(its ``models.json``) instead of copying them. Artifacts stored before this layout
(``<artifact_dir>/<model_id>/model.safetensors`` + ``model.json``) are still found and loaded.

The artifact directory belongs to the store, not to a run's ``--out``: it is recorded in the
store's ``store_settings`` (key ``artifact_dir``) the first time a registry is opened
(``compute.artifact_dir``, else ``<out>/models``), and every later run against the same
database finds it there, whatever its ``--out``. Each row also records its artifact's absolute
path (the ``.safetensors`` file; a directory for the older layout), which a lookup tries first.

Keys, all sha256 hex digests:

* ``config_hash``: the model-relevant configuration of a walk-forward job: forecaster name,
  its hyper-parameters (:meth:`BaseForecaster.get_params` minus the device) including the
  per-job seed and horizon, and the fold's training and validation windows and cutoff
  (not the test end, which only says how far the forecasts are used).
* ``data_hash``: the training data slice, i.e. the coin's close and features up to the
  fold cutoff (everything a fit may read), hashed with :func:`pandas.util.hash_pandas_object`.
* ``artifact_hash``: the bytes of the two artifact files (:func:`kallos.data.artifacts.artifact_hash`);
  a lookup or load checks it, and an altered artifact counts as missing (the model is retrained
  and stored again).
* ``model_id``: sha256 of ``artifact_hash | config_hash | data_hash``.

A job whose (forecaster, coin, config_hash, data_hash) is registered and whose artifact is
on disk is served by loading the model and predicting (forecasts identical to a fresh fit:
fits are seeded and deterministic and the state round-trips exactly); every other job trains.
Only forecasters with ``to_state``/``load_state`` (the neural ones) are registered;
the cheap baselines always run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_

from kallos.compute import Engine
from kallos.data import schema
from kallos.data.artifacts import (
    ArtifactRef,
    ModelArtifactError,
    artifact_hash,
    content_stem,
    decode_model_state,
    load_model_state,
    put_model_state,
    read_models_manifest,
)
from kallos.data.store import Store
from kallos.features.labels import forward_log_return
from kallos.forecast.base import BaseForecaster, CoinHistory
from kallos.forecast.driver import ForecastJob, JobResult, run_jobs

__all__ = [
    "ModelRegistry",
    "RegistryStats",
    "job_config_hash",
    "job_data_hash",
    "load_run_model",
    "registrable",
    "run_jobs_with_registry",
]

log = logging.getLogger("kallos.models")
_ARTIFACT = "model"


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
        h.update(b"\x00")
    return h.hexdigest()


def registrable(forecaster: BaseForecaster) -> bool:
    """True for forecasters whose fitted state can be saved and loaded (``to_state``/``load_state``)."""
    return hasattr(forecaster, "to_state") and hasattr(forecaster, "load_state")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def job_config_hash(job: ForecastJob) -> str:
    """sha256 of the model-relevant config of ``job`` (see the module docstring)."""
    params = {k: _jsonable(v) for k, v in job.forecaster.get_params(deep=False).items() if k != "device"}
    f = job.fold
    windows = {
        k: getattr(f, k).date().isoformat()
        for k in ("cutoff", "train_start", "train_end", "validation_start", "validation_end")
    }
    blob = {"forecaster": job.forecaster.name, "params": params, "fold": windows, "horizon": f.horizon}
    return _sha256(json.dumps(blob, sort_keys=True, separators=(",", ":"), default=str).encode())


def _history_hash(history: CoinHistory) -> str:
    close = pd.util.hash_pandas_object(history.close, index=True).to_numpy()
    feats = pd.util.hash_pandas_object(history.features, index=True).to_numpy()
    cols = json.dumps([str(c) for c in history.features.columns]).encode()
    return _sha256(history.coin_id.encode(), close.tobytes(), feats.tobytes(), cols)


def job_data_hash(job: ForecastJob) -> str:
    """sha256 of the training data slice: the coin's close and features up to the fold cutoff."""
    return _history_hash(job.history.upto(job.fold.cutoff))


@dataclass(frozen=True)
class RegistryStats:
    """How a batch of jobs was served."""

    registrable: int
    reused: int
    trained: int

    def message(self) -> str:
        return f"reused {self.reused} of {self.registrable} models from the registry, trained {self.trained}"


def _validation_metrics(model: BaseForecaster, job: ForecastJob) -> dict[str, Any]:
    """RMSE and directional accuracy of the fitted model on the fold's validation block."""
    f = job.fold
    history = job.history.upto(f.cutoff)
    dates = history.close.loc[f.validation_start : f.validation_end].index
    label = forward_log_return(history.close, f.horizon).reindex(dates).to_numpy()
    pred = model.predict(history.upto(f.validation_end), dates).to_numpy()
    ok = np.isfinite(pred) & np.isfinite(label)
    out: dict[str, Any] = {"n": int(ok.sum())}
    if ok.any():
        out["rmse"] = float(np.sqrt(np.mean((label[ok] - pred[ok]) ** 2)))
        out["directional_accuracy"] = float(np.mean(np.sign(pred[ok]) == np.sign(label[ok])))
    return out


ARTIFACT_DIR_SETTING = "artifact_dir"


class ModelRegistry:
    """Registry rows in ``store`` and artifacts under ``root``.

    Parameters
    ----------
    store : the Kallos database (its ``model_registry`` table must exist: ``store.create_schema()``
        or the migrations).
    root : the artifact directory (see :meth:`for_store` for the one the store records).
    """

    def __init__(self, store: Store, root: str | Path) -> None:
        self.store = store
        self.root = Path(root)

    @classmethod
    def for_store(
        cls, store: Store, out_dir: str | Path, artifact_dir: str | Path | None = None
    ) -> ModelRegistry:
        """The registry of ``store`` with its recorded artifact directory (module docstring).

        ``artifact_dir`` (config ``compute.artifact_dir``) replaces the recorded directory and is
        recorded; without it the recorded one is used, or ``<out_dir>/models`` on first use.
        """
        recorded = store.setting(ARTIFACT_DIR_SETTING)
        if artifact_dir is not None:
            root = Path(artifact_dir).expanduser().resolve()
        elif recorded is not None:
            root = Path(recorded)
        else:
            root = (Path(out_dir) / "models").resolve()
        if str(root) != recorded:
            store.set_setting(ARTIFACT_DIR_SETTING, str(root))
        return cls(store, root)

    def artifact_dir(self, model_id: str) -> Path:
        """Where the older layout kept ``model_id`` (``<root>/<model_id>/model.*``); still read."""
        return self.root / model_id

    def artifact_stem(self, digest: str) -> Path:
        """Where the artifact with hash ``digest`` lives, without suffix: ``<root>/<digest[:2]>/<digest>``."""
        return content_stem(self.root, digest)

    # ------------------------------------------------------------------ reads
    def entries(self, coin_id: str | None = None, model_type: str | None = None) -> pd.DataFrame:
        """Registry rows, newest first (optionally one coin and/or one model type)."""
        t = schema.model_registry
        conds = []
        if coin_id:
            conds.append(t.c.coin_id == coin_id)
        if model_type:
            conds.append(t.c.model_type == model_type)
        frame = self.store.read_table(t, and_(*conds) if conds else None)
        return frame.sort_values(["created_at", "model_id"], ascending=[False, True], ignore_index=True)

    def lookup(self, job: ForecastJob) -> str | None:
        """The ``model_id`` registered for ``job`` whose artifact is on disk and intact, else None."""
        t = schema.model_registry
        where = and_(
            t.c.model_type == job.forecaster.name,
            t.c.coin_id == job.history.coin_id,
            t.c.config_hash == job_config_hash(job),
            t.c.data_hash == job_data_hash(job),
        )
        rows = self.store.read_table(t, where)
        for row in rows.itertuples(index=False):
            stem = self._located(str(row.model_id), str(row.artifact_path), str(row.artifact_hash))
            if stem is None:
                continue
            if self._read(stem, str(row.artifact_hash)) is not None:
                return str(row.model_id)
            log.warning("model %s: artifact %s.* altered (hash differs); retraining", row.model_id, stem)
        return None

    def _located(self, model_id: str, recorded: str | None = None, digest: str | None = None) -> Path | None:
        """The stem (path without suffix) of ``model_id``'s artifact files, or None if absent.

        Tried in order: the recorded path (a ``.safetensors`` file, or a directory of the older
        layout), the content-addressed place under ``root`` (``digest``), the older layout's
        ``<root>/<model_id>/model``: the last two find artifacts whose directory was moved.
        """
        candidates: list[Path] = []
        if recorded:
            path = Path(recorded)
            candidates.append(path.with_suffix("") if path.suffix == ".safetensors" else path / _ARTIFACT)
        if digest:
            candidates.append(self.artifact_stem(digest))
        candidates.append(self.artifact_dir(model_id) / _ARTIFACT)
        for stem in candidates:
            if stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file():
                return stem
        return None

    @staticmethod
    def _read(stem: Path, digest: str) -> tuple[bytes, bytes] | None:
        """The two files' bytes if their :func:`artifact_hash` is ``digest``, else None."""
        try:
            weights = stem.with_suffix(".safetensors").read_bytes()
            info = stem.with_suffix(".json").read_bytes()
        except FileNotFoundError:
            return None
        return (weights, info) if artifact_hash(weights, info) == digest else None

    def load(self, model_id: str, forecaster: BaseForecaster) -> BaseForecaster:
        """The fitted model ``model_id``, loaded into a copy of ``forecaster`` on its device.

        Raises
        ------
        FileNotFoundError
            If neither the recorded path nor ``root`` holds the artifact.
        ModelArtifactError
            If the artifact's bytes differ from the recorded ``artifact_hash``.
        """
        t = schema.model_registry
        rows = self.store.read_table(t, t.c.model_id == model_id)
        row = None if rows.empty else rows.iloc[0]
        recorded = None if row is None else str(row["artifact_path"])
        digest = None if row is None else str(row["artifact_hash"])
        stem = self._located(model_id, recorded, digest)
        if stem is None:
            raise FileNotFoundError(f"model {model_id}: no artifact under {self.root} or its recorded path")
        if digest is None:
            return forecaster.load_state(*load_model_state(stem))
        data = self._read(stem, digest)
        if data is None:
            raise ModelArtifactError(
                f"{stem}.safetensors / .json: altered; their hash differs from model {model_id}'s recorded "
                f"artifact_hash {digest}. Delete them and re-run to retrain the model."
            )
        return forecaster.load_state(*decode_model_state(*data))

    def serve(self, job: ForecastJob, model_id: str) -> JobResult:
        """Forecasts of ``job`` from the stored model (no training)."""
        model = self.load(model_id, job.forecaster)
        preds = model.predict(job.history.upto(job.dates.max()), job.dates)
        return JobResult(model.name, job.history.coin_id, job.fold, preds, model.to_state())

    # ------------------------------------------------------------------ writes
    def store_state(self, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> ArtifactRef:
        """Store a model state in the artifact directory by content; return its reference.

        No registry row is written: :meth:`register` adds one for a walk-forward job; a run
        directory references the artifact through its ``models.json``
        (:func:`kallos.pipeline.persist.persist_study`). Storing the same state again writes
        nothing, and rewrites a copy that is missing or altered.
        """
        return put_model_state(self.root, tensors, meta)

    def register(self, job: ForecastJob, result: JobResult) -> str:
        """Save the fitted model of ``result`` and upsert its registry row; return its ``model_id``.

        The artifact is stored by content (:meth:`store_state`): each file is written beside its
        final name and renamed into place, so a failure leaves no half-written model.

        Raises
        ------
        ValueError
            If ``result`` holds no fitted state.
        """
        if result.state is None:
            raise ValueError(f"{job.key}: no fitted state to register ({result.error or 'not registrable'})")
        tensors, meta = result.state
        ref = self.store_state(tensors, meta)
        config_hash, data_hash = job_config_hash(job), job_data_hash(job)
        model_id = _sha256(ref.artifact_hash.encode(), config_hash.encode(), data_hash.encode())
        final = self.artifact_stem(ref.artifact_hash).with_suffix(".safetensors")
        model = job.forecaster.load_state(tensors, meta)
        f = job.fold
        row = {
            "model_id": model_id,
            "model_type": job.forecaster.name,
            "coin_id": job.history.coin_id,
            "train_start": f.train_start,
            "train_end": f.train_end,
            "val_start": f.validation_start,
            "val_end": f.validation_end,
            "test_start": f.test_start,
            "test_end": f.test_end,
            "hyperparameters": meta.get("params", {}),
            "val_metrics": {**_validation_metrics(model, job), **_loss(meta)},
            "artifact_path": str(final),
            "artifact_hash": ref.artifact_hash,
            "config_hash": config_hash,
            "data_hash": data_hash,
            "created_at": dt.datetime.now(dt.UTC),
        }
        self.store.upsert(schema.model_registry, pd.DataFrame([row]))
        return model_id


def load_run_model(
    run_dir: str | Path,
    forecaster: BaseForecaster,
    coin_id: str,
    fold: str,
    *,
    artifact_dir: str | Path | None = None,
) -> BaseForecaster:
    """The fitted model a run used for ``coin_id`` in ``fold``, loaded into a copy of ``forecaster``.

    The run's ``models.json`` names the artifact in the registry's artifact directory (``artifact_dir``
    replaces the recorded one); both files are checked against the recorded sha256 first.

    Raises
    ------
    ModelArtifactError
        If the run has no manifest, or the artifact is missing or altered (names the file and the fix).
    KeyError
        If the run holds no such model.
    """
    models = read_models_manifest(run_dir)
    tensors, meta = models.load(models.find(forecaster.name, coin_id, fold), artifact_dir)
    return forecaster.load_state(tensors, meta)


def _loss(meta: dict[str, Any]) -> dict[str, Any]:
    training = meta.get("training") or {}
    return {k: training[k] for k in ("best_validation_loss", "best_epoch") if k in training}


Runner = Callable[..., list[JobResult]]


def run_jobs_with_registry(
    jobs: Sequence[ForecastJob],
    registry: ModelRegistry | None,
    *,
    engine: Engine | None = None,
    on_done: Callable[[JobResult], None] | None = None,
    runner: Runner = run_jobs,
) -> tuple[list[JobResult], RegistryStats]:
    """Serve registered models from ``registry``, train the rest with ``runner``, register new ones.

    Parameters
    ----------
    jobs : walk-forward jobs (see :func:`kallos.forecast.driver.run_jobs`).
    engine : where the trained jobs run (default: this process).
    registry : the model registry, or None to train everything (nothing is stored).
    runner : the trainer, :func:`run_jobs` (replaceable in tests).

    Returns
    -------
    (results in job order, counts of registrable / reused / trained models).

    Raises
    ------
    StoreError
        If the registry cannot be read or written.
    """
    if registry is None:
        results = runner(jobs, engine=engine, on_done=on_done)
        n = sum(registrable(j.forecaster) for j in jobs)
        return results, RegistryStats(n, 0, n)
    served: dict[int, JobResult] = {}
    misses: list[int] = []
    n_registrable = 0
    for i, job in enumerate(jobs):
        if not registrable(job.forecaster):
            misses.append(i)
            continue
        n_registrable += 1
        model_id = registry.lookup(job)
        if model_id is None:
            misses.append(i)
            continue
        served[i] = registry.serve(job, model_id)
        if on_done:
            on_done(served[i])
    trained = runner([jobs[i] for i in misses], engine=engine, on_done=on_done) if misses else []
    n_trained = 0
    for i, result in zip(misses, trained, strict=True):
        served[i] = result
        if registrable(jobs[i].forecaster) and result.state is not None:
            registry.register(jobs[i], result)
            n_trained += 1
    n_missed = sum(registrable(jobs[i].forecaster) for i in misses)
    stats = RegistryStats(n_registrable, n_registrable - n_missed, n_trained)
    log.info(stats.message())
    return [served[i] for i in range(len(jobs))], stats
