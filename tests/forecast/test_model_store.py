"""Model registry: content-hashed artifacts, reuse without retraining, selective retraining."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from kallos.data import Store
from kallos.data import schema as s
from kallos.data.artifacts import (
    ModelArtifactError,
    ModelReference,
    encode_model_state,
    write_models_manifest,
)
from kallos.forecast import CoinHistory, ForecastJob, NaivePersistence
from kallos.forecast.driver import run_jobs
from kallos.forecast.model_store import (
    ModelRegistry,
    job_config_hash,
    job_data_hash,
    load_run_model,
    run_jobs_with_registry,
)

COINS = ("aaa", "bbb")


class SpyRunner:
    """Counts the jobs that reach training."""

    def __init__(self) -> None:
        self.trained: list[tuple[str, str, str]] = []

    def __call__(self, jobs, engine=None, on_done=None):
        self.trained.extend(j.key for j in jobs)
        return run_jobs(jobs, engine=engine, on_done=on_done)


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    store = Store(f"sqlite:///{tmp_path / 'kallos.db'}")
    store.create_schema()
    yield ModelRegistry(store, tmp_path / "out" / "models")
    store.dispose()


def _jobs(histories, fold, config, fold_dates=None):
    dates = fold_dates if fold_dates is not None else pd.date_range(fold.test_start, periods=10, freq="D")
    jobs = []
    for coin, h in histories.items():
        seed = len(coin)
        jobs.append(ForecastJob(config.model("gru", seed=seed), fold, h, dates))
        jobs.append(ForecastJob(NaivePersistence(7), fold, h, dates))
    return jobs


@pytest.fixture
def histories(make_history):
    return {c: _rename(make_history(seed=i), c) for i, c in enumerate(COINS)}


def _rename(h: CoinHistory, coin: str) -> CoinHistory:
    return CoinHistory(coin, h.close.rename(coin), h.features)


def _preds(results) -> dict:
    return {(r.forecaster, r.coin_id): r.predictions.to_numpy().tobytes() for r in results}


def test_reuse_trains_nothing_and_forecasts_identically(registry, histories, fold, tiny_config):
    spy = SpyRunner()
    first, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=spy)
    assert (stats.registrable, stats.reused, stats.trained) == (2, 0, 2)
    assert len(spy.trained) == 4  # two GRUs + two baselines
    rows = registry.entries()
    assert len(rows) == 2 and set(rows["coin_id"]) == set(COINS)
    assert (rows["model_type"] == "gru").all()
    assert {"rmse", "directional_accuracy", "best_validation_loss"} <= set(rows["val_metrics"][0])

    spy2 = SpyRunner()
    second, stats2 = run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=spy2)
    assert (stats2.reused, stats2.trained) == (2, 0)
    assert [k[0] for k in spy2.trained] == ["naive_persistence", "naive_persistence"]  # no GRU trained
    assert _preds(first) == _preds(second)  # byte-identical forecasts
    assert "reused 2 of 2 models" in stats2.message()


def test_model_id_is_a_content_hash(registry, histories, fold, tiny_config):
    jobs = _jobs(histories, fold, tiny_config)
    run_jobs_with_registry(jobs, registry, runner=SpyRunner())
    row = registry.entries(coin_id="aaa").iloc[0]
    stem = registry.artifact_stem(row["artifact_hash"])  # content-addressed: <root>/<h[:2]>/<h>
    assert stem.parent.name == row["artifact_hash"][:2]
    assert sorted(p.name for p in stem.parent.iterdir()) == [f"{stem.name}.json", f"{stem.name}.safetensors"]
    assert row["artifact_path"] == str(stem.with_suffix(".safetensors"))

    def sha(*parts: bytes) -> str:
        h = hashlib.sha256()
        for p in parts:
            h.update(p)
            h.update(b"\x00")
        return h.hexdigest()

    artifact = sha(stem.with_suffix(".safetensors").read_bytes(), stem.with_suffix(".json").read_bytes())
    assert row["artifact_hash"] == artifact
    gru = next(j for j in jobs if j.forecaster.name == "gru" and j.history.coin_id == "aaa")
    assert row["config_hash"] == job_config_hash(gru) and row["data_hash"] == job_data_hash(gru)
    assert row["model_id"] == sha(artifact.encode(), row["config_hash"].encode(), row["data_hash"].encode())
    assert not list(registry.root.rglob(".partial-*"))


def test_changed_data_retrains_only_that_coin(registry, histories, fold, tiny_config):
    run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=SpyRunner())
    h = histories["bbb"]
    close = h.close.copy()
    close.iloc[100] *= 1.01  # a revised price inside the training window
    changed = {**histories, "bbb": CoinHistory("bbb", close, h.features)}
    spy = SpyRunner()
    _, stats = run_jobs_with_registry(_jobs(changed, fold, tiny_config), registry, runner=spy)
    assert [k for k in spy.trained if k[0] == "gru"] == [("gru", "bbb", fold.key)]
    assert (stats.reused, stats.trained) == (1, 1)


def test_data_after_the_cutoff_does_not_change_the_hash(histories, fold, tiny_config):
    h = histories["aaa"]
    close = h.close.copy()
    close.loc[fold.cutoff + pd.Timedelta(days=3)] *= 2.0  # a later revision: the model never saw it
    a, b = (
        _jobs({"aaa": h}, fold, tiny_config)[0],
        _jobs({"aaa": CoinHistory("aaa", close, h.features)}, fold, tiny_config)[0],
    )
    assert job_data_hash(a) == job_data_hash(b)


def test_changed_hyperparameter_retrains_all(registry, histories, fold, tiny_config):
    run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=SpyRunner())
    bigger = tiny_config.model_copy(
        update={"hidden_size": tiny_config.forecast.models["gru"]["hidden_size"] + 4}
    )
    spy = SpyRunner()
    _, stats = run_jobs_with_registry(_jobs(histories, fold, bigger), registry, runner=spy)
    assert sorted(k for k in spy.trained if k[0] == "gru") == [("gru", c, fold.key) for c in COINS]
    assert (stats.reused, stats.trained) == (0, 2)
    assert len(registry.entries(model_type="gru")) == 4


def test_missing_artifact_means_retrain(registry, histories, fold, tiny_config):
    run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=SpyRunner())
    for f in registry.root.rglob("*.safetensors"):
        f.unlink()
    spy = SpyRunner()
    _, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=spy)
    assert stats.reused == 0 and len([k for k in spy.trained if k[0] == "gru"]) == 2


def test_no_registry_trains_everything(histories, fold, tiny_config):
    spy = SpyRunner()
    results, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), None, runner=spy)
    assert len(spy.trained) == 4 and stats.reused == 0
    assert all(np.isfinite(r.predictions).any() for r in results)


def test_reuse_on_every_backend(any_store, tmp_path, histories, fold, tiny_config):
    """SQLite and (marked postgres) a unique PostgreSQL schema behave the same."""
    reg = ModelRegistry(any_store, tmp_path / "out" / "models")
    first, _ = run_jobs_with_registry(_jobs(histories, fold, tiny_config), reg, runner=SpyRunner())
    spy = SpyRunner()
    second, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), reg, runner=spy)
    assert stats.reused == 2 and not [k for k in spy.trained if k[0] == "gru"]
    assert _preds(first) == _preds(second)
    assert len(reg.entries()) == 2


def test_the_store_records_its_artifact_directory_whatever_the_out_dir(
    tmp_path, histories, fold, tiny_config
):
    """Runs with another --out against the same database reuse its models (the artifact directory is
    the store's), and a configured compute.artifact_dir moves new models without losing old ones."""
    store = Store(f"sqlite:///{tmp_path / 'kallos.db'}")
    first = ModelRegistry.for_store(store, tmp_path / "run-a")
    assert first.root == (tmp_path / "run-a" / "models").resolve()
    assert store.setting("artifact_dir") == str(first.root)
    run_jobs_with_registry(_jobs(histories, fold, tiny_config), first, runner=SpyRunner())

    other_out = ModelRegistry.for_store(store, tmp_path / "run-b")  # another --out: same directory
    assert other_out.root == first.root
    spy = SpyRunner()
    _, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), other_out, runner=spy)
    assert (stats.reused, stats.trained) == (2, 0) and not (tmp_path / "run-b").exists()

    shared = tmp_path / "shared-models"
    moved = ModelRegistry.for_store(store, tmp_path / "run-c", artifact_dir=shared)
    assert moved.root == shared.resolve() and store.setting("artifact_dir") == str(shared.resolve())
    _, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), moved, runner=SpyRunner())
    assert stats.reused == 2  # old models found through their recorded paths
    store.dispose()


