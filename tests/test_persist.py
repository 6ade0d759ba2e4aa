"""A run is all or nothing: a failure while recording it leaves no directory and no rows.

A run directory references its models in the registry's artifact directory (``models.json``)
instead of copying them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

import numpy as np
import pytest

from kallos.config import load_config
from kallos.data import Store, build_panel
from kallos.data import schema as s
from kallos.data.artifacts import (
    MANIFEST,
    ModelArtifactError,
    encode_model_state,
    read_models_manifest,
)
from kallos.exceptions import StoreError
from kallos.forecast.driver import JobResult
from kallos.forecast.model_store import ModelRegistry
from kallos.pipeline.persist import persist_study
from kallos.pipeline.study import run_study


@pytest.fixture(scope="module")
def small_result(real_market):
    market, coins = real_market
    cfg = load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 3,
            "backtest.start": "2023-04-01",
            "backtest.end": "2023-05-31",
            "forecast.forecasters": ["historical_mean", "naive_persistence"],
            "portfolio.objectives": ["min_volatility"],
        },
    )
    return run_study(build_panel(market, coins, cfg.quality), cfg)


def test_failed_database_write_leaves_nothing(tmp_path, small_result, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_schema()

    def broken(*args, **kwargs):
        raise StoreError("disk full")

    monkeypatch.setattr(store, "write_run", broken)
    with pytest.raises(StoreError, match="disk full"):
        persist_study(small_result, store, tmp_path / "out", wall_seconds=1.0, tearsheets=False)
    assert list((tmp_path / "out").iterdir()) == []  # no run directory, no partial one
    assert store.count(s.runs) == 0 and store.count(s.portfolio_weights) == 0


def test_successful_run_is_recorded_once(tmp_path, small_result):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_schema()
    run_dir = persist_study(small_result, store, tmp_path / "out", wall_seconds=1.0, tearsheets=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [run_dir.name]
    assert store.run_ids() == [run_dir.name]
    # Two strategies (min_volatility) + two benchmarks, 61 days each.
    assert store.count(s.portfolio_daily_returns) == 4 * 61
    assert not (run_dir / "models").exists()  # no recurrent model in this study
    assert read_models_manifest(run_dir).models == ()
    assert not (tmp_path / "out" / "models").exists()  # no model: nothing stored, no registry dir


def _state(i: int) -> tuple[dict[str, np.ndarray], dict]:
    rng = np.random.default_rng(i)
    return {"w": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=3)}, {"format": "t", "i": i}


@pytest.fixture(scope="module")
def with_models(small_result):
    """``small_result`` whose first three jobs carry a fitted state (as a neural forecaster's would)."""
    jobs = [dataclasses.replace(j, state=_state(i)) if i < 3 else j for i, j in enumerate(small_result.jobs)]
    assert all(isinstance(j, JobResult) for j in jobs)
    return dataclasses.replace(small_result, decided=dataclasses.replace(small_result.decided, jobs=jobs))


def _persisted(tmp_path, result):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_schema()
    return store, persist_study(result, store, tmp_path / "out", wall_seconds=1.0, tearsheets=False)


def test_a_run_references_its_models_and_copies_none(tmp_path, with_models):
    store, run_dir = _persisted(tmp_path, with_models)
    assert not list(run_dir.rglob("*.safetensors")) and not (run_dir / "models").exists()
    registry = ModelRegistry.for_store(store, tmp_path / "out")
    assert registry.root == (tmp_path / "out" / "models").resolve()

    models = read_models_manifest(run_dir)
    assert models.artifact_dir == registry.root
    fitted = [j for j in with_models.jobs if j.state is not None]
    assert [m.key for m in models.models] == [(j.forecaster, j.coin_id, j.fold.key) for j in fitted]
    for ref, job in zip(models.models, fitted, strict=True):
        files = ref.artifact.files(registry.root)
        assert files["safetensors"].parent.parent == registry.root  # <root>/<h[:2]>/<h>.safetensors
        assert files["safetensors"].stem == ref.artifact.artifact_hash
        for kind, path in files.items():  # the manifest's hashes are the registry files' sha256
            assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.artifact.sha256[kind]
        tensors, meta = models.load(ref)  # reloads byte-identically
        assert encode_model_state(tensors, meta) == encode_model_state(*job.state)
        assert meta == job.state[1] and all(np.array_equal(tensors[k], v) for k, v in job.state[0].items())

    block = json.loads((run_dir / "results.json").read_text())["forecasts"]["models"]["artifacts"]
    manifest_sha = hashlib.sha256((run_dir / MANIFEST).read_bytes()).hexdigest()
    assert block == {
        "manifest": MANIFEST,
        "manifest_sha256": manifest_sha,
        "artifact_dir": str(registry.root),
        "n_models": 3,
        "bytes": sum(p.stat().st_size for p in registry.root.rglob("*.*")),
    }
    store.dispose()


def test_a_second_run_stores_nothing_twice(tmp_path, with_models):
    store, first = _persisted(tmp_path, with_models)
    files = sorted((tmp_path / "out" / "models").rglob("*.*"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    later = persist_study(
        with_models,
        store,
        tmp_path / "out",
        wall_seconds=1.0,
        tearsheets=False,
        now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    assert later != first
    assert sorted((tmp_path / "out" / "models").rglob("*.*")) == files
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert read_models_manifest(later).models == read_models_manifest(first).models
    store.dispose()


def test_a_missing_or_altered_artifact_is_named_with_the_fix(tmp_path, with_models):
    store, run_dir = _persisted(tmp_path, with_models)
    models = read_models_manifest(run_dir)
    first, second = models.models[:2]
    weights = first.artifact.files(models.artifact_dir)["safetensors"]
    weights.write_bytes(weights.read_bytes()[:-1] + b"!")
    with pytest.raises(ModelArtifactError, match="altered") as err:
        models.load(first)
    assert str(weights) in str(err.value) and str(run_dir) in str(err.value)
    assert first.artifact.sha256["safetensors"] in str(err.value) and "re-run" in str(err.value)

    meta = second.artifact.files(models.artifact_dir)["json"]
    meta.unlink()
    with pytest.raises(ModelArtifactError, match="missing") as err:
        models.load(second)
    assert str(meta) in str(err.value) and "artifact_dir" in str(err.value)

    moved = tmp_path / "moved"
    models.artifact_dir.rename(moved)  # a moved artifact directory: pass its new place
    tensors, _ = models.load(models.models[2], artifact_dir=moved)
    assert np.array_equal(tensors["w"], with_models.jobs[2].state[0]["w"])
    store.dispose()


def test_a_failed_run_leaves_no_run_directory_with_models(tmp_path, with_models, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_schema()

    def broken(*args, **kwargs):
        raise StoreError("disk full")

    monkeypatch.setattr(store, "write_run", broken)
    with pytest.raises(StoreError, match="disk full"):
        persist_study(with_models, store, tmp_path / "out", wall_seconds=1.0, tearsheets=False)
    # Only the registry's content-addressed store remains (reused by the next run), no run dir.
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["models"]
    assert not list((tmp_path / "out").rglob(".partial*"))
    store.dispose()
