r"""Plain NumPy transcription of the discrete SymmDMFT algorithm (Montanari & Urbani 2025, App. D), row by row.

Written to be read next to the equations (steps 1-9 of :mod:`learndyn.dmft.symmetric`, full ``N x N`` storage, the
d/o form with ``m-1`` and ``m-2`` multiplicities). It is the reference that the fast solver
(:mod:`learndyn.dmft.symmetric`: eigen-channels, packed BLAS) is checked against, and the baseline of
``benchmarks/dmft.py``. Not meant for production runs.
"""

from __future__ import annotations

import numpy as np

from ._common import time_grid
from .problem import Problem

__all__ = ["plain_symmetric"]


def plain_symmetric(problem: Problem, t_max: float, dt: float) -> dict[str, np.ndarray]:
    """Run the SymmDMFT march (Montanari & Urbani 2025, App. D, with the transposed Eq. (D.6)) on the time grid
    ``t_n = n dt <= t_max`` (the paper's step ``eta = dt``; the grid of :func:`learndyn.dmft.solve`); returns a dict
    of the ``(time, time)`` and ``time`` arrays (``Cd, Co, Rd, Ro, CA, RA, SC, a, v, nu, e_tr, e_ts``)."""
    N = time_grid(t_max, dt)
    eta = float(dt)
    m = problem.m
    alpha = problem.alpha
    h, hp = problem.h_series, problem.hatphi
    base = problem.tau**2 + problem.phi_norm2
    Cd = np.zeros((N, N)); Co = np.zeros((N, N)); Rd = np.zeros((N, N)); Ro = np.zeros((N, N))  # noqa: E702
    SC = np.zeros((N, N)); SR = np.zeros((N, N)); RA = np.zeros((N, N)); CA = np.zeros((N, N))  # noqa: E702
    a = np.zeros(N); v = np.zeros(N); nu = np.zeros(N); e_tr = np.zeros(N); e_ts = np.zeros(N)  # noqa: E702
    a0, C0, v0 = problem.initial_state
    Cd[0, 0] = 1.0
    Co[0, 0] = C0[0, 1] if m > 1 else 0.0
    a[0] = a0[0]
    v[0] = v0[0]
    for n in range(N):
        s = np.arange(n + 1)
        # 1. Sigma rows
        SC[n, s] = (base - a[n] * hp(v[n]) - a[s] * hp(v[s])
                    + a[n] * a[s] * (h(Cd[n, s]) / m + (1 - 1 / m) * h(Co[n, s])))
        SC[s, n] = SC[n, s]
        SR[n, :n] = a[n] * a[:n] * (h.d1(Cd[n, :n]) * Rd[n, :n] / m + (1 - 1 / m) * h.d1(Co[n, :n]) * Ro[n, :n])
        # 2. R_A row: RA[n, j] = -eta sum_{k=j}^{n-1} SR[n, k] RA[k, j]
        RA[n, n] = 1 / eta
        RA[n, :n] = -eta * (SR[n, :n] @ RA[:n, :n])
        # 3. C_A row: y[s'] = sum_s RA[n, s] SC[s, s'];  CA[n, j] = -eta^2 sum_{s'<=j} y[s'] RA[j, s']
        y = RA[n, : n + 1] @ SC[: n + 1, : n + 1]
        CA[n, : n + 1] = -eta**2 * (RA[: n + 1, : n + 1] @ y)
        CA[: n + 1, n] = CA[n, : n + 1]
        e_tr[n] = -CA[n, n] / 2
        e_ts[n] = SC[n, n] / 2
        if n == N - 1:
            break
        # 4. kernels
        pre = alpha * a[n] * a[s]
        MRd = pre * (RA[n, s] * h.d1(Cd[n, s]) + CA[n, s] * h.d2(Cd[n, s]) * Rd[n, s])
        MRo = pre * (RA[n, s] * h.d1(Co[n, s]) + CA[n, s] * h.d2(Co[n, s]) * Ro[n, s])
        MCd = pre * CA[n, s] * h.d1(Cd[n, s])
        MCo = pre * CA[n, s] * h.d1(Co[n, s])
        IA = eta * np.sum(RA[n, s])
        dphi = hp.d1(v[n])
        # 5. nu
        nu[n] = (alpha * a[n] * dphi * v[n] * IA
                 - (eta / m) * np.sum(MRd * Cd[n, s] + (m - 1) * MRo * Co[n, s])
                 - (eta / m) * np.sum(MCd * Rd[n, s] + (m - 1) * MCo * Ro[n, s]))
        # 6. a
        if problem.train_second_layer:
            a[n + 1] = a[n] + eta * alpha * (
                hp(v[n]) * IA
                - eta * np.sum(RA[n, s] * a[s] * (h(Cd[n, s]) / m + (1 - 1 / m) * h(Co[n, s])))
                - eta * np.sum(CA[n, s] * a[s] * (h.d1(Cd[n, s]) * Rd[n, s] / m + (1 - 1 / m) * h.d1(Co[n, s]) * Ro[n, s])))
        else:
            a[n + 1] = a[n]
        # 7. v
        v[n + 1] = v[n] + eta * (-nu[n] * v[n] + alpha * a[n] * dphi * IA
                                 - (eta / m) * np.sum((MRd + (m - 1) * MRo) * v[s]))
        # 8. C rows, vectorised over j <= n (X[j, s] = row j; R(t', s) is row j of R: no transpose)
        k = n + 1
        sig = alpha * a[n] * dphi * v[:k] * IA
        Cd_, Co_, Rd_, Ro_ = Cd[:k, :k], Co[:k, :k], Rd[:k, :k], Ro[:k, :k]
        Cd[n + 1, :k] = Cd[n, :k] + eta * (
            -nu[n] * Cd[n, :k] + sig
            - (eta / m) * (Cd_ @ MRd + (m - 1) * (Co_ @ MRo))
            - (eta / m) * (Rd_ @ MCd + (m - 1) * (Ro_ @ MCo)))
        Co[n + 1, :k] = Co[n, :k] + eta * (
            -nu[n] * Co[n, :k] + sig
            - (eta / m) * (Co_ @ MRd + Cd_ @ MRo + (m - 2) * (Co_ @ MRo))
            - (eta / m) * (Ro_ @ MCd + Rd_ @ MCo + (m - 2) * (Ro_ @ MCo)))
        Cd[:k, n + 1] = Cd[n + 1, :k]
        Co[:k, n + 1] = Co[n + 1, :k]
        Cd[n + 1, n + 1] = 1.0
        Co[n + 1, n + 1] = 2 * Co[n + 1, n] - Co[n, n]
        # 9. R rows: sum_{s=j}^{n} M(s) R(s, j)  (R strictly lower, so the full column sum is the same)
        Rd[n + 1, :k] = Rd[n, :k] + eta * (
            -nu[n] * Rd[n, :k] - (eta / m) * (MRd @ Rd_ + (m - 1) * (MRo @ Ro_)))
        Ro[n + 1, :k] = Ro[n, :k] + eta * (
            -nu[n] * Ro[n, :k] - (eta / m) * (MRd @ Ro_ + MRo @ Rd_ + (m - 2) * (MRo @ Ro_)))
        Rd[n + 1, n] += 1.0
    return dict(Cd=Cd, Co=Co, Rd=Rd, Ro=Ro, CA=CA, RA=RA, SC=SC, a=a, v=v, nu=nu, e_tr=e_tr, e_ts=e_ts)
