"""Out-of-core kernels (learndyn.kernels.store): the Zarr kernel store against the in-memory kernel and
neural-tangents' stored references, resume after a kill (no block lost, none computed twice), refusals,
Dask workers, and the streamed operator / conjugate gradients / predictions against dense NumPy solves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

from learndyn import Status, cluster, kernels
from learndyn.kernels import store as kstore
from learndyn.resources import StoreLock
from learndyn.results import InvalidInputError

SRC = Path(__file__).resolve().parents[2] / "src"
REF = np.load(Path(__file__).parent / "data" / "nt_reference.npz")
P = kernels.Problem("fcn", depth=3, activation="relu", weight_var=2.0, bias_var=0.1)


def _x(n, d=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# -- values --------------------------------------------------------------------------------------
def test_symmetric_and_cross_stores_equal_the_in_memory_kernel(tmp_path):
    x, xt = _x(23), _x(9, seed=1)
    ks = kernels.kernel_store(P, x, path=tmp_path / "k.zarr", block_size=7, progress=False)
    st = ks.status()
    assert st.complete and st.total == 10 and st.done == 10  # 4 block rows: only I <= J
    k = P.kernel(x)
    # only the upper blocks exist on disk (readers mirror)
    assert sorted(p.name for p in (tmp_path / "k.zarr" / "ntk").iterdir() if not p.name.startswith(".")) == sorted(
        f"{i}.{j}" for i in range(4) for j in range(i, 4))
    for kind in ("nngp", "ntk"):
        ref = getattr(k, kind)
        assert _rel(ks.to_numpy(kind), ref) < 1e-12
        np.testing.assert_allclose(ks.diagonal(kind), np.diag(ref), rtol=1e-12)
        np.testing.assert_allclose(ks.block(kind, slice(3, 20), slice(5, 22)), ref[3:20, 5:22], rtol=1e-12)
    kt = kernels.kernel_store(P.network(), xt, x, path=tmp_path / "kt.zarr", block_size=4, get="nngp", progress=False)
    assert kt.kinds == ("nngp",) and kt.shape == (9, 23) and kt.status().total == 3 * 6
    assert _rel(kt.to_numpy("nngp"), P.kernel(xt, x).nngp) < 1e-12
    with pytest.raises(InvalidInputError, match="kind: this store holds .*get='nngp'"):
        kt.to_numpy("ntk")
    only = kernels.kernel_store(P, xt, path=tmp_path / "ntk.zarr", get="ntk", progress=False)
    assert only.kinds == ("ntk",) and not (tmp_path / "ntk.zarr" / "nngp").exists()
    assert _rel(only.to_numpy("ntk"), P.kernel(xt).ntk) < 1e-12
    # reopened from disk: same values, network and problem
    again = kernels.KernelStore.open(tmp_path / "k.zarr")
    assert again.problem == P and again.network == P.network()
    assert _rel(again.to_kernel().ntk, k.ntk) < 1e-12
    # the lazy Dataset, mirrored, with per-block scales
    ds = again.to_xarray()
    m = ds["ntk_mantissa"].values
    e = np.repeat(np.repeat(ds["ntk_log2_scale"].values, 7, 0), 7, 1)[:23, :23]
    assert _rel(np.ldexp(m, e.astype(int)), k.ntk) < 1e-12


@pytest.mark.parametrize("name,build,x1,block", [
    ("fcn_relu_d5", lambda: kernels.fcn(5, "relu", 2.0, 0.1), "xf1", 4),
    ("cnn_relu_same_gap_d3", lambda: kernels.cnn(3, "relu", 2.0, 0.01, padding="same", readout="gap"), "xi1", 3),
])
def test_stores_match_neural_tangents_references(tmp_path, name, build, x1, block):
    x = REF[x1]
    ks = kernels.kernel_store(build(), x, path=tmp_path / "k.zarr", block_size=block, progress=False)
    for kind in ("nngp", "ntk"):
        # the test of Network.kernel's tolerances: 1e-11, 1e-7 for NT's rounding noise on the ReLU NTK diagonal
        assert _rel(ks.to_numpy(kind), REF[f"{name}_tt_{kind}"]) < (1e-7 if kind == "ntk" else 1e-11)


def test_kernels_beyond_float64_keep_their_block_scales(tmp_path):
    net = kernels.fcn(30, "relu", 1e12, 0.0)  # entries ~2^1091: beyond float64
    x, xt = _x(10, 4), _x(5, 4, seed=3)
    ks = kernels.kernel_store(net, x, path=tmp_path / "k.zarr", block_size=4, progress=False)
    k = net.kernel(x)
    with pytest.raises(OverflowError, match="leave the float64 range"):
        ks.to_numpy("ntk")
    e = ks.log2_scale("ntk")
    assert e > 1024
    ref = np.ldexp(k.ntk_mantissa, int(k.ntk_log2_scale - e))
    assert _rel(ks.to_numpy("ntk", log2_scale=e), ref) < 1e-12
    # the prediction is scale free: equal to the mean predictor on the mantissas
    kt = kernels.kernel_store(net, xt, x, path=tmp_path / "kt.zarr", block_size=4, progress=False)
    ktt = net.kernel(xt, x)
    y = np.sin(x[:, 0])
    pred = ks.predict(kt, y, kind="ntk", reg=1e-4, tol=1e-12)
    mant = np.ldexp(ktt.ntk_mantissa, int(ktt.ntk_log2_scale - k.ntk_log2_scale))
    want = kernels.mean_predictor(k.ntk_mantissa, mant, y, reg=1e-4).mean
    assert pred.success and _rel(pred.mean, want) < 1e-9
    assert pred.reg == np.inf  # the physical regularisation itself is beyond float64


# -- resume and safety ---------------------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from learndyn import kernels
    from learndyn.kernels import store as kstore
    path, mode, k, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    real_task = kstore._block_task
    def counted(*a, **kw):
        with open(log, "a") as fh:
            fh.write("block\\n")
        return real_task(*a, **kw)
    kstore._block_task = counted
    done = []
    def after_block(i, j):
        done.append((i, j))
        if mode == "after" and len(done) == k:
            os.kill(os.getpid(), signal.SIGKILL)
    if mode == "midwrite":  # killed after the block's data is written, before its status
        real_mark = kstore.KernelStore._mark_done
        def mark(self, i, j, code):
            if len(done) == k:
                os.kill(os.getpid(), signal.SIGKILL)
            real_mark(self, i, j, code)
        kstore.KernelStore._mark_done = mark
    x = np.random.default_rng(0).standard_normal((23, 6))
    p = kernels.Problem("fcn", depth=3, activation="relu", weight_var=2.0, bias_var=0.1)
    kernels.kernel_store(p, x, path=path, block_size=5, progress=False, callback=after_block)
""")


