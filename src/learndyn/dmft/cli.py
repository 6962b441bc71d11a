"""``learndyn dmft`` (solve the DMFT, optionally beside a simulation) and ``learndyn reproduce montanari2025``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..cli_common import OptClaims, OptFigure, OptProgress, OptQuick, run_reproduce

__all__ = ["register", "dmft_command", "reproduce_command"]


def _default_seeds(kind: str) -> int:
    """The Python default number of realisations of the simulator behind ``--simulate kind``."""
    import inspect

    from . import gaussian_model, networks

    fn, name = (gaussian_model.simulate, "realisations") if kind == "gaussian" else (networks.simulate, "seeds")
    return int(inspect.signature(fn).parameters[name].default)


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
    seeds: Optional[int] = typer.Option(None, help="realisations / seeds of the simulation (default: the "
                                                   "simulator's, 100 Gaussian-model realisations or 10 seeds)"),
    batch: int = typer.Option(100, help="SGD mini-batch"),
    out: Path = typer.Option(Path("results/dmft"), help="output prefix: OUT.nc (DMFT), OUT_sim.nc, OUT.png"),
    progress: OptProgress = True,
) -> None:
    """Solve the DMFT of Montanari & Urbani (2025) and plot e_tr, e_ts, a, v (with simulation points)."""
    from .. import dmft
    from ..experiments import montanari2025 as mu
    from ..results import check_output_path

    try:
        kw = {} if h is None else {"h": _coeffs(h, "h")}
        prob = dmft.Problem(m=m, n_over_d=n_over_d, tau=tau, a0=a0, target=_coeffs(target, "target"),
                            train_second_layer=not frozen, **kw)
        if simulate and seeds is None:
            seeds = _default_seeds(simulate)
        check_output_path(out.with_suffix(".nc"), name="--out")
        if simulate:
            check_output_path(out.parent / (out.name + "_sim.nc"), name="--out")
        run = mu.Run("cli", {}, t_max=t_max, dt=dt, scheme=scheme,
                     sim=mu.Sim(simulate, d=d, seeds=seeds, batch=batch) if simulate else None)
        method = "auto" if prob.is_symmetric else "general"
        sol = dmft.solve(prob, t_max=t_max, dt=dt, method=method, progress=progress,
                         **({"scheme": scheme} if method == "auto" else {}))  # warnings are shown
        sim = mu.simulate(run, prob) if simulate and not sol.status.startswith("interrupted") else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    nc = sol.save(out.with_suffix(".nc"))
    r = mu.RunResult(run, prob, sol, sim)
    spec = mu.Figure("cli", f"m={m}, n/d={n_over_d:g}, tau={tau:g}, a0={a0:g}, {prob.label}", "curves", (), (),
                     panels=(("errors", "t"), ("a", "t"), ("v", "t")))
    png = mu._plot_curves(spec, [r], out.with_suffix(".png"))
    if sol.t.size == 0:
        typer.echo(f"DMFT status: {sol.status}; no step was computed")
        raise typer.Exit(code=2)
    t_end = float(sol.t[-1])
    typer.echo(f"DMFT status: {sol.status}; at t = {t_end:.6g} (last grid point{' <= t_max' if sol.ok else ''}): "
               f"e_tr = {sol.train_error[-1]:.6g}, e_ts = {sol.test_error[-1]:.6g}, a = {np.mean(sol.a[-1]):.6g}")
    if sim is not None:
        sim.save(out.parent / (out.name + "_sim.nc"))
        typer.echo(f"simulation ({sim.kind}, d={sim.d}, {sim.realisations} runs): e_tr(t = {float(sim.t[-1]):.6g}) = "
                   f"{sim.mean('train_error')[-1]:.6g} ± {sim.sem('train_error')[-1]:.2g}")
    typer.echo(f"wrote {nc} and {png}")
    if not sol.ok:
        raise typer.Exit(code=2)


def reproduce_command(
    figure: OptFigure = [],
    claims: OptClaims = False,
    quick: OptQuick = False,
    out: Path = typer.Option(Path("results/montanari2025"), help="output directory"),
    progress: OptProgress = True,
) -> None:
    """Montanari & Urbani (2025): fig2, fig3, fig4, fig6, fig7, threshold (PNG + netCDF) and the abstract's
    claims, DMFT beside simulations."""
    from ..experiments import montanari2025 as mu

    run_reproduce("montanari2025", mu, figure, claims, quick, out, progress,
                  describe=lambda name: mu.FIGURES[name].title)


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("dmft")(dmft_command)
    reproduce.command("montanari2025")(reproduce_command)