# ------------------------------------------------------------------ content-addressed artifacts (issue 14)
def _legacy_layout(registry: ModelRegistry) -> None:
    """Move every artifact to the layout before content addressing: ``<root>/<model_id>/model.*``."""
    rows = registry.entries()
    for row in rows.itertuples():
        stem = registry.artifact_stem(row.artifact_hash)
        old = registry.artifact_dir(row.model_id)
        old.mkdir(parents=True)
        for suffix in (".safetensors", ".json"):
            stem.with_suffix(suffix).rename((old / "model").with_suffix(suffix))
    rows["artifact_path"] = [str(registry.artifact_dir(m)) for m in rows["model_id"]]
    registry.store.upsert(s.model_registry, rows)


def test_artifacts_stored_in_the_older_layout_still_load(registry, histories, fold, tiny_config):
    first, _ = run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=SpyRunner())
    _legacy_layout(registry)
    assert not list(registry.root.rglob("??/*.safetensors"))
    spy = SpyRunner()
    second, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=spy)
    assert (stats.reused, stats.trained) == (2, 0) and not [k for k in spy.trained if k[0] == "gru"]
    assert _preds(first) == _preds(second)


def test_older_layout_found_after_the_artifact_directory_moved(tmp_path, histories, fold, tiny_config):
    store = Store(f"sqlite:///{tmp_path / 'kallos.db'}")
    store.create_schema()
    old_root = tmp_path / "old" / "models"
    registry = ModelRegistry(store, old_root)
    run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=SpyRunner())
    _legacy_layout(registry)
    old_root.rename(tmp_path / "moved")  # recorded paths now point nowhere
    moved = ModelRegistry(store, tmp_path / "moved")
    _, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), moved, runner=SpyRunner())
    assert stats.reused == 2
    store.dispose()