@pytest.mark.parametrize("mode,lost", [("after", 0), ("midwrite", 1)])
def test_a_killed_run_resumes_without_losing_or_repeating_a_block(tmp_path, monkeypatch, mode, lost):
    path, log = tmp_path / "k.zarr", tmp_path / "child.log"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ, PYTHONPATH=str(SRC), LEARNDYN_CPU_DEVICES="1")
    k = 6
    proc = subprocess.run([sys.executable, str(script), str(path), mode, str(k), str(log)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    child_blocks = log.read_text().count("block")
    total = 15  # 5 block rows of 5: 15 blocks I <= J
    before = kernels.KernelStore.open(path).status()
    assert before.done == k and before.pending == total - k
    assert child_blocks == k + lost  # the block being written when killed was computed, not marked done
    calls = []
    real = kstore._block_task
    monkeypatch.setattr(kstore, "_block_task", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    x = _x(23)
    ks = kernels.kernel_store(P, x, path=path, progress=False)
    assert len(calls) == total - k  # exactly the pending blocks
    assert child_blocks + len(calls) == total + lost
    assert ks.status().complete and not (tmp_path / ".k.zarr.lock").exists()
    ref = P.kernel(x)
    for kind in ("nngp", "ntk"):
        assert _rel(ks.to_numpy(kind), getattr(ref, kind)) < 1e-12
    # a complete store is not recomputed
    calls.clear()
    kernels.kernel_store(P, x, path=path, progress=False)
    assert calls == []


def test_partial_runs_missing_chunks_and_refusals(tmp_path):
    x = _x(12)
    path = tmp_path / "k.zarr"
    ks = kernels.kernel_store(P, x, path=path, block_size=4, progress=False, max_blocks=2)
    assert ks.status().done == 2 and not ks.complete
    with pytest.raises(InvalidInputError, match="incomplete .*2/6 blocks"):
        ks.to_numpy("nngp")
    with pytest.raises(InvalidInputError, match="is not computed yet"):
        ks.block("nngp", slice(0, 12), slice(0, 12))
    # other inputs, another network, other kinds, another block size: refused, nothing changed
    with pytest.raises(InvalidInputError, match=r"holds another kernel \(the inputs x1 differ\).*overwrite=True"):
        kernels.kernel_store(P, x + 1e-9, path=path, progress=False)
    with pytest.raises(InvalidInputError, match=r"holds another kernel \(the network differ"):
        kernels.kernel_store(P.replace(depth=4), x, path=path, progress=False)
    with pytest.raises(InvalidInputError, match=r"the kinds \(get\)"):
        kernels.kernel_store(P, x, path=path, get="nngp", progress=False)
    with pytest.raises(InvalidInputError, match="was started with block_size=4"):
        kernels.kernel_store(P, x, path=path, block_size=3, progress=False)
    assert kernels.KernelStore.open(path).status().done == 2
    # a done block whose data file vanished is computed again
    (path / "ntk" / "0.0").unlink()
    with pytest.warns(RuntimeWarning, match="missing data"):
        assert kernels.KernelStore.open(path).status().done == 1
    with pytest.warns(RuntimeWarning):
        ks = kernels.kernel_store(P, x, path=path, progress=False)
    assert ks.complete and _rel(ks.to_numpy("ntk"), P.kernel(x).ntk) < 1e-12
    # overwrite replaces a kernel store ...
    ks2 = kernels.kernel_store(P, x[:5], path=path, overwrite=True, progress=False)
    assert ks2.shape == (5, 5)
    # ... but never a folder that is not one, nor an existing non-store folder without it
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    for ow in (False, True):
        with pytest.raises(InvalidInputError, match="not a kernel store"):
            kernels.kernel_store(P, x, path=other, overwrite=ow, progress=False)
    assert (other / "keep.txt").read_text() == "x"
    with pytest.raises(InvalidInputError, match="is not a kernel store written by learndyn"):
        kernels.KernelStore.open(other)
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInputError, match="is a file"):
        kernels.kernel_store(P, x, path=tmp_path / "file", progress=False)
    # a second writer is refused while the first holds the lock
    lock = StoreLock(path.resolve(), "a test holding the lock")
    try:
        with pytest.raises(InvalidInputError, match="being written by another process"):
            kernels.kernel_store(P, x[:5], path=path, progress=False)
    finally:
        lock.release()
    with pytest.raises(InvalidInputError, match="block_size: must be a positive integer"):
        kernels.kernel_store(P, x, path=tmp_path / "b.zarr", block_size=0)
    with pytest.raises(InvalidInputError, match="readout"):
        kernels.kernel_store(kernels.serial(kernels.Conv(4, 1.0, 0.0, (3, 3), "circular")), np.ones((2, 4, 4, 1)),
                             path=tmp_path / "c.zarr")
    assert not (tmp_path / "b.zarr").exists() and not (tmp_path / "c.zarr").exists()


def test_a_kernel_larger_than_the_free_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(kstore.shutil, "disk_usage", lambda p: usage(10**6, 0, 5_000))
    with pytest.raises(InvalidInputError, match=r"needs about 9\.38 KiB on disk, but only 4\.88 KiB is free"):
        kernels.kernel_store(P, _x(40), path=tmp_path / "k.zarr", block_size=20, get="ntk", progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing created, no lock left
    monkeypatch.undo()
    assert kernels.kernel_store(P, _x(40), path=tmp_path / "k.zarr", block_size=20, get="ntk", progress=False).complete


def test_to_numpy_is_refused_when_it_would_not_fit(tmp_path, monkeypatch):
    ks = kernels.kernel_store(P, _x(40), path=tmp_path / "k.zarr", block_size=20, progress=False)
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "4K")
    with pytest.raises(kernels.KernelMemoryError, match="operator / predict"):
        ks.to_numpy("ntk")


def test_default_block_size_follows_the_memory_estimate(tmp_path, monkeypatch):
    x = _x(300)
    ks = kernels.kernel_store(P, x, path=tmp_path / "a.zarr", get="nngp", progress=False)
    assert ks.block_size == 300  # a small kernel is one block
    # with little memory the block shrinks until the honest estimate fits each worker's share
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "8M")
    net = P.network()
    b1, limit1 = kstore._memory_plan(net, x.shape, 300, ("nngp", "ntk"), 1, None, None)
    b2, limit2 = kstore._memory_plan(net, x.shape, 300, ("nngp", "ntk"), 2, None, None)
    share = 0.5 * 8 * 2**20
    assert limit1 == 0.5 * share and limit2 == 0.25 * share
    assert 16 <= b2 <= b1 < 300
    est = net.memory_estimate(b1, b1, (), channels=6, get=("nngp", "ntk"), memory_limit=limit1)
    assert est + 3 * 8 * 2 * b1 * b1 <= share
    assert kstore._memory_plan(net, x.shape, 300, ("nngp",), 1, 7, 1e6) == (7, 1e6)  # as given


def test_blocks_on_a_local_dask_cluster_of_two_processes(tmp_path, monkeypatch):
    x, xt = _x(14), _x(5, seed=2)
    ks = kernels.kernel_store(P, x, path=tmp_path / "k.zarr", block_size=4, n_workers=2, progress=False)
    assert ks.complete
    assert _rel(ks.to_numpy("ntk"), P.kernel(x).ntk) < 1e-12
    with pytest.raises(ValueError, match="not a Dask scheduler address"):
        kernels.kernel_store(P, xt, x, path=tmp_path / "kt.zarr", scheduler="http://127.0.0.1:8787")
    # nothing listens there: refused before the store is created (or an old one replaced)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")  # Dask retries a refused connection until the timeout
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ValueError, match=f"no Dask scheduler answered at tcp://127.0.0.1:{port} within 1s"):
        kernels.kernel_store(P, xt, x, path=tmp_path / "kt.zarr", scheduler=f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match="no Dask scheduler answered"):
        kernels.kernel_store(P, xt, x, path=tmp_path / "k.zarr", scheduler=f"127.0.0.1:{port}", overwrite=True)
    assert not (tmp_path / "kt.zarr").exists() and kernels.KernelStore.open(tmp_path / "k.zarr").shape == (14, 14)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.zarr"]  # no lock left behind


