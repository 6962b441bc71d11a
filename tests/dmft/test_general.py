"""General m x m DMFT (Montanari & Urbani 2025, Sec. 2 / App. C): reduction to SymmDMFT, initial values, constraints, permutation
equivariance, the paper's non-symmetric settings (Figs 6-7)."""

from __future__ import annotations

import numpy as np
import pytest

from learndyn import dmft

H = [0.0, 0.1, 0.5]  # Figs 6-7: h = z/10 + z^2/2, tau = 1, m = 4, n/d = 1.5


def _fig6():
    C0 = np.eye(4)
    C0[0, 2] = C0[2, 0] = C0[1, 3] = C0[3, 1] = 1.0
    return dmft.Problem(m=4, n_over_d=1.5, tau=1.0, a0=[1, 1, -1, -1], h=H, C0=C0)


def _fig7():
    return dmft.Problem(m=4, n_over_d=1.5, tau=1.0, a0=[-1, -0.5, 1 / 3, 2 / 3], h=H)


@pytest.mark.parametrize("kw", [
    dict(m=4, n_over_d=1.5, tau=1.0, a0=1.0, h=H),
    dict(m=3, n_over_d=1.2, tau=0.5, a0=0.7, h=[0, 0.9, 0.5, 0.2], target="activation", v0=0.2,
         C0=np.full((3, 3), 0.3) + 0.7 * np.eye(3)),
])
def test_reduces_to_symmetric_dmft(kw):
    """Two independent implementations of different equations ((E1)-(E9) with m x m blocks versus the symmetric
    reduction of §2.4) agree on a symmetric initial state."""
    p = dmft.Problem(**kw)
    s = dmft.solve(p, t_max=2.0, dt=0.02, method="symmetric")
    g = dmft.solve(p, t_max=2.0, dt=0.02, method="general")
    assert g.success and isinstance(g, dmft.GeneralSolution)
    for name in ("train_error", "test_error", "C_d", "C_o", "R_d", "R_o", "C_A"):
        assert np.max(np.abs(getattr(s, name) - getattr(g, name))) < 1e-12, name
    for name in ("a", "v", "nu"):
        assert np.max(np.abs(getattr(g, name) - getattr(s, name)[:, None])) < 1e-12, name


@pytest.mark.parametrize("make", [_fig6, _fig7])
def test_initial_value_non_symmetric(make):
    """§6.2.4: e(0) = (tau^2 + (1/m^2) sum_ij a_i a_j h(C0_ij))/2 (pure noise)."""
    p = make()
    sol = dmft.solve(p, t_max=0.2, dt=0.1)
    a = np.array(p.a0)
    C0 = p.C0_matrix
    hC = 0.1 * C0 + 0.5 * C0**2
    expected = 0.5 * (1.0 + a @ hC @ a / 16)
    assert sol.train_error[0] == pytest.approx(expected, rel=1e-14)
    assert sol.test_error[0] == pytest.approx(expected, rel=1e-14)


@pytest.fixture(scope="module")
def fig7_solution():
    return dmft.solve(_fig7(), t_max=4.0, dt=0.05)


def test_constraints_non_symmetric(fig7_solution):
    sol = fig7_solution
    C, R = sol.C, sol.R
    n, m = C.shape[0], 4
    assert np.allclose(np.einsum("ttii->ti", C), 1.0, atol=1e-14)  # unit norm
    assert np.allclose(C, C.transpose(1, 0, 3, 2), atol=0)  # C_ij(t,s) = C_ji(s,t)
    for k in range(n):
        assert np.all(R[k, k:] == 0)  # causal, no equal-time response
    for k in range(n - 1):
        assert np.allclose(R[k + 1, k], np.eye(m))  # unit jump
    for k in range(n):  # the Gram matrix of the rows stays PSD
        assert np.linalg.eigvalsh(C[k, k]).min() > -1e-10
    assert np.all(sol.train_error >= 0) and np.all(np.diag(sol.C_A) <= 0)
    ds = sol.to_xarray()
    assert ds["C"].dims == ("time", "time2", "neuron", "neuron2") and ds["a"].shape == (n, m)


def test_permutation_equivariance(fig7_solution):
    perm = [2, 0, 3, 1]
    p = _fig7()
    q = p.replace(a0=tuple(np.array(p.a0)[perm]))
    s = dmft.solve(q, t_max=4.0, dt=0.05)
    ref = fig7_solution
    assert np.allclose(s.train_error, ref.train_error, atol=1e-13)
    assert np.allclose(s.a, ref.a[:, perm], atol=1e-13)
    assert np.allclose(s.C, ref.C[:, :, perm][:, :, :, perm], atol=1e-13)


def test_fig6_duplicated_rows():
    """Fig 6: w_1 = w_3, w_2 = w_4 with opposite a: the network output vanishes at t = 0, e(0) = tau^2/2; by the
    symmetry (1,2,3,4) -> (3,4,1,2) with a -> -a, a_1 = -a_3, a_2 = -a_4 and C_12 = C_34 for all t."""
    sol = dmft.solve(_fig6(), t_max=3.0, dt=0.05)
    assert sol.success and sol.train_error[0] == pytest.approx(0.5)
    assert np.allclose(sol.a[:, 0], -sol.a[:, 2], atol=1e-13) and np.allclose(sol.a[:, 1], -sol.a[:, 3], atol=1e-13)
    assert np.allclose(sol.C[:, :, 0, 1], sol.C[:, :, 2, 3], atol=1e-13)
    assert sol.train_error[-1] < 0.5 * sol.train_error[0]


def test_general_refuses_bad_input():
    p = _fig7()
    with pytest.raises(ValueError, match="scheme"):
        dmft.solve(p, t_max=1.0, dt=0.1, scheme="implicit")
    with pytest.raises(ValueError, match="max_memory_gb"):
        dmft.solve(p, t_max=100.0, dt=0.01, max_memory_gb=0.1)
    with pytest.raises(ValueError, match="symmetric"):
        dmft.solve(p, t_max=1.0, dt=0.1, method="symmetric")
