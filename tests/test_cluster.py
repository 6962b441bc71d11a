"""learndyn.cluster: the Dask machinery shared by the sweeps and the out-of-core kernels (the
sweep-specific behaviour -- probe of a non-Dask endpoint, LocalCluster runs -- is tested in tests/sweep)."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace

import pytest

from learndyn import cluster, sweep
from learndyn.sweep import execute


def test_the_sweep_uses_the_shared_machinery():
    assert sweep.check_scheduler is cluster.check_scheduler and sweep.local_cluster is cluster.local_cluster
    assert issubclass(sweep.SweepError, cluster.ClusterError)


def test_scheduler_addresses():
    assert cluster.check_scheduler(" 10.0.0.1:8786 ") == "tcp://10.0.0.1:8786"
    assert cluster.check_scheduler("inproc://host") == "inproc://host"
    for bad in ("http://h:8787", "tcp://h:0", "a b", None, 8786):
        with pytest.raises(ValueError, match="^scheduler: "):
            cluster.check_scheduler(bad)


def test_a_given_client_is_used_as_is():
    given = SimpleNamespace(scheduler=SimpleNamespace(address="tcp://h:1"), close=lambda: pytest.fail("closed"))
    with cluster.connect(client=given) as (c, where):
        assert c is given and where == "client tcp://h:1"


def test_a_cluster_that_does_not_start_is_one_line_and_leaves_no_scratch(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = {}

    def dies(n, threads, **kwargs):
        seen.update(n=n, threads=threads, **kwargs)
        raise RuntimeError("Nanny failed to start.\nTraceback ...")

    with pytest.raises(cluster.ClusterError, match=r"^cluster: the local Dask cluster of 3 worker\(s\) did not start "
                                                   r"\(RuntimeError: Nanny failed to start.\); .*or use fewer workers "
                                                   r"\(n_workers\)$"):
        with cluster.connect(n_workers=3, cluster_factory=dies):
            pass
    assert seen["n"] == 3 and seen["threads"] == 1 and str(seen["local_directory"]).startswith(str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    # the sweep's wrapper: its own error class and hint
    monkeypatch.setattr(execute, "local_cluster", dies)
    with pytest.raises(sweep.SweepError, match="use fewer --workers$"):
        with execute._client(None, 2, None, 5):
            pass


def test_one_line():
    assert cluster.one_line(ValueError("a\nb")) == "ValueError: a"
    assert cluster.one_line(KeyError()) == "KeyError"
