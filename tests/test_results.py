"""learndyn.results: saving never loses or damages data, and load gives back the object that saved it."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import xarray as xr

import learndyn
from learndyn import results


# ------------------------------------------------------------------------------------------------
# round trips: save -> load -> the same class, the same problem, equal arrays
# ------------------------------------------------------------------------------------------------
def _online():
    from learndyn import activations, online

    p = online.Problem(M=2, K=3, lr=0.5, train_second_layer=True, activation=activations.erf(0.5))
    sim = online.simulate(p, 100, alpha_max=0.5, seeds=[3, 5], test_set_size=64)
    traj = online.integrate(p, sim.initial_state(3), alpha_max=2.0)
    comp = online.compare(p, simulation=sim)
    lin = online.Problem(M=1, K=1, activation="erf", lr=0.5)
    fp = online.fixed_point(lin, online.OrderParameters(Q=[[0.9]], R=[[0.8]], T=[[1.0]]))
    return [traj, sim, comp, fp]


def _dmft():
    from learndyn import dmft

    p = dmft.Problem(m=3, n_over_d=1.2, tau=0.5, a0=0.7, h=[0, 0.9, 0.5, 0.2], target="activation", v0=0.2,
                     C0=np.full((3, 3), 0.3) + 0.7 * np.eye(3))
    sym = dmft.solve(p, t_max=0.3, dt=0.05, method="symmetric")
    gen = dmft.solve(p, t_max=0.3, dt=0.05, method="general")
    q = dmft.Problem(m=2, n_over_d=2.0, h="tanh", target="activation")
    red = dmft.reduced.mean_field_ode(q, np.linspace(0, 1, 5))
    sim = dmft.gaussian_model.simulate(dmft.Problem(m=2, n_over_d=2.0, target=[0, 0.5]), d=20, t_max=0.3, dt=0.05, seeds=(1, 2))
    return [sym, gen, red, sim]


def _kernels():
    from learndyn import kernels
    from learndyn.kernels import signal, spectrum, train

    x = np.random.default_rng(0).standard_normal((6, 5))
    k = kernels.fcn(2, "relu", 2.0, 0.1, width=8).kernel(x)
    kd = kernels.cnn(1, "erf", 1.5, 0.0, channels=4).kernel(x.reshape(6, 5, 1, 1)[:, :4, :, :].repeat(2, axis=2))
    sp = signal.signal_propagation("erf", np.array([1.0, 1.5, 2.5]), 0.05)
    cl = signal.critical_line("erf", (0.0, 0.1))
    y = np.eye(2)[np.arange(6) % 2]
    spec = spectrum.spectrum_vs_depth(x, y, x[:3], [1, 2], activation="erf", weight_var=1.5, bias_var=0.05)
    tr = train(kernels.fcn(1, "erf", 1.0, 0.1, width=8, out_dim=2), x, y, np.arange(6) % 2, x[:3],
                     np.arange(3) % 2, steps=4, batch_size=3, seeds=2, log_every=2)
    kp = kernels.kernel(kernels.Problem(depth=2, activation="relu", weight_var=2.0, bias_var=0.1), x)
    gd = kernels.gd_predictions(kp.nngp, kp.ntk, 4, y[:4], [1.0, np.inf], n_draws=2, labels_train=np.arange(4) % 2,
                                labels_test=np.arange(2) % 2)
    return [k, kd, sp, cl, spec, tr, kp, gd]


def _same_dataset(a: xr.Dataset, b: xr.Dataset, rtol: float = 0.0) -> None:
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        x, y = a[name].values, b[name].values
        assert x.dtype.kind == y.dtype.kind, name
        if x.dtype.kind in "fc" and rtol:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol, err_msg=name)
        elif x.dtype.kind in "fc":
            np.testing.assert_array_equal(x, y, err_msg=name)  # bit-identical, NaNs in the same places
        else:
            assert np.array_equal(x, y), name
    ignore = {"wall_time_s"}
    assert {k: v for k, v in a.attrs.items() if k not in ignore} == {k: v for k, v in b.attrs.items()
                                                                     if k not in ignore}


@pytest.mark.parametrize("make", [_online, _dmft, _kernels], ids=["online", "dmft", "kernels"])
def test_save_load_round_trip(make, tmp_path):
    made = make()
    seen = set()
    for i, res in enumerate(made):
        path = res.save(tmp_path / f"r{i}.nc")
        back = learndyn.load(path)
        assert type(back) is type(res), type(res)
        seen.add(type(res).__qualname__)
        stored = results.load_dataset(path)
        assert stored.attrs.pop(results.RESULT_CLASS_ATTR) == results.result_class_key(type(res))
        # the symmetric DMFT keeps C_d +- C_o combinations and rebuilds them from the stored C_d, C_o: the
        # round trip is exact up to rounding (a few ulp); everything else is bit-identical
        _same_dataset(back.to_xarray(), res.to_xarray(), rtol=1e-15 if "Symmetric" in type(res).__name__ else 0)
        if hasattr(res, "problem"):
            assert type(back.problem) is type(res.problem)
            assert results.problem_attrs(back.problem)["problem"] == results.problem_attrs(res.problem)["problem"]
        if hasattr(res, "network"):
            assert back.network == res.network and back.network.describe() == res.network.describe()
    assert len(seen) >= 4


def test_round_trip_objects_behave_alike(tmp_path):
    """Beyond the stored arrays: derived quantities and nested objects come back."""
    from learndyn import online

    traj, sim, comp, fp = _online()
    back = [learndyn.load(r.save(tmp_path / f"{i}.nc")) for i, r in enumerate((traj, sim, comp, fp))]
    assert back[0].problem == traj.problem and back[0].final_state.Q.tolist() == traj.final_state.Q.tolist()
    assert back[1].initial_state(5).R.tolist() == sim.initial_state(5).R.tolist()
    np.testing.assert_array_equal(back[1].eg_mean, sim.eg_mean)
    assert back[2].summary() == comp.summary()
    assert isinstance(back[2].simulation, online.Simulation)
    np.testing.assert_array_equal(back[3].eigenvalues, fp.eigenvalues)
    assert (back[3].stable, back[3].converged) == (fp.stable, fp.converged)


def test_load_falls_back_to_the_dataset(tmp_path):
    ds = xr.Dataset({"x": ("i", np.arange(3.0))}, attrs={"note": "not a learndyn result"})
    results.atomic_write_netcdf(ds, tmp_path / "plain.nc")
    back = learndyn.load(tmp_path / "plain.nc")
    assert isinstance(back, xr.Dataset) and back["x"].values.tolist() == [0.0, 1.0, 2.0]
    # a class name that is not in the registry is never imported
    ds.attrs[results.RESULT_CLASS_ATTR] = "os.system"
    results.atomic_write_netcdf(ds, tmp_path / "odd.nc")
    assert isinstance(learndyn.load(tmp_path / "odd.nc"), xr.Dataset)


def test_load_of_a_custom_activation_warns_and_gives_the_dataset(tmp_path):
    import jax.numpy as jnp

    from learndyn import online

    p = online.Problem(M=1, K=1, activation=lambda x: jnp.tanh(x))
    traj = online.integrate(p, online.OrderParameters(Q=[[1.0]], R=[[0.1]], T=[[1.0]]), alphas=[0.0, 0.5])
    with pytest.warns(RuntimeWarning, match="cannot be rebuilt"):
        back = learndyn.load(traj.save(tmp_path / "t.nc"))
    assert isinstance(back, xr.Dataset)
    np.testing.assert_array_equal(back["Q"].values, traj.Q)


def test_load_rejects_non_netcdf(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match="path: .* is not a netCDF file"):
        learndyn.load(tmp_path / "a.txt")
    with pytest.raises(ValueError, match="does not exist"):
        learndyn.load(tmp_path / "missing.nc")


# ------------------------------------------------------------------------------------------------
# writing: the path is checked first; a failed write leaves no temporary file and the old file intact
# ------------------------------------------------------------------------------------------------
def _ds(value: float = 1.0) -> xr.Dataset:
    return xr.Dataset({"x": ("i", np.full(4, value))})


def _leftovers(folder) -> list:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_unwritable_locations_are_refused_before_writing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"^out: cannot write .*file is a file, not a folder"):
        results.check_output_path(blocker / "sub" / "r.nc", name="out")
    with pytest.raises(ValueError, match="is a folder"):
        results.check_output_path(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(ValueError, match=r"^path: cannot write .* is not writable"):
        results.atomic_write_netcdf(_ds(), tmp_path / "r.nc")
    assert not (tmp_path / "r.nc").exists()


def test_non_netcdf_files_are_not_overwritten_without_overwrite(tmp_path):
    target = tmp_path / "notes.nc"
    target.write_text("precious notes")
    with pytest.raises(ValueError, match="not a netCDF file.*overwrite=True"):
        results.atomic_write_netcdf(_ds(), target)
    assert target.read_text() == "precious notes"
    results.atomic_write_netcdf(_ds(2.0), target, overwrite=True)
    assert results.load_dataset(target)["x"].values.tolist() == [2.0] * 4
    # an existing netCDF file is replaced without asking (the usual re-run)
    results.atomic_write_netcdf(_ds(3.0), target)
    assert results.load_dataset(target)["x"].values.tolist() == [3.0] * 4
    assert results.is_netcdf_file(target) and not results.is_netcdf_file(tmp_path / "missing")


def test_full_disk_is_refused_and_the_old_file_kept(tmp_path, monkeypatch):
    target = tmp_path / "r.nc"
    results.atomic_write_netcdf(_ds(1.0), target)
    before = target.read_bytes()
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(OSError, match="not enough disk space.*existing file is unchanged") as info:
        results.atomic_write_netcdf(_ds(2.0), target)
    assert info.value.errno == 28  # ENOSPC
    assert target.read_bytes() == before and _leftovers(tmp_path) == []


def test_failure_during_the_write_removes_the_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "r.nc"
    results.atomic_write_netcdf(_ds(1.0), target)
    before = target.read_bytes()

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        results.atomic_write_netcdf(_ds(2.0), target)
    assert target.read_bytes() == before and _leftovers(tmp_path) == []


def test_dmft_cli_checks_out_before_solving(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from learndyn import dmft
    from learndyn.cli import app

    def refuse(*a, **k):
        raise AssertionError("solved before checking --out")

    monkeypatch.setattr(dmft, "solve", refuse)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(app, ["dmft", "--m", "2", "--t-max", "1", "--dt", "0.05", "--out", str(blocker / "r")])
    text = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "--out" in text and "not a folder" in text, res.output


def test_large_datasets_are_written_without_a_copy_in_memory(tmp_path, monkeypatch):
    """Too large to serialise in memory (LEARNDYN_MEMORY_LIMIT): written straight to the temporary file,
    with the same contents and the same refusal on a full disk."""
    calls = []
    to_netcdf = xr.Dataset.to_netcdf

    def no_bytes_in_memory(ds, path=None, *args, **kwargs):  # to_netcdf() without a path: bytes in memory
        if path is None:
            calls.append(1)
            return b""
        return to_netcdf(ds, path, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", no_bytes_in_memory)
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "100")
    results.atomic_write_netcdf(_ds(5.0), tmp_path / "big.nc")
    assert calls == [] and results.load_dataset(tmp_path / "big.nc")["x"].values.tolist() == [5.0] * 4
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10))
    with pytest.raises(OSError, match="not enough disk space"):
        results.atomic_write_netcdf(_ds(6.0), tmp_path / "big.nc")
    assert results.load_dataset(tmp_path / "big.nc")["x"].values.tolist() == [5.0] * 4
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("paper, args", [("goldt2019", ["--figure", "fig1"]), ("montanari2025", ["--figure", "2"]),
                                         ("xiao2020", ["--figure", "signal"])])
def test_reproduce_checks_the_output_folder_first(paper, args, tmp_path):
    from typer.testing import CliRunner

    from learndyn.cli import app

    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        res = CliRunner().invoke(app, ["reproduce", paper, *args, "--quick", "--out", str(out)])
        text = " ".join(res.output.replace("│", " ").split())
        assert res.exit_code == 2 and "--out" in text and "not a folder" in text, res.output
    assert results.check_output_folder(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert not (tmp_path / "new").exists()