# -- operator, conjugate gradients, predictions ---------------------------------------------------
def test_the_streamed_operator_is_the_in_memory_kernel(tmp_path):
    x = _x(30)
    ks = kernels.kernel_store(P, x, path=tmp_path / "k.zarr", block_size=8, progress=False, cache_bytes=0)
    K = P.kernel(x).ntk
    v = np.random.default_rng(5).standard_normal((30, 3))
    for reg, relative, lam in ((0.0, True, 0.0), (1e-2, True, 1e-2 * np.mean(np.diag(K))), (0.5, False, 0.5)):
        op = ks.operator("ntk", reg, relative)
        assert isinstance(op, LinearOperator) and op.shape == (30, 30)
        A = K + lam * np.eye(30)
        np.testing.assert_allclose(op.matmat(v), A @ v, rtol=1e-12, atol=1e-12 * np.abs(A).max())
        np.testing.assert_allclose(op.matvec(v[:, 0]), A @ v[:, 0], rtol=1e-12, atol=1e-12 * np.abs(A).max())
        np.testing.assert_allclose(op.diagonal(), np.diag(A), rtol=1e-13)
    sc = ks.operator("ntk", scaled=True)
    np.testing.assert_allclose(np.ldexp(sc.matvec(v[:, 0]), int(ks.log2_scale("ntk"))), K @ v[:, 0], rtol=1e-12)
    with pytest.raises(InvalidInputError, match="reg: must be a finite number"):
        ks.operator("ntk", -1.0)
    kt = kernels.kernel_store(P, x[:3], x, path=tmp_path / "kt.zarr", progress=False)
    with pytest.raises(InvalidInputError, match="symmetric train-train store"):
        kt.operator("ntk")


