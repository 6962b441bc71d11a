"""Nothing lost: --overwrite deletes only a learndyn store, one lock per store however it is spelled,
lost or damaged chunks are recomputed, one-line errors, configs cannot import code unasked, the
cluster is checked before the store is created, no leftovers, no umask changes."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from learndyn import sweep
from learndyn.cli import app
from learndyn.sweep import execute
from learndyn.sweep.store import DONE, FLAGGED, PENDING, Store

from .test_store import TOY, compute_into
from .toy import ToyProblem, direct

cli = CliRunner()


def _full_store(path: Path) -> sweep.SweepConfig:
    cfg = sweep.load_config(TOY)
    with Store.create_or_open(path, cfg) as st:
        compute_into(st, range(cfg.size))
    return cfg


def _check_values(ds: xr.Dataset, cfg: sweep.SweepConfig) -> None:
    for flat in cfg.points():
        c = cfg.coords(flat)
        for s in cfg.seeds:
            np.testing.assert_array_equal(ds["y"].sel(**c, seed=s).values,
                                          direct(ToyProblem(a=c["a"], n=3, kind=c["kind"]), s))


# -- 1. --overwrite ------------------------------------------------------------------------------
def test_overwrite_refuses_a_folder_that_is_not_a_learndyn_store(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    (folder / ".zgroup").write_text('{"zarr_format": 2}')  # even a Zarr group that is not ours
    cfg = sweep.load_config(TOY)
    with pytest.raises(ValueError, match="refusing to delete .*thesis.* not a sweep store written by learndyn"):
        Store.create_or_open(folder, cfg, overwrite=True)
    assert (folder / "chapter1.tex").read_text() == "years of work"
    # a real store is still deleted and recreated
    store = tmp_path / "toy.zarr"
    _full_store(store)
    with Store.create_or_open(store, cfg, overwrite=True) as st:
        assert st.pending() == list(range(cfg.size))
    assert not list(tmp_path.glob(".*.lock"))


def test_overwrite_never_deletes_the_config_folder_or_the_working_directory(tmp_path, monkeypatch):
    cfgdir = tmp_path / "configs"
    cfgdir.mkdir()
    (cfgdir / "neighbour.toml").write_text("# another config")
    text = "\n".join(["[sweep]", 'runner = "toy"', 'store = "."', "seeds = [1]", "[problem]", "n = 3", "[grid]",
                      "a = [1.0, 2.0]"]) + "\n"
    (cfgdir / "c.toml").write_text(text)
    work = tmp_path / "work" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    cfg = sweep.load_config(cfgdir / "c.toml")
    assert cfg.store.resolve() == cfgdir
    result = cli.invoke(app, ["sweep", str(cfgdir / "c.toml"), "--overwrite", "--no-progress"])
    assert result.exit_code == 2
    assert "refusing to delete" in result.output and "the folder of the config" in result.output
    assert len(result.output.strip().splitlines()) == 3  # summary, store, the one-line error
    assert sorted(p.name for p in cfgdir.iterdir()) == ["c.toml", "neighbour.toml"]
    for path, what in ((work, "the working directory"), (tmp_path / "work", "the working directory or a parent")):
        with pytest.raises(ValueError, match=what):
            Store.create_or_open(path, sweep.load_config(cfgdir / "c.toml", store=path), overwrite=True)
        assert work.is_dir()
    with pytest.raises(ValueError, match="it is the working directory"):
        Store.create_or_open(".", sweep.load_config(TOY), overwrite=True)


# -- 2. one lock per store -------------------------------------------------------------------------
def test_a_symlinked_store_path_takes_the_same_lock_and_no_lock_file_is_left(tmp_path):
    cfg = sweep.load_config(TOY)
    real = tmp_path / "data" / "toy.zarr"
    real.parent.mkdir()
    link = tmp_path / "link.zarr"
    link.symlink_to(real, target_is_directory=True)
    with Store.create_or_open(real, cfg):
        with pytest.raises(ValueError, match="in use by another sweep process"):
            Store.create_or_open(link, cfg)
    linkdir = tmp_path / "linkdir"
    linkdir.symlink_to(real.parent, target_is_directory=True)
    with Store.create_or_open(linkdir / "toy.zarr", cfg) as st:
        compute_into(st, [0])
        with pytest.raises(ValueError, match="in use by another sweep process"):
            Store.create_or_open(real, cfg)
    assert link.is_symlink() and (real / ".zgroup").exists()
    assert sweep.status(link).counts["done"] == 1
    assert not [p for p in tmp_path.rglob("*.lock")]


# -- 3. lost and damaged chunks ------------------------------------------------------------------
def test_a_deleted_chunk_of_a_finished_point_is_pending_again_and_recomputed(tmp_path):
    path = tmp_path / "toy.zarr"
    cfg = _full_store(path)
    assert sweep.status(path).complete
    (path / "y" / "0.1.0.0").unlink()  # point a=0.5, kind='cos'
    with pytest.warns(RuntimeWarning, match=r"1 finished point\(s\) have missing or unreadable data: "
                                            r"a=0.5, kind='cos' \(y: chunk 0.1.0.0 missing\)"):
        st = sweep.status(path)
    assert not st.complete and st.counts["pending"] == 1 and st.pending == [{"a": 0.5, "kind": "cos"}]
    with pytest.warns(RuntimeWarning, match="kind='cos'"):
        ds = sweep.open_store(path)
    assert ds["sweep_status"].sel(a=0.5, kind="cos").item() == PENDING
    assert np.isnan(ds["y"].sel(a=0.5, kind="cos").values).all()
    with pytest.warns(RuntimeWarning, match="pending again and will be recomputed"):
        store = Store.create_or_open(path, cfg)
    with store:
        assert store.pending() == [1]
        compute_into(store, store.pending(), run=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # complete and readable again: no warning
        ds = sweep.open_store(path)
        assert sweep.status(path).complete
    _check_values(ds, cfg)


def test_a_point_whose_outputs_are_all_nan_is_not_mistaken_for_lost(tmp_path):
    """Zarr skips chunks equal to the fill value unless told otherwise: a finished point whose values
    are all NaN must still have its chunks, or it would be recomputed for ever."""
    cfg = sweep.load_config(TOY)
    path = tmp_path / "toy.zarr"
    nan = sweep.PointResult({"y": np.full((2, 3), np.nan), "y_mean": np.full(2, np.nan), "n_pos": np.full(2, -1)},
                            ok=False, message="diverged at once")
    with Store.create_or_open(path, cfg) as st:
        assert st.write_point(0, nan, run=0) == FLAGGED
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sweep.status(path).counts["flagged"] == 1
    with Store.create_or_open(path, cfg) as st:
        assert 0 not in st.pending()


def test_a_corrupted_chunk_does_not_make_the_store_unreadable_and_is_recomputed(tmp_path):
    path = tmp_path / "toy.zarr"
    cfg = _full_store(path)
    chunk = path / "y" / "1.0.0.0"  # point a=1.0, kind='sin'
    chunk.write_bytes(b"\x02\x01!\x08" + b"\xff" * 20)  # a blosc header with garbage after it
    with pytest.warns(RuntimeWarning, match=r"a=1.0, kind='sin' \(y: chunk 1.0.0.0 unreadable"):
        ds = sweep.open_store(path)  # the old code: "blosc decompression: -1" for the whole store
    assert ds["sweep_status"].sel(a=1.0, kind="sin").item() == PENDING
    assert np.isnan(ds["y"].sel(a=1.0, kind="sin").values).all()
    good = ds["y"].sel(a=3.0, kind="cos", seed=7).values
    np.testing.assert_array_equal(good, direct(ToyProblem(a=3.0, n=3, kind="cos"), 7))
    with pytest.warns(RuntimeWarning):
        assert sweep.status(path).counts["pending"] == 1
    with pytest.warns(RuntimeWarning, match="pending again"):
        store = Store.create_or_open(path, cfg)
    with store:
        assert store.pending() == [2]
        compute_into(store, [2], run=1)
    _check_values(sweep.open_store(path), cfg)


def test_an_unreadable_status_array_makes_every_point_pending(tmp_path):
    path = tmp_path / "toy.zarr"
    cfg = _full_store(path)
    (path / "sweep_status" / "0.0").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="sweep_status is unreadable .*every point counts as pending"):
        assert sweep.status(path).counts["pending"] == 6
    with pytest.warns(RuntimeWarning, match="sweep_status is unreadable"):
        store = Store.create_or_open(path, cfg)
    with store:
        assert store.pending() == list(range(6))
        compute_into(store, range(6), run=1)
    assert sweep.status(path).complete


# -- 11. one-line errors -------------------------------------------------------------------------
def test_a_file_or_damaged_metadata_gives_a_one_line_error(tmp_path):
    cfg = sweep.load_config(TOY)
    file = tmp_path / "notes.txt"
    file.write_text("not a store")
    for call in (lambda: Store.create_or_open(file, cfg), lambda: sweep.status(file), lambda: sweep.open_store(file)):
        with pytest.raises(ValueError, match=r"^store: .*notes.txt is a file, not a sweep store directory") as info:
            call()
        assert "\n" not in str(info.value)
    assert file.read_text() == "not a store"
    path = tmp_path / "toy.zarr"
    _full_store(path)
    (path / ".zattrs").write_text('{"identity_hash": "abc", "grid_d')
    for call in (lambda: Store.create_or_open(path, cfg), lambda: sweep.status(path), lambda: sweep.open_store(path),
                 lambda: Store.create_or_open(path, cfg, overwrite=True)):
        with pytest.raises(ValueError, match=r"^store: .*(\.zattrs is damaged|not a sweep store written)") as info:
            call()
        assert "\n" not in str(info.value)
    result = cli.invoke(app, ["sweep-status", str(path)])
    assert result.exit_code == 2 and result.output.startswith("error: store: ")
    assert ".zattrs is damaged" in result.output
    assert (path / "y").is_dir()  # nothing deleted


def test_a_local_cluster_that_fails_to_start_is_one_line_and_leaves_no_store(tmp_path, monkeypatch):
    def nanny_dies(*args, **kwargs):
        raise RuntimeError("Nanny failed to start.\nTraceback ...")

    monkeypatch.setattr(execute, "local_cluster", nanny_dies)
    cfg = sweep.load_config(dict(TOY, sweep=dict(TOY["sweep"], store=str(tmp_path / "toy.zarr"))))
    with pytest.raises(sweep.SweepError, match=r"^cluster: the local Dask cluster of 1 worker\(s\) did not start "
                                               r"\(RuntimeError: Nanny failed to start.\); ") as info:
        sweep.run(cfg, n_workers=1, progress=False)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no store, no lock


def test_a_point_too_large_for_memory_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "500K")  # the toy runner estimates 1 MB per point
    cfg = sweep.load_config(dict(TOY, sweep=dict(TOY["sweep"], store=str(tmp_path / "toy.zarr"))))
    with pytest.raises(MemoryError, match=r"sweep point a=0.5, kind='sin' \(runner toy\) needs about 977 KiB .*"
                                          r"reduce that point's sizes"):
        sweep.run(cfg, n_workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
    # the dry run of an online.sgd sweep at N = 1e9 says so too
    big = sweep.load_config({"sweep": {"runner": "online.sgd", "seeds": 2}, "problem": {"M": 2, "K": 2},
                             "options": {"alpha_max": 1.0, "N": 1_000_000_000}, "grid": {"lr": [0.1, 0.5]}})
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "16G")
    est = sweep.estimate(big)
    assert est.task_memory_bytes > 100 * 2**30
    assert any("a run on a LocalCluster refuses it" in n for n in est.notes)
    with pytest.raises(MemoryError, match=r"sweep point lr=0.1 \(runner online.sgd\) needs about"):
        sweep.run(big, store=tmp_path / "big.zarr", progress=False)
    assert not (tmp_path / "big.zarr").exists()


# -- 12. configs are code; scheduler; leftovers; umask -------------------------------------------
def test_an_import_path_runner_is_not_imported_without_allow_import(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    (tmp_path / "pwn_sweep_runner.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nRUNNER = None\n")
    (tmp_path / "c.toml").write_text('[sweep]\nrunner = "pwn_sweep_runner:RUNNER"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli.invoke(app, ["sweep", "c.toml", "--dry-run"])
    assert result.exit_code == 2 and "--allow-import" in result.output
    assert not marker.exists() and "pwn_sweep_runner" not in sys.modules
    with pytest.raises(sweep.ConfigError, match="is an import path"):
        sweep.load_config(tmp_path / "c.toml")
    assert not marker.exists()
    # explicitly allowed: imported (and rejected, as it is no Runner)
    result = cli.invoke(app, ["sweep", "c.toml", "--dry-run", "--allow-import"])
    assert result.exit_code == 2 and "is a NoneType, not a learndyn.sweep.Runner" in result.output
    assert marker.read_text() == "ran"
    sys.modules.pop("pwn_sweep_runner", None)


def test_runners_of_installed_packages_come_through_entry_points(monkeypatch):
    import importlib.metadata as md

    ep = md.EntryPoint(name="toy-plugin", value="tests.sweep.toy:TOY", group="learndyn.sweep_runners")
    real = md.entry_points
    monkeypatch.setattr(md, "entry_points", lambda **kw: [ep] if kw.get("group") == "learndyn.sweep_runners"
                        else real(**kw))
    cfg = sweep.load_config({"sweep": {"runner": "toy-plugin"}, "problem": {"a": 1.0}})
    assert cfg.runner.name == "toy" and "toy-plugin" in sweep.available_runners()
    with pytest.raises(ValueError, match="unknown runner 'nope'.*learndyn.sweep_runners"):
        sweep.get_runner("nope")


def test_scheduler_addresses_are_validated():
    assert sweep.check_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert sweep.check_scheduler("127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert sweep.check_scheduler("tls://[::1]:8786") == "tls://[::1]:8786"
    for bad in ("http://127.0.0.1:8787/status", "tcp://host:99999", "tcp://a b:1", "", "/tmp/sock", "ftp://x:1"):
        with pytest.raises(ValueError, match="^scheduler: .*(not a Dask scheduler address|out of range|not an addr)"):
            sweep.check_scheduler(bad)


def test_a_non_dask_endpoint_is_reported_before_the_store_is_created(tmp_path, monkeypatch):
    """A local TCP server that answers like a web server: one line, and no store or lock is left."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setattr(execute, "CONNECT_TIMEOUT", "5s", raising=False)
    cfg = sweep.load_config(dict(TOY, sweep=dict(TOY["sweep"], store=str(tmp_path / "toy.zarr"))))
    import dask

    before = dask.config.get("scheduler", None)
    try:
        with pytest.raises(ValueError, match=rf"^scheduler: .* at tcp://127.0.0.1:{port} within 5s") as info:
            sweep.run(cfg, scheduler=f"127.0.0.1:{port}", progress=False)
    finally:
        srv.close()
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    # the failed Client must not leave scheduler="dask.distributed" in the process's Dask config
    assert dask.config.get("scheduler", None) == before
    xr.Dataset({"x": ("i", np.arange(3.0))}).chunk().to_netcdf(tmp_path / "after.nc")
    (tmp_path / "after.nc").unlink()
    with pytest.raises(ValueError, match="not a Dask scheduler address"):
        sweep.run(cfg, scheduler="http://127.0.0.1:8787", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_local_run_leaves_no_lock_and_no_dask_scratch_space(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(tmp_path)
    cfg = sweep.load_config(dict(TOY, sweep=dict(TOY["sweep"], store="out/toy.zarr")))
    ds = sweep.run(cfg, n_workers=1, progress=False)
    assert set(np.unique(ds["sweep_status"].values)) <= {DONE, FLAGGED}
    _check_values(ds, cfg)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["toy.zarr"]
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tmp"]


def test_results_and_stores_never_change_the_umask(tmp_path, monkeypatch):
    from learndyn.results import atomic_write_netcdf

    mask = os.umask(0o022)  # (setup only: the code under test must not call os.umask)
    os.umask(mask)

    def forbidden(*args):
        raise AssertionError("os.umask called: it changes the permissions of files other threads create")

    monkeypatch.setattr(os, "umask", forbidden)
    out = atomic_write_netcdf(xr.Dataset({"x": ("i", np.arange(3.0))}), tmp_path / "r.nc")
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
    cfg = _full_store(tmp_path / "toy.zarr")
    _check_values(sweep.open_store(tmp_path / "toy.zarr"), cfg)
    json.loads((tmp_path / "toy.zarr" / ".zattrs").read_text())