def test_an_altered_artifact_is_retrained_and_stored_again(registry, histories, fold, tiny_config):
    run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=SpyRunner())
    row = registry.entries(coin_id="aaa").iloc[0]
    weights = registry.artifact_stem(row["artifact_hash"]).with_suffix(".safetensors")
    good = weights.read_bytes()
    weights.write_bytes(good[:-8] + b"\x00" * 8)
    with pytest.raises(ModelArtifactError, match="altered"):
        registry.load(row["model_id"], tiny_config.model("gru", seed=3))
    spy = SpyRunner()
    _, stats = run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=spy)
    assert [k[1] for k in spy.trained if k[0] == "gru"] == ["aaa"] and stats.reused == 1
    assert weights.read_bytes() == good  # deterministic retraining restored the recorded bytes


def test_storing_a_state_twice_writes_it_once(registry, histories, fold, tiny_config):
    results, _ = run_jobs_with_registry(_jobs(histories, fold, tiny_config), registry, runner=SpyRunner())
    state = next(r.state for r in results if r.state is not None)
    a = registry.store_state(*state)
    files = a.files(registry.root)
    mtimes = {k: p.stat().st_mtime_ns for k, p in files.items()}
    assert registry.store_state(*state) == a
    assert {k: p.stat().st_mtime_ns for k, p in files.items()} == mtimes
    for kind, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == a.sha256[kind]
        assert path.stat().st_size == a.n_bytes[kind]
    assert len(list(registry.root.rglob("*.safetensors"))) == 2  # the registered GRUs, no copy


def test_a_run_directory_reloads_its_models_through_the_manifest(
    registry, histories, fold, tiny_config, tmp_path
):
    jobs = _jobs(histories, fold, tiny_config)
    results, _ = run_jobs_with_registry(jobs, registry, runner=SpyRunner())
    fitted = [(j, r) for j, r in zip(jobs, results, strict=True) if r.state is not None]
    refs = [
        ModelReference(r.forecaster, r.coin_id, r.fold.key, registry.store_state(*r.state)) for _, r in fitted
    ]
    run_dir = tmp_path / "run"
    write_models_manifest(run_dir, registry.root, refs)
    for job, result in fitted:
        model = load_run_model(run_dir, job.forecaster, result.coin_id, fold.key)
        assert encode_model_state(*model.to_state()) == encode_model_state(*result.state)
        preds = model.predict(job.history.upto(job.dates.max()), job.dates)
        assert preds.to_numpy().tobytes() == result.predictions.to_numpy().tobytes()
    with pytest.raises(KeyError, match="no model gru/zzz"):
        load_run_model(run_dir, jobs[0].forecaster, "zzz", fold.key)
    registry.artifact_stem(refs[0].artifact.artifact_hash).with_suffix(".safetensors").unlink()
    with pytest.raises(ModelArtifactError, match=r"\.safetensors: missing; run .* references it"):
        load_run_model(run_dir, jobs[0].forecaster, refs[0].coin_id, fold.key)
