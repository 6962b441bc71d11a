"""``learndyn ode``, ``learndyn simulate`` and ``learndyn compare``: the teacher-student online SGD of Goldt,
Advani, Saxe, Krzakala & Zdeborova (NeurIPS 2019) from the command line, built on :mod:`learndyn.online`.

The three commands take the same options for the :class:`learndyn.online.Problem` and for the initial weights,
and all three start from ``learndyn.online.initial_weights(problem, N, init, seed, scale=init_scale)``: ``ode
--seed s`` integrates the ODEs (Goldt et al. 2019, eqs. (6)-(8)) from the exact overlaps of seed ``s`` of
``simulate``/``compare``.
"""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from .common import save_or_report

__all__ = ["register", "ode_command", "simulate_command", "compare_command", "load_initial_state",
           "plot_trajectory", "problem_from_options", "initial_state_from_options", "accuracy_floor", "Method"]

# The options that describe a Problem, shared by `ode`, `simulate` and `compare`.
#: ``--M``: teacher hidden units M
OptM = Annotated[int, typer.Option("--M", help="teacher hidden units")]
#: ``--K``: student hidden units K
OptK = Annotated[int, typer.Option("--K", help="student hidden units (K = M + L)")]
#: ``--activation``: the activation g of teacher and student
OptActivation = Annotated[str, typer.Option(help="erf (= erf(x/sqrt2)), relu, linear, tanh, sigmoid, leaky_relu, "
                                                          "leaky_relu(slope) or abrelu(a, b)")]
#: ``--lr``: first-layer learning rate eta
OptLr = Annotated[float, typer.Option(help="first-layer learning rate eta")]
#: ``--lr2``: second-layer learning rate
OptLr2 = Annotated[Optional[float], typer.Option(help="second-layer learning rate (default: lr)")]
#: ``--sigma``: teacher output-noise standard deviation
OptSigma = Annotated[float, typer.Option(help="teacher output-noise standard deviation")]
#: ``--train-second-layer/--first-layer-only``
OptTrain2 = Annotated[bool, typer.Option("--train-second-layer/--first-layer-only", help="train v too")]
#: ``--weight-decay``: weight decay kappa
OptWeightDecay = Annotated[float, typer.Option(help="weight decay kappa")]
# The options that describe the initial weights, shared by `ode`, `simulate` and `compare`: all three build the
# start with learndyn.online.initial_weights(problem, N, init, seed, scale=init_scale), so `ode --seed s` starts
# where seed s of `simulate`/`compare` starts.
#: ``--init``: the initialisation of :func:`learndyn.online.initial_weights`
OptInit = Annotated[str, typer.Option(help="initialisation of the weights: large, small, informed, denoise, mixed "
                                           "(learndyn.online.initial_weights)")]
#: ``--N``: input dimension N
OptN = Annotated[int, typer.Option("--N", help="input dimension N (of the initial weights, and of the simulation)")]
#: ``--init-scale``: the ``scale`` of :func:`learndyn.online.initial_weights`
OptInitScale = Annotated[float, typer.Option(help="size of the 'small' weights and of the extra units of 'informed'")]


def problem_from_options(M, K, activation, lr, lr2, sigma, train_second_layer, weight_decay):
    """The :class:`learndyn.online.Problem` described by the shared command-line options."""
    from .. import online

    return online.Problem(M=M, K=K, activation=activation, lr=lr, lr2=lr2, sigma=sigma,
                          train_second_layer=train_second_layer, weight_decay=weight_decay)


class Method(str, Enum):
    """The integrators of :func:`learndyn.online.integrate` (``--method``)."""

    dopri8 = "dopri8"
    dopri5 = "dopri5"
    euler = "euler"
    heun = "heun"


