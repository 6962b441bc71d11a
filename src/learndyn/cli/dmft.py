"""``learndyn dmft``: the DMFT of Montanari & Urbani (NeurIPS 2025, arXiv:2502.21269) for one
:class:`learndyn.dmft.Problem`, optionally beside a simulation, from :func:`learndyn.dmft.solve` and the public
simulators :func:`learndyn.dmft.gaussian_model.simulate` and :func:`learndyn.dmft.networks.simulate`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .common import OptProgress

__all__ = ["register", "dmft_command", "simulate_beside", "plot_solution", "SIMULATIONS"]

#: ``--simulate`` kinds: Gaussian-model projected GD, full-batch GD and mini-batch SGD on the real network.
SIMULATIONS = ("gaussian", "gd", "sgd")
#: about this many recorded times per simulation
SIM_POINTS = 30
#: the SGD learning rate of ``--simulate sgd``: one step is ``lr d / n`` of gradient-flow time
SGD_LR = 0.1


def _coeffs(text: str, name: str):
    if text.lower() in ("none", ""):
        return None
    if text == "activation":
        return "activation"
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        if text[:1].isalpha():  # an activation name (tanh, relu, abrelu(a, b) ...): dmft.Problem resolves it
            return text
        raise typer.BadParameter(f"{name}: comma-separated power-series coefficients, e.g. 0,0.9,0,0.1667, "
                                 "or an activation name") from None


def simulate_beside(problem, kind: str, t_max: float, dt: float, d: int, seeds: Optional[int] = None,
                    batch: int = 100):
    """The simulation of ``problem`` whose points go beside its DMFT solution on ``[0, t_max]``.

    ``kind``: ``"gaussian"`` (Gaussian-model projected GD with the DMFT step ``dt``, Montanari & Urbani 2025,
    Sec. 2), ``"gd"`` (full-batch projected GD on the real two-layer network, step ``dt``) or ``"sgd"`` (the real
    network, mini-batch ``batch``, learning rate ``SGD_LR``: one step is ``SGD_LR d/n`` of gradient-flow time).
    Records about ``SIM_POINTS`` times. ``seeds=None``: the simulator's default number of runs.
    """
    from ..dmft import gaussian_model, networks

    if kind not in SIMULATIONS:
        raise ValueError(f"simulate: must be one of {', '.join(SIMULATIONS)}, got {kind!r}")
    fn = gaussian_model.simulate if kind == "gaussian" else networks.simulate
    kw = {} if seeds is None else {"seeds": seeds}
    if kind == "sgd":
        n = int(round(problem.n_over_d * d))
        step = SGD_LR * d / n
        kw["batch"] = min(batch or n, n)
    else:
        step = dt
    every = max(1, int(round(t_max / step / SIM_POINTS)))
    return fn(problem, d=d, t_max=t_max, dt=step, record_every=every, **kw)


def _neuron_mean(x) -> np.ndarray:
    x = np.asarray(x)
    return x.mean(-1) if x.ndim == 2 else x  # the general DMFT has one column per neuron


def _finished(result) -> bool:
    return result.success


def plot_solution(sol, sim, path: Path, title: str) -> Path:
    """Plot a DMFT solution (lines) and, if ``sim`` is not ``None``, its simulation (points, mean +- s.e.):
    train and test error, second-layer weight ``a(t)`` and ``v(t)`` against ``t`` (Montanari & Urbani 2025,
    Sec. 2); neuron means for the general (non-symmetric) DMFT."""
    from ..plotting import SIM_STYLE, THEORY_STYLE, figure, save_figure

    fig, axes = figure(1, 3, width=4.3)
    axes = np.atleast_1d(axes)
    panels = (("errors", ("train_error", "test_error"), r"$e_{tr}$ (solid, ●), $e_{ts}$ (dashed, ▲)"),
              ("a", ("a",), "a(t)"), ("v", ("v",), "v(t)"))
    for ax, (obs, names, ylabel) in zip(axes, panels):
        for j, name in enumerate(names):
            ax.plot(sol.t, _neuron_mean(getattr(sol, name)), "-" if j == 0 else "--", color="C0",
                    label="DMFT" if j == 0 else None, **THEORY_STYLE)
            if sim is not None:
                style = dict(SIM_STYLE, fmt="o" if j == 0 else "^")
                ax.errorbar(sim.t, sim.mean(name), yerr=sim.sem(name), color="C0", mfc="white" if j else "C0",
                            **style)
        if obs == "errors":
            ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=7, title=f"lines: DMFT; points: {sim.kind if sim is not None else 'none'}",
                   title_fontsize=7)
    note = ""
    if sim is not None and sim.kind.startswith("network") and bool(np.any(sol.problem.h_coeffs[2:] != 0)):
        import textwrap

        from ..experiments.montanari2025 import NETWORK_GAP_NOTE

        note = "\n" + "\n".join(textwrap.wrap("Note: " + NETWORK_GAP_NOTE, 200))
    fig.suptitle(f"{title}{note}", fontsize=8 if not note else 6.5)
    return save_figure(fig, path)


def dmft_command(
    m: int = typer.Option(4, help="width m"),
    n_over_d: float = typer.Option(1.5, "--n-over-d", help="abar = n/d (alpha = abar/m)"),
    tau: float = typer.Option(1.0, help="label-noise standard deviation"),
    a0: float = typer.Option(1.0, help="initial second-layer weight (lazy: gamma0 sqrt(m))"),
    h: Optional[str] = typer.Option(None, help="power-series coefficients of h(q), comma-separated, or an activation "
                                                 "(erf, relu, linear, tanh, sigmoid, leaky_relu, abrelu(a, b)); "
                                                 "default: dmft.Problem's h = 0.9q + q^3/6"),
    target: str = typer.Option("none", help="'none' (pure noise), 'activation' (hatphi = h) or coefficients"),
    frozen: bool = typer.Option(False, "--frozen", help="freeze the second layer a(t) = a0"),
    t_max: float = typer.Option(8.0, help="final time"),
    dt: float = typer.Option(0.025, help="time step"),
    scheme: str = typer.Option("euler", help="euler or implicit"),
    simulate: Optional[str] = typer.Option(None, help="also simulate: 'gaussian' (Gaussian-model GD), 'gd' or "
                                                      "'sgd' (real network)"),
    d: int = typer.Option(50, help="input dimension of the simulation"),
    seeds: Optional[int] = typer.Option(None, help="seeds of the simulation (default: the simulator's, "
                                                   "100 for the Gaussian model, 10 for the networks)"),
    batch: int = typer.Option(100, help="SGD mini-batch"),
    out: Path = typer.Option(Path("results/dmft"), help="output prefix: OUT.nc (DMFT), OUT_sim.nc, OUT.png"),
    progress: OptProgress = True,
) -> None:
    """Solve the DMFT of Montanari & Urbani (2025) and plot e_tr, e_ts, a, v (with simulation points)."""
    from .. import dmft
    from ..results import check_output_path

    try:
        kw = {} if h is None else {"h": _coeffs(h, "h")}
        prob = dmft.Problem(m=m, n_over_d=n_over_d, tau=tau, a0=a0, target=_coeffs(target, "target"),
                            train_second_layer=not frozen, **kw)
        if simulate is not None and simulate not in SIMULATIONS:
            raise typer.BadParameter(f"must be one of {', '.join(SIMULATIONS)}, got {simulate!r}",
                                     param_hint="--simulate")
        check_output_path(out.with_suffix(".nc"), name="--out")
        if simulate:
            check_output_path(out.parent / (out.name + "_sim.nc"), name="--out")
        method = "auto" if prob.is_symmetric else "general"
        sol = dmft.solve(prob, t_max=t_max, dt=dt, method=method, progress=progress,
                         **({"scheme": scheme} if method == "auto" else {}))  # warnings are shown
        interrupted = sol.status == "interrupted"
        sim = (simulate_beside(prob, simulate, t_max=t_max, dt=dt, d=d, seeds=seeds, batch=batch)
               if simulate and not interrupted else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    nc = sol.save(out.with_suffix(".nc"))
    png = plot_solution(sol, sim, out.with_suffix(".png"),
                        f"DMFT (Montanari & Urbani 2025): m={m}, n/d={n_over_d:g}, tau={tau:g}, a0={a0:g}, "
                        f"{prob.label}")
    if sol.t.size == 0:
        typer.echo(f"DMFT status: {sol.status} ({sol.message}); no step was computed")
        raise typer.Exit(code=2)
    t_end = float(sol.t[-1])
    ok = _finished(sol)
    typer.echo(f"DMFT status: {sol.status}{f' ({sol.message})' if sol.message else ''}; at t = {t_end:.6g} (last grid point{' <= t_max' if ok else ''}): "
               f"e_tr = {sol.train_error[-1]:.6g}, e_ts = {sol.test_error[-1]:.6g}, "
               f"a = {np.mean(sol.a[-1]):.6g}")
    if sim is not None:
        sim.save(out.parent / (out.name + "_sim.nc"))
        runs = sim.values("train_error").shape[0]
        typer.echo(f"simulation ({sim.kind}, d={sim.d}, {runs} runs): e_tr(t = {float(sim.t[-1]):.6g}) = "
                   f"{sim.mean('train_error')[-1]:.6g} ± {sim.sem('train_error')[-1]:.2g}")
    typer.echo(f"wrote {nc} and {png}")
    if not ok:
        raise typer.Exit(code=2)


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    """Add ``dmft`` to ``app``."""
    app.command("dmft")(dmft_command)
