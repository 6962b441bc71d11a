"""Sweeps on dask.distributed: same numbers as direct calls, resume after SIGKILL, worker deaths."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from learndyn import online, sweep

from .toy import ToyProblem, direct

ROOT = Path(__file__).resolve().parents[2]


def test_ode_sweep_on_a_local_cluster_matches_direct_calls(tmp_path):
    """online.ode on a LocalCluster of 2 worker processes == online.integrate called here, including a
    point whose trajectories stop early (flagged, data up to the stop kept)."""
    config = {
        "sweep": {"runner": "online.ode", "seeds": [0, 5], "store": str(tmp_path / "ode.zarr")},
        "problem": {"M": 1, "K": 2, "activation": "erf", "lr": 0.3, "train_second_layer": True},
        "options": {"alpha_max": 20.0, "n_alpha": 8, "N_init": 100, "init": "small"},
        # max(Q_kk, |v_k|) grows from 1.2e-3 to ~7e-3 by alpha = 20: the second point stops mid-way
        "grid": {"divergence_threshold": [1e6, 1.5e-3]},
    }
    cfg = sweep.load_config(config)
    alphas = online.default_alphas(20.0, 8, 0.1)
    problem = online.Problem(M=1, K=2, activation="erf", lr=0.3, train_second_layer=True)
    expected = {}
    for thr in (1e6, 1.5e-3):  # direct calls first: they also fill JAX's compilation cache for the workers
        for seed in (0, 5):
            init = online.initial_weights(problem, 100, "small", seed).order_parameters()
            with pytest.warns(RuntimeWarning) if thr < 1 else _nothing():
                expected[thr, seed] = online.integrate(problem, init, alphas, divergence_threshold=thr)
    ds = sweep.run(cfg, n_workers=2, progress=False)
    assert ds["sweep_status"].values.tolist() == [1, 2]  # done; done but flagged
    np.testing.assert_array_equal(ds["alpha"].values, alphas)
    for (thr, seed), traj in expected.items():
        got = ds["eg"].sel(divergence_threshold=thr, seed=seed).values
        n = traj.eg.size
        np.testing.assert_allclose(got[:n], traj.eg, rtol=1e-12, atol=1e-15)
        assert np.isnan(got[n:]).all()
        assert ds["alpha_reached"].sel(divergence_threshold=thr, seed=seed).item() == traj.alpha_reached
        final = ds["eg_final"].sel(divergence_threshold=thr, seed=seed).item()
        if traj.success:
            assert final == pytest.approx(traj.eg[-1], rel=1e-12)
            assert ds["ode_status"].sel(divergence_threshold=thr, seed=seed).item() == 0
        else:
            assert np.isnan(final)
            assert ds["ode_status"].sel(divergence_threshold=thr, seed=seed).item() == 1
    assert not expected[1.5e-3, 0].success and 1.0 < expected[1.5e-3, 0].alpha_reached < 20.0
    st = sweep.status(cfg.store)
    assert st.complete and st.counts["flagged"] == 1 and "diverged" in st.flagged[0][1]
    runs = json.loads(ds.attrs["runs"])
    assert len(runs) == 1 and runs[0]["cluster"] == "LocalCluster(2 workers)" and runs[0]["done"] == 2


@contextlib.contextmanager
def _nothing():
    yield


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started here, and its children (its own session), by its process-group id."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftover nanny / worker children of the group
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real `dask scheduler` and a `dask worker` (2 single-threaded processes under nannies) on
    127.0.0.1, on a free port; always stopped afterwards."""
    tmp = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    logs = [open(tmp / "scheduler.log", "wb"), open(tmp / "worker.log", "wb")]
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], cwd=tmp, env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nworkers", "2", "--nthreads", "1",
             "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "60", "--local-directory", str(tmp)],
            cwd=tmp, env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True))
        from distributed import Client

        with Client(address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for fh in logs:
            fh.close()


def test_sweep_against_a_real_scheduler_address(tmp_path, cluster):
    from distributed import Client

    with Client(cluster) as c:
        workers = c.scheduler_info()["workers"]
    assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    cfg = sweep.load_config(toy_config(tmp_path, log_dir=str(tmp_path)))
    ds = sweep.run(cfg, scheduler=cluster, progress=False)
    assert (ds["sweep_status"].values == 1).all()
    check_values(ds, cfg)
    computed = (tmp_path / "computed.log").read_text().split()
    assert len(set(computed)) == len(computed) == 24  # 12 points x 2 seeds, each computed once
    assert json.loads(ds.attrs["runs"])[0]["cluster"] == cluster


def toy_config(tmp_path, **options):
    return {
        "sweep": {"runner": "toy", "name": "toy", "seeds": [1, 2], "store": str(tmp_path / "toy.zarr")},
        "problem": {"n": 3},
        "options": options,
        "grid": {"a": [float(a) for a in range(1, 7)], "kind": ["sin", "cos"]},
    }


def check_values(ds, cfg):
    for flat in cfg.points():
        c = cfg.coords(flat)
        for s in cfg.seeds:
            np.testing.assert_array_equal(ds["y"].sel(**c, seed=s).values,
                                          direct(ToyProblem(a=c["a"], n=3, kind=c["kind"]), s))


def test_worker_killed_mid_task_is_retried(tmp_path, cluster):
    markers = tmp_path / "markers"
    markers.mkdir()
    cfg = sweep.load_config(toy_config(tmp_path, die_once_dir=str(markers), die_when_a=2.0, log_dir=str(tmp_path)))
    ds = sweep.run(cfg, scheduler=cluster, progress=False)
    # the first attempt at each point with a = 2 killed its worker
    killed = sorted(p.name for p in markers.iterdir())
    assert killed == ["a=2.0_n=3_b=0.0_kind=cos", "a=2.0_n=3_b=0.0_kind=sin"]
    assert (ds["sweep_status"].values == 1).all()
    check_values(ds, cfg)
    st = sweep.status(cfg.store)
    assert st.complete and st.counts["done"] == 12
    # the killed attempts were re-run: both kinds at a = 2 computed every seed
    log = (tmp_path / "computed.log").read_text().split()
    for kind in ("sin", "cos"):
        for s in (1, 2):
            assert f"a=2.0_n=3_b=0.0_kind={kind}_seed={s}" in log


def test_sigkill_half_way_then_resume_computes_every_point_once(tmp_path, cluster):
    """`learndyn sweep` in a subprocess, SIGKILLed after some points are stored; the re-run finishes
    the rest; points stored before the kill are neither recomputed nor lost."""
    cfg_dict = toy_config(tmp_path, delay=1.0, log_dir=str(tmp_path))
    cfg_dict["sweep"]["seeds"] = [1]
    cfg_dict["sweep"]["runner"] = "tests.sweep.toy:TOY"  # a fresh process: by import path, allowed explicitly
    (tmp_path / "toy.toml").write_text(_toml(cfg_dict))
    cfg = sweep.load_config(tmp_path / "toy.toml", allow_import=True)
    address = cluster
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen([sys.executable, "-m", "learndyn", "sweep", str(tmp_path / "toy.toml"), "--allow-import",
                             "--scheduler", address, "--no-progress"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        done = 0
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            done = _done_count(tmp_path / "toy.zarr")
            if done >= 3:
                break
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    before = sweep.open_store(tmp_path / "toy.zarr", only_done=False)
    status_before = before["sweep_status"].values.reshape(-1)
    done_before = set(np.flatnonzero(status_before == 1).tolist())
    assert 3 <= len(done_before) < 12, status_before
    assert set(np.unique(status_before)) <= {0, 1}

    ds = sweep.run(cfg, scheduler=cluster, progress=False)
    status_after = ds["sweep_status"].values.reshape(-1)
    assert (status_after == 1).all()
    check_values(ds, cfg)
    run_of = ds["sweep_run"].values.reshape(-1)
    assert all(run_of[f] == 0 for f in done_before)
    assert all(run_of[f] == 1 for f in range(12) if f not in done_before)
    # points stored before the kill were computed exactly once (never again after the resume)
    log = (tmp_path / "computed.log").read_text().split()
    for f in done_before:
        c = cfg.coords(f)
        assert log.count(f"a={c['a']}_n=3_b=0.0_kind={c['kind']}_seed=1") == 1
    assert len(json.loads(ds.attrs["runs"])) == 2
    # nothing more to do: a third run submits nothing and changes nothing
    again = sweep.run(cfg, scheduler=cluster, progress=False)
    np.testing.assert_array_equal(again["sweep_run"].values, ds["sweep_run"].values)
    assert len(json.loads(again.attrs["runs"])) == 2


def _toml(d: dict) -> str:
    lines = []
    for table, values in d.items():
        lines.append(f"[{table}]")
        for k, v in values.items():
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def _done_count(path: Path) -> int:
    """Points marked done, read straight from the status array (cheap enough to poll)."""
    import zarr

    if not (path / ".zgroup").exists():
        return 0
    try:
        return int(np.sum(zarr.open_array(str(path / "sweep_status"), mode="r")[...] == 1))
    except Exception:  # noqa: BLE001 - being created
        return 0