def load_initial_state(path: Path):
    """The :class:`learndyn.online.OrderParameters` Q, R, T, v, v_teacher read from a netCDF (e.g. a previous
    result: its first time is used) or an .npz file (``--init-state``)."""
    from .. import online

    path = Path(path)
    if not path.exists():
        raise typer.BadParameter(f"initial-state file {path} does not exist")
    if path.suffix == ".npz":
        try:
            data = dict(np.load(path))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"--init: {path} is not a readable .npz file ({exc})") from None
    else:
        from ..results import load_dataset

        try:
            ds = load_dataset(path)
        except ValueError as exc:
            raise typer.BadParameter(f"--init: {exc}; give a netCDF result file or an .npz with Q, R, T") from None
        data = {}
        for name in ("Q", "R", "T", "v", "v_teacher"):
            if name in ds:
                arr = ds[name]
                for dim in ("alpha", "seed"):
                    if dim in arr.dims:
                        arr = arr.isel({dim: 0})
                data[name] = arr.values
    missing = {"Q", "R", "T"} - set(data)
    if missing:
        raise typer.BadParameter(f"initial-state file {path} lacks {sorted(missing)}")
    return online.OrderParameters(**{k: data[k] for k in ("Q", "R", "T", "v", "v_teacher") if k in data})


def initial_state_from_options(problem, N: int, init: str, seed: int, init_scale: float):
    """Exact overlaps of ``learndyn.online.initial_weights(problem, N, init, seed, scale=init_scale)``: the start
    of seed ``seed`` in ``learndyn simulate``/``compare`` with the same options."""
    from .. import online

    return online.initial_weights(problem, N, init, seed, scale=init_scale).order_parameters()


def plot_trajectory(traj, path: Path, title: str | None = None) -> Path:
    """Plot a :class:`learndyn.online.Trajectory` to ``path`` (PNG): eps_g(alpha) (Goldt et al. 2019, eq. (4)) on
    log-log axes beside the student-teacher overlaps R_kn(alpha)."""
    from ..plotting import THEORY_STYLE, figure, save_figure

    fig, (ax1, ax2) = figure(1, 2)
    pos = traj.alpha > 0
    # values below the integration's accuracy are numerical noise around eps_g = 0: not drawn as data
    floor = accuracy_floor(traj)
    eg = np.where(traj.eg >= floor, traj.eg, np.nan)
    ax1.loglog(traj.alpha[pos], eg[pos], **THEORY_STYLE, label="ODE")
    if floor > 0 and np.any(traj.eg[pos] < floor):
        ax1.axhline(floor, color="0.5", ls=":", lw=1.0, label=f"accuracy floor ({floor:.0e})")
    ax1.set_xlabel(r"$\alpha$ = steps / N")
    ax1.set_ylabel(r"$\epsilon_g$")
    ax1.legend(fontsize=8, loc="lower left")
    K, M = traj.problem.K, traj.problem.M
    for k in range(K):
        for n in range(M):
            ax2.semilogx(traj.alpha[pos], traj.R[pos, k, n], lw=1.2, label=f"$R_{{{k + 1}{n + 1}}}$")
    ax2.set_xlabel(r"$\alpha$")
    ax2.set_ylabel("student-teacher overlap R")
    if K * M <= 8:
        ax2.legend(fontsize=8)
    fig.suptitle(title or f"online SGD ODE: {traj.problem.activation_name}, M={M}, K={K}, "
                 f"$\\eta$={traj.problem.lr:g}, $\\sigma$={traj.problem.sigma:g}")
    return save_figure(fig, path)


