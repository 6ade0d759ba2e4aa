"""Scale-out: where training and tuning jobs run (Dask distributed, or this process)."""

from kallos.compute.engine import DaskEngine, Engine, InProcessEngine, is_remote, open_engine

__all__ = ["DaskEngine", "Engine", "InProcessEngine", "is_remote", "open_engine"]