def test_conjugate_gradient_against_numpy_solve():
    rng = np.random.default_rng(0)
    n = 60
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.linspace(1.0, 50.0, n)) @ Q.T
    Y = rng.standard_normal((n, 3))
    Y[:, 1] = 0.0  # a zero column converges at once
    want = np.linalg.solve(A, Y)
    for pre in ("jacobi", "nystrom", "auto", None, np.diag(1 / np.diag(A)), lambda r: r / np.diag(A)):
        sol = kernels.conjugate_gradient(A, Y, tol=1e-12, preconditioner=pre)
        assert sol.success and sol.status is Status.SUCCESS, sol.message
        assert np.max(np.abs(sol.x - want)) < 1e-8 * np.max(np.abs(want))
        assert sol.residuals.shape == (sol.iterations + 1, 3) and sol.residuals[-1].max() <= 1e-12
    # a Nystrom sketch of full rank is the inverse: converged at once; of low rank on a decaying spectrum
    # (a kernel-like matrix) far fewer iterations than Jacobi
    assert kernels.conjugate_gradient(A, Y, tol=1e-12, preconditioner="nystrom", rank=n).iterations <= 2
    D = (Q * np.logspace(0, -6, n)) @ Q.T + 1e-6 * np.eye(n)
    its = {pre: kernels.conjugate_gradient(D, Y, tol=1e-10, preconditioner=pre, rank=20) for pre in ("jacobi", "nystrom")}
    assert its["nystrom"].success and its["nystrom"].iterations < its["jacobi"].iterations / 2
    assert np.max(np.abs(its["nystrom"].x - np.linalg.solve(D, Y))) < 1e-7 * np.max(np.abs(np.linalg.solve(D, Y)))
    with pytest.raises(InvalidInputError, match="rank: must be an integer in 1..60"):
        kernels.conjugate_gradient(A, Y, preconditioner="nystrom", rank=61)
    one = kernels.conjugate_gradient(A, Y[:, 0], tol=1e-12)
    assert one.x.shape == (n,) and np.max(np.abs(one.x - want[:, 0])) < 1e-8 * np.max(np.abs(want))
    # warm start at the answer: no iteration
    assert kernels.conjugate_gradient(A, Y, x0=want, tol=1e-8).iterations == 0
    # stopped early: NOT_CONVERGED, the iterate and the residual history kept, no NaN
    short = kernels.conjugate_gradient(A, Y, maxiter=2, tol=1e-12, preconditioner=None)
    assert short.status is Status.NOT_CONVERGED and "not converged after 2 iterations" in short.message
    assert short.residuals.shape == (3, 3) and np.all(np.isfinite(short.x))
    assert np.all(np.diff(short.residuals[:, 0]) < 0)
    # not positive definite: said so, never NaN
    B = (Q * np.linspace(-1.0, 50.0, n)) @ Q.T
    bad = kernels.conjugate_gradient(B, rng.standard_normal(n), tol=1e-12, preconditioner=None)
    assert bad.status is Status.NOT_PSD and "not positive definite" in bad.message and np.all(np.isfinite(bad.x))
    neg = np.diag(np.r_[-1.0, np.ones(n - 1)])
    assert kernels.conjugate_gradient(neg, np.ones(n)).status is Status.NOT_PSD
    assert kernels.conjugate_gradient(-np.eye(n), np.ones(n), preconditioner="nystrom").status is Status.NOT_PSD
    nan = kernels.conjugate_gradient(np.full((n, n), np.nan), np.ones(n), preconditioner=None)
    assert nan.status is Status.NONFINITE
    with pytest.raises(InvalidInputError, match="needs the operator's diagonal"):
        kernels.conjugate_gradient(LinearOperator((n, n), matvec=lambda v: A @ v), np.ones(n))
    with pytest.raises(InvalidInputError, match="y: expected"):
        kernels.conjugate_gradient(A, np.ones(n + 1))
    # round trip through a file
    ds = sol.to_xarray()
    assert np.array_equal(kernels.CGSolution.from_xarray(ds).x, sol.x)