def ode_command(
    M: OptM = 2,
    K: OptK = 2,
    activation: OptActivation = "erf",
    lr: OptLr = 0.5,
    lr2: OptLr2 = None,
    sigma: OptSigma = 0.0,
    train_second_layer: OptTrain2 = False,
    weight_decay: OptWeightDecay = 0.0,
    init: OptInit = "large",
    N: Annotated[int, typer.Option("--N", "--init-N", help="input dimension N of the initial weights")] = 500,
    seed: int = typer.Option(0, help="seed of the initial weights (the start of seed SEED in simulate/compare)"),
    init_scale: OptInitScale = 1e-3,
    init_state: Optional[Path] = typer.Option(None, help="start from a file instead (.nc result: its first time, "
                                                         "or .npz with Q, R, T[, v, v_teacher])"),
    alpha_max: float = typer.Option(1000.0, help="final time alpha"),
    n_alphas: int = typer.Option(200, help="number of log-spaced output times"),
    rtol: float = typer.Option(1e-8, help="relative tolerance"),
    atol: float = typer.Option(1e-12, help="absolute tolerance"),
    method: Optional[Method] = typer.Option(None, help="integrator (default: dopri8; dopri5 for ReLU)"),
    dt: Optional[float] = typer.Option(None, help="step for the fixed-step methods"),
    out: Path = typer.Option(Path("results/ode"), help="output prefix: writes OUT.nc and OUT.png"),
    fixed_point: bool = typer.Option(True, "--fixed-point/--no-fixed-point",
                                     help="refine the final state to a fixed point and report eps_g*"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Integrate the ODEs of Goldt et al. (2019), eqs. (6)-(8), and write the trajectory (netCDF) and
    eps_g(alpha) (PNG)."""
    from .. import online
    from ..results import check_output_path

    if not (np.isfinite(alpha_max) and alpha_max > 0):
        raise typer.BadParameter(f"must be a finite time > 0, got {alpha_max:g}", param_hint="--alpha-max")
    if n_alphas < 1:
        raise typer.BadParameter(f"must be >= 1 (output times after alpha = 0), got {n_alphas}",
                                 param_hint="--n-alphas")
    try:
        problem = problem_from_options(M, K, activation, lr, lr2, sigma, train_second_layer, weight_decay)
        check_output_path(out.with_suffix(".nc"), name="--out")
        if init_state is None and init not in online.INITIALISATIONS and Path(init).suffix in (".nc", ".npz"):
            init_state = Path(init)  # the old `--init FILE` spelling
        if init_state is not None:
            state = load_initial_state(init_state)
        else:
            state = initial_state_from_options(problem, N, init, seed, init_scale)
        alphas = online.default_alphas(alpha_max, n_alphas, alpha_min=min(0.1, alpha_max / 10))
        traj = online.integrate(problem, state, alphas, rtol=rtol, atol=atol, method=method.value if method else None, dt=dt,
                             progress=progress)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    nc = save_or_report(traj, out.with_suffix(".nc"))
    png = plot_trajectory(traj, out.with_suffix(".png"))
    typer.echo(f"wrote {nc} and {png}" if nc else f"wrote {png}")
    typer.echo(f"status: {traj.status} ({traj.message}); {traj.n_steps} solver steps")
    floor = accuracy_floor(traj)
    typer.echo(f"eps_g(alpha={traj.alpha[-1]:g}) = {_format_eg(traj.eg[-1], floor)}")
    if fixed_point and traj.success and traj.alpha[-1] > 0:
        with warnings.catch_warnings():  # not converged: said in the message printed below
            warnings.simplefilter("ignore", RuntimeWarning)
            # no onward integration here: the step stays cheap beside the run (ReLU, tanh: minutes per decade)
            fp = online.fixed_point(problem, traj.final_state, onward=())
        if fp.converged:
            typer.echo(f"fixed point from the final state: eps_g* = {_format_eg(fp.eg, floor)}; {fp.message}")
        else:
            typer.echo(f"fixed point: none found near the final state (smallest residual |d/dalpha| reached "
                       f"{fp.residual:.2g} > {1e-12:g}); the dynamics have not settled by alpha = "
                       f"{traj.alpha[-1]:g} -- run to a larger --alpha-max")
    if not traj.success:
        raise typer.Exit(code=2)
    if nc is None:
        raise typer.Exit(code=1)


def accuracy_floor(traj) -> float:
    """Smallest ``eps_g`` (Goldt et al. 2019, eq. (4)) an integration at the trajectory's tolerances resolves:
    ``0.1 (rtol s + atol)``, ``s`` the largest variance ``max(Q_kk, T_nn)``.

    ``eps_g`` near a perfectly learned teacher is a small difference of O(1) Gaussian averages of overlaps
    known to ``~rtol``; measured against a reference at rtol = 1e-13 (erf, M = K = 2, eta = 0.5) the values
    are off by more than 10% below 6e-11 (rtol 1e-8), 2e-9 (1e-6) and 1.3e-12 (1e-10), all under this floor.
    """
    if not (np.isfinite(traj.rtol) and np.isfinite(traj.atol)):
        return 0.0
    scale = max(float(np.max(np.diagonal(traj.Q, axis1=-2, axis2=-1), initial=0.0)), float(np.max(np.diag(traj.T))))
    return 0.1 * (traj.rtol * scale + traj.atol)


def _format_eg(eg: float, floor: float) -> str:
    return f"{eg:.6g}" if eg >= floor else f"< {floor:.1g} (below the accuracy floor of the integration)"


def _alphas(alpha_max: float, n_alphas: int) -> np.ndarray:
    """The recording times of ``simulate``/``compare``: ``n_alphas`` log-spaced times up to ``alpha_max``."""
    from .. import online

    if not (alpha_max > 0):
        raise ValueError(f"alpha_max: must be > 0, got {alpha_max}")
    if n_alphas < 1:
        raise ValueError(f"n_alphas: must be >= 1, got {n_alphas}")
    return online.default_alphas(alpha_max, n=n_alphas, alpha_min=min(0.1, alpha_max / 10))


def _plot_eg(alpha, curves, path: Path, title: str) -> Path:
    """eps_g(alpha): SGD seed mean +- s.e. as markers, ODE as a line (curves: list of (label, mean, sem|None))."""
    from ..plotting import SIM_STYLE, THEORY_STYLE, figure, save_figure

    fig, ax = figure(1, 1, width=5.0, height=3.6)
    pos = alpha > 0
    for label, mean, sem in curves:
        if sem is None:
            ax.plot(alpha[pos], mean[pos], color="k", label=label, **THEORY_STYLE)
        else:
            ax.errorbar(alpha[pos], mean[pos], yerr=sem[pos], label=label, **SIM_STYLE)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\alpha$ = steps / N")
    ax.set_ylabel(r"$\epsilon_g$")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def simulate_command(
    M: OptM = 2,
    K: OptK = 2,
    activation: OptActivation = "erf",
    lr: OptLr = 0.5,
    lr2: OptLr2 = None,
    sigma: OptSigma = 0.0,
    train_second_layer: OptTrain2 = False,
    weight_decay: OptWeightDecay = 0.0,
    N: OptN = 500,
    seeds: int = typer.Option(1, help="number of seeds (0 .. seeds-1), simulated together"),
    alpha_max: float = typer.Option(100.0, help="final time alpha = steps / N"),
    n_alphas: int = typer.Option(60, help="number of log-spaced recording times"),
    init: OptInit = "large",
    init_scale: OptInitScale = 1e-3,
    batch_size: int = typer.Option(1, help="mini-batch size (1 = the ODE's setting)"),
    test_set_size: Optional[int] = typer.Option(None, help="held-out inputs for eps_g (default: 0 for erf/relu/"
                                                           "linear, 10000 otherwise)"),
    out: Path = typer.Option(Path("results/simulate"), help="output prefix: writes OUT.nc and OUT.png"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Run finite-N online SGD (Goldt et al. 2019, eqs. (2)-(3); many seeds at once) and write Q, R, v, eps_g
    (netCDF) and eps_g(alpha) (PNG).

    Ctrl-C stops the run and leaves the partial result in OUT.nc.
    """
    from .. import online

    try:
        problem = problem_from_options(M, K, activation, lr, lr2, sigma, train_second_layer, weight_decay)
        sim = online.simulate(problem, N, seeds=seeds, alphas=_alphas(alpha_max, n_alphas), init=init,
                       init_scale=init_scale, batch_size=batch_size, test_set_size=test_set_size, progress=progress,
                       save_path=out.with_suffix(".nc"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    curves = [(f"SGD, N={N}, {seeds} seeds", sim.eg_mean, sim.eg_sem)]
    png = _plot_eg(sim.alpha, curves, out.with_suffix(".png"),
                   f"online SGD: {problem.activation_name}, M={M}, K={K}, eta={lr:g}, sigma={sigma:g}")
    typer.echo(f"status: {sim.status} ({sim.message}); {sim.wall_time:.1f}s")
    if len(sim.alpha):
        if seeds > 1:
            typer.echo(f"eps_g(alpha={sim.alpha[-1]:g}) = {sim.eg_mean[-1]:.6g} +- {sim.eg_sem[-1]:.2g} "
                       "(seed mean +- s.e.)")
        else:  # one seed has no standard error (it would print as nan)
            typer.echo(f"eps_g(alpha={sim.alpha[-1]:g}) = {sim.eg_mean[-1]:.6g} (one seed; --seeds S for a "
                       "seed mean +- s.e.)")
    if sim.save_error:
        typer.echo(f"warning: {sim.save_error}", err=True)
    typer.echo(f"wrote {png}" if sim.save_error else f"wrote {out.with_suffix('.nc')} and {png}")
    if sim.status == "interrupted":
        raise typer.Exit(code=130)
    if not sim.success:
        raise typer.Exit(code=2)
    if sim.save_error:
        raise typer.Exit(code=1)


def compare_command(
    M: OptM = 2,
    K: OptK = 2,
    activation: OptActivation = "erf",
    lr: OptLr = 0.5,
    lr2: OptLr2 = None,
    sigma: OptSigma = 0.0,
    train_second_layer: OptTrain2 = False,
    weight_decay: OptWeightDecay = 0.0,
    N: OptN = 500,
    seeds: int = typer.Option(8, help="number of seeds"),
    alpha_max: float = typer.Option(20.0, help="final time alpha"),
    n_alphas: int = typer.Option(20, help="number of log-spaced comparison times"),
    init: OptInit = "large",
    init_scale: OptInitScale = 1e-3,
    out: Path = typer.Option(Path("results/compare"), help="output prefix: writes OUT.nc and OUT.png"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Run SGD and the ODEs (Goldt et al. 2019, eqs. (6)-(8)) from each seed's initial overlaps; print the
    max/mean relative deviation of eps_g."""
    from .. import online
    from ..results import check_output_path

    try:
        problem = problem_from_options(M, K, activation, lr, lr2, sigma, train_second_layer, weight_decay)
        check_output_path(out.with_suffix(".nc"), name="--out")
        c = online.compare(problem, N=N, seeds=seeds, alphas=_alphas(alpha_max, n_alphas), init=init,
                    init_scale=init_scale, progress=progress)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    nc = save_or_report(c, out.with_suffix(".nc"))
    png = _plot_eg(c.alpha, [(f"SGD, N={N}, {seeds} seeds", c.sgd_mean, c.sgd_sem), ("ODE", c.ode_mean, None)],
                   out.with_suffix(".png"), c.summary().splitlines()[0])
    typer.echo(c.summary())
    typer.echo(f"wrote {nc} and {png}" if nc else f"wrote {png}")
    if nc is None:
        raise typer.Exit(code=1)


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    """Add ``ode``, ``simulate`` and ``compare`` to ``app``."""
    app.command("ode")(ode_command)
    app.command("simulate")(simulate_command)
    app.command("compare")(compare_command)
