"""Execution engines: one after another in a process, in order, errors named."""

from __future__ import annotations

import math

import pytest

from kallos.compute import InProcessEngine, open_engine
from kallos.compute.engine import probe_directory
from kallos.exceptions import ConfigError


def test_local_clusters_open_one_after_another_and_map_in_order():
    """A second LocalCluster in the same process works (Dask's config survives the first one)."""
    for n in (1, 2):
        with open_engine("local", n) as engine:
            assert engine.n_workers == n and engine.dashboard_link
            assert list(engine.map(abs, [-3, -1, -2])) == [3, 1, 2]
            assert sorted(engine.map_unordered(abs, [-3, -1])) == [(0, 3), (1, 1)]
    with open_engine("none") as engine:
        assert isinstance(engine, InProcessEngine) and list(engine.map(abs, [-4])) == [4]


def test_a_task_error_reaches_the_caller():
    with open_engine("local", 1) as engine, pytest.raises(ValueError, match="math domain error"):
        list(engine.map_unordered(math.log, [1.0, 0.0]))


def test_bad_schedulers_say_what_to_start(monkeypatch):
    monkeypatch.setattr("kallos.compute.engine.CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ConfigError, match="use 'local', 'none' or 'tcp://HOST:PORT'"), open_engine("udp://x"):
        pass
    with pytest.raises(ConfigError, match=r"no Dask scheduler answered.*dask scheduler --port 9"):
        with open_engine("tcp://127.0.0.1:9"):
            pass


def test_an_unwritable_artifact_directory_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert probe_directory(str(tmp_path / "new" / "models")) is None
    assert not (tmp_path / "new").exists()  # the probe leaves nothing behind
    assert probe_directory(str(blocker / "models")) is not None
    with pytest.raises(ConfigError, match=r"compute\.artifact_dir=.*cannot write there"):
        InProcessEngine().check_writable(str(blocker / "models"))
