"""The results store: layout, atomic per-point writes, resume identity, lock, status, plots (no Dask)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from learndyn import sweep
from learndyn.sweep.store import DONE, ERROR, FLAGGED, PENDING, Store

from .toy import ToyProblem, direct

TOY = {
    "sweep": {"runner": "toy", "name": "toy", "seeds": [3, 7]},
    "problem": {"n": 3},
    "options": {"flag_above": 2.5},
    "grid": {"a": [0.5, 1.0, 3.0], "kind": ["sin", "cos"]},
}


def compute_into(store: Store, flats, run=0):
    cfg = store.cfg
    for flat in flats:
        problem, options = cfg.point(flat)
        result, error, seconds = sweep.run_point(cfg.runner, problem, options, cfg.seeds)
        store.write_point(flat, result, run=run, seconds=seconds, error=error)


def test_layout_values_and_attributes(tmp_path):
    cfg = sweep.load_config(TOY)
    path = tmp_path / "toy.zarr"
    with Store.create_or_open(path, cfg) as st:
        assert st.pending() == list(range(6))
        compute_into(st, [0, 3, 5])
    ds = sweep.open_store(path)
    assert dict(ds.sizes) == {"a": 3, "kind": 2, "seed": 2, "i": 3}
    assert ds["y"].dims == ("a", "kind", "seed", "i")
    assert ds["kind"].values.tolist() == ["sin", "cos"] and ds["seed"].values.tolist() == [3, 7]
    for flat in (0, 3, 5):
        c = cfg.coords(flat)
        for s in cfg.seeds:
            ref = direct(ToyProblem(a=c["a"], n=3, kind=c["kind"]), s)
            np.testing.assert_array_equal(ds["y"].sel(**c, seed=s).values, ref)
            assert ds["y_mean"].sel(**c, seed=s).item() == pytest.approx(ref.mean(), rel=1e-15)
            assert ds["n_pos"].sel(**c, seed=s).item() == np.sum(ref > 0)
    # not computed: NaN and pending
    assert np.isnan(ds["y"].sel(a=0.5, kind="cos").values).all()
    st_codes = ds["sweep_status"].values.reshape(-1)
    assert st_codes[[1, 2, 4]].tolist() == [PENDING] * 3
    # a = 3 with |f| up to 1: y can exceed flag_above = 2.5 -> flagged, data kept
    y5 = ds["y"].sel(a=3.0, kind="cos").values
    assert st_codes[5] == (FLAGGED if np.any(y5 >= 2.5) else DONE)
    assert np.isfinite(y5).all()
    # attributes: config, version, identity
    import learndyn

    assert ds.attrs["learndyn_version"] == learndyn.__version__
    assert json.loads(ds.attrs["config"])["grid"]["a"] == [0.5, 1.0, 3.0]
    assert ds.attrs["identity_hash"] == cfg.identity_hash()
    assert ds.attrs["runner"] == "toy"


def test_resume_skips_done_points_and_rejects_another_sweep(tmp_path):
    cfg = sweep.load_config(TOY)
    path = tmp_path / "toy.zarr"
    with Store.create_or_open(path, cfg) as st:
        compute_into(st, [0, 1])
    with Store.create_or_open(path, sweep.load_config(TOY)) as st:
        assert st.pending() == [2, 3, 4, 5]
    other = json.loads(json.dumps(TOY))
    other["problem"]["n"] = 4
    with pytest.raises(ValueError, match="holds a different sweep .differs in: problem"):
        Store.create_or_open(path, sweep.load_config(other))
    with Store.create_or_open(path, sweep.load_config(other), overwrite=True) as st:
        assert st.pending() == list(range(6))


def test_lock_excludes_a_second_writer(tmp_path):
    cfg = sweep.load_config(TOY)
    path = tmp_path / "toy.zarr"
    with Store.create_or_open(path, cfg):
        with pytest.raises(ValueError, match="in use by another sweep process"):
            Store.create_or_open(path, cfg)
    with Store.create_or_open(path, cfg):  # released
        pass


def test_errors_are_recorded_and_retried(tmp_path):
    d = json.loads(json.dumps(TOY))
    d["options"]["fail_when_a"] = 1.0
    cfg = sweep.load_config(d)
    path = tmp_path / "toy.zarr"
    with Store.create_or_open(path, cfg) as st:
        compute_into(st, range(6))
        assert st.pending() == [2, 3]  # a = 1.0 failed: to be retried
        # a result of the wrong shape is an error of its point, not a corrupt store
        bad = sweep.PointResult({"y": np.zeros((2, 5)), "y_mean": np.zeros(2), "n_pos": np.zeros(2)})
        assert st.write_point(2, bad, run=0) == ERROR
    status = sweep.status(path)
    assert status.counts["error"] == 2 and status.counts["pending"] == 0
    assert "deliberate failure at a=1.0" in status.errors[1][1]
    assert "bad runner result: output 'y' has shape (2, 5), expected (2, 3)" in status.errors[0][1]
    assert not status.complete
    assert "2 failed" in status.summary()


def test_a_point_interrupted_before_its_status_is_recomputed(tmp_path):
    """Values written but status not (a kill between the two): the point stays pending and is
    overwritten by the next run; it is never marked done with partial data."""
    cfg = sweep.load_config(TOY)
    path = tmp_path / "toy.zarr"
    with Store.create_or_open(path, cfg) as st:
        st.group["y"][0, 0] = np.full((2, 3), 99.0)  # half of a point's write
        assert 0 in st.pending()
        compute_into(st, [0])
        assert 0 not in st.pending()
    ds = sweep.open_store(path)
    np.testing.assert_array_equal(ds["y"].isel(a=0, kind=0, seed=0).values, direct(ToyProblem(a=0.5, n=3), 3))
    raw = sweep.open_store(path, only_done=False)
    assert raw["sweep_status"].values.reshape(-1).tolist().count(DONE) + \
        raw["sweep_status"].values.reshape(-1).tolist().count(FLAGGED) == 1


def test_plot_and_estimate(tmp_path):
    cfg = sweep.load_config(TOY)
    path = tmp_path / "toy.zarr"
    with Store.create_or_open(path, cfg) as st:
        compute_into(st, range(6))
    fig = sweep.plot(path, x="a", y="y_mean", hue="kind", out=tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    line = fig.axes[0].lines[0]
    # the plotted line is the seed mean of y_mean
    ds = sweep.open_store(path)
    np.testing.assert_allclose(line.get_ydata(), ds["y_mean"].sel(kind="sin").mean("seed").values)
    with pytest.raises(ValueError, match="varies along kind"):
        sweep.plot(ds, x="a", y="y_mean")
    with pytest.raises(ValueError, match="y: 'nope' is not a variable"):
        sweep.plot(ds, x="a", y="nope")
    sweep.plot(ds, x="i", y="y", hue="a", sel={"kind": "cos"})
    est = sweep.estimate(cfg, store=path, n_workers=2)
    assert est.points == 6 and est.pending == 0
    est2 = sweep.estimate(cfg, n_workers=2)
    assert est2.pending == 6 and "6 to compute" in est2.summary()
    assert isinstance(xr.Dataset, type)


def test_a_single_point_sweep_keeps_its_whole_message(tmp_path):
    # issue 12: with every parameter fixed (a 0-d grid) the message came back cut to one character ('y')
    cfg = sweep.load_config({**TOY, "problem": {"n": 3, "a": 3.0, "kind": "sin"}, "grid": {}})
    path = tmp_path / "one.zarr"
    with Store.create_or_open(path, cfg) as st:
        compute_into(st, [0])
    with Store.create_or_open(path, cfg) as st:  # read back from disk, not from the writer's memory
        assert st.statuses().tolist() == [FLAGGED]
    problem, options = cfg.point(0)
    expected = sweep.run_point(cfg.runner, problem, options, cfg.seeds)[0].message
    assert expected.startswith("y above flag_above")
    ds = sweep.open_store(path, only_done=False)
    assert str(ds["sweep_message"].values) == expected
    assert sweep.status(path).flagged == [({}, expected)]