def test_streamed_prediction_equals_the_dense_mean_predictor(tmp_path):
    x, xt = _x(40), _x(11, seed=4)
    y = np.stack([np.sin(x[:, 0]), np.cos(x[:, 1])], axis=1)
    ks = kernels.kernel_store(P, x, path=tmp_path / "k.zarr", block_size=16, progress=False)
    kt = kernels.kernel_store(P, xt, x, path=tmp_path / "kt.zarr", block_size=16, progress=False)
    K, Kt = P.kernel(x), P.kernel(xt, x)
    for kind in ("ntk", "nngp"):
        want = kernels.mean_predictor(getattr(K, kind), getattr(Kt, kind), y, reg=1e-3)
        for test_train in (kt, getattr(Kt, kind)):
            pred = ks.predict(test_train, y, kind=kind, reg=1e-3, tol=1e-13, preconditioner="nystrom", rank=10)
            assert pred.success, pred.message
            assert _rel(pred.mean, want.mean) < 1e-9
            assert pred.reg == pytest.approx(1e-3 * np.mean(np.diag(getattr(K, kind))), rel=1e-12)
    stopped = ks.predict(kt, y, kind="ntk", reg=0.0, maxiter=1)
    assert stopped.status is Status.NOT_CONVERGED and np.all(np.isfinite(stopped.mean))
    assert stopped.to_xarray()["residuals"].shape == (2, 2)


def test_conjugate_gradient_checks_the_true_residual():
    rng = np.random.default_rng(1)
    n = 50
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.linspace(1.0, 10.0, n)) @ Q.T
    # products less accurate than the tolerance (the input rounded to float32): the recursion's residual
    # reaches tol, the residual recomputed from x does not -- reported, not passed off as converged
    f = lambda V: A @ np.asarray(V, np.float32).astype(np.float64)  # noqa: E731
    sol = kernels.conjugate_gradient(LinearOperator((n, n), matvec=f, matmat=f, dtype=float), np.ones(n),
                                     tol=1e-10, preconditioner=None)
    assert sol.status is Status.NOT_CONVERGED and "recomputed from x" in sol.message
    assert sol.residuals[-1, 0] <= 1e-10 < sol.true_residual[0] and np.all(np.isfinite(sol.x))
    good = kernels.conjugate_gradient(np.eye(n) * 2, np.ones(n), tol=1e-10)
    assert good.success and good.true_residual.max() <= 1e-10
    assert kernels.CGSolution.from_xarray(good.to_xarray()).true_residual.tolist() == good.true_residual.tolist()
