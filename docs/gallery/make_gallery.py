"""Regenerate the gallery: every paper figure at full size, its wall time and its agreement numbers.

    python docs/gallery/make_gallery.py --run [--out DIR] [--only goldt2019_fig3 ...]   # rerun figures
    python docs/gallery/make_gallery.py --from DIR [--from DIR2]                        # page only
    python docs/gallery/make_gallery.py --run --quick --only goldt2019_fig1             # smoke test

``--run`` calls ``learndyn reproduce <paper> --figure <figure> --out DIR`` once per figure (full size:
hours on 2 cores, so CI never runs this), records each wall time in ``docs/gallery/walltimes.json``
and copies ``DIR/<paper>_<figure>.png`` into ``docs/gallery/``. Then (and with ``--from`` alone) it reads
each figure's ``.nc`` file, computes the theory-vs-simulation agreement numbers, and writes
``docs/gallery.md``. ``--quick`` runs the small versions and only prints their agreement numbers
(nothing in ``docs/`` changes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent
WALLTIMES = HERE / "walltimes.json"

# (paper, figure, what it shows)
FIGURES = [
    ("goldt2019", "fig1", "ε_g(α), R and Q of an erf student (M = K = 2, first layer, η = 0.5, σ = 0): the ODE "
     "(lines) and online SGD (markers, N = 500, 4 seeds) through the Saad–Solla plateau and its escape."),
    ("goldt2019", "fig2", "First layer only: final ε_g against L = K − M (M = 2, η = 0.1, σ = 0.1, informed "
     "start), SGD against the ODE and the closed form ε_g* of the fixed point (erf and linear)."),
    ("goldt2019", "fig3", "Both layers trained: final ε_g against K (M = 2, η = 0.2, σ = 0.1, α = 3000) for "
     "erf, ReLU and linear students; SGD (N = 400, 3 seeds) against the ODE from the same starts."),
    ("goldt2019", "fig4", "Specialisation: final overlaps R, Q and second-layer weights v of erf and ReLU "
     "students (M = 2, K = 4, both layers); the erf student forms the denoiser."),
    ("montanari2025", "fig2", "Pure noise, mean-field start (h = 0.9z + z³/6, α = 0.4, τ = 0.6, a₀ = 1): "
     "a(t) and the train error, symmetric DMFT (lines) against SGD on real two-layer networks (markers)."),
    ("montanari2025", "fig3", "Single index, lazy start a₀ = √m (h = φ̂ = 0.9z + z²/2, α = 0.3, τ = 0.3): "
     "train and test errors against t·m and t, DMFT against Gaussian-model GD."),
    ("montanari2025", "fig4", "Single index, mean-field start (h = φ̂ = 0.9z + z³/6, α = 0.3, τ = 0.3, "
     "a₀ = 1): a(t) and the errors, DMFT against SGD on real networks."),
    ("montanari2025", "fig6", "m = 4, pure noise, τ = 1, h = z/10 + z²/2, n/d = 1.5, a = (1, 1, −1, −1) "
     "with w₁ = w₃, w₂ = w₄: the general (non-symmetric) DMFT against Gaussian-model GD (η = 0.1)."),
    ("montanari2025", "fig7", "As fig6 with C(0,0) = I and a = (−1, −1/2, 1/3, 2/3)."),
    ("montanari2025", "threshold", "Fixed a = 1, pure noise, τ = 1, h = 0.3z + z²/2: relaxation time "
     "t_rel(ᾱ) and the interpolation threshold ᾱ_GF(m), extrapolated to m → ∞ (paper: ≈ 1.18)."),
    ("xiao2020", "signal", "Signal propagation: q*, c*, χ₁ and the depth scales ξ₁, ξ_c, ξ_* across "
     "(σ_w², σ_b²), and the critical lines of erf and tanh."),
    ("xiao2020", "spectrum", "NTK spectra against depth in the ordered, critical and chaotic phases: "
     "Θ diagonal and off-diagonal, λ_max, κ and |P(Θ)Y| measured on digits beside the large-depth theory."),
    ("xiao2020", "phase", "Trainability and generalization across (σ_w², depth) for erf, σ_b² = 0.18: NTK "
     "predictions of train/test accuracy and finite-width SGD (width 64) on digits, with the depth scales."),
    ("xiao2020", "cnn", "CNNs with flatten and global-average-pool readouts against the FCN (digits pooled "
     "to 4×4, d = 16 pixels): κ and λ_min against depth, and finite-width SGD."),
]

# Wall times on the loaded 2-core machine from the last full-size run, where only a paper or a group of
# figures was timed as a whole; --run replaces them with one time per figure.
GROUP_TIMES = {
    "goldt2019": "356 s for fig1–fig4 together (`--figure all`, measured after the restructuring on a loaded 2-core machine)",
    "montanari2025": "557 s for all six figures together (`--figure all`, measured after the restructuring on a loaded 2-core machine)",
    "xiao2020": "4592 s for all four together (dominated by the finite-width CNN SGD of cnn; measured before the restructuring)",
}


def _load(path: Path):
    from learndyn.results import load_dataset

    return load_dataset(path)


def _goldt(ds, late: int = 1) -> list[str]:
    """Late-time SGD against the ODE integrated from each seed's own start, relative to the ODE.

    ``late`` > 1 averages the last ``late`` records of each seed (fig2, which sits at its fixed point: a single
    record is one snapshot of the stationary fluctuations, and the runs of a figure share their seeds' input
    streams, so single-record deviations are correlated across runs); 1 takes the final record.
    """
    eg, ode = ds["eg"].values[:, :, -late:].mean(2), ds["eg_ode"].values[:, :, -late:].mean(2)
    labels = [str(x) for x in ds["label"].values]
    n, N = eg.shape[1], int(np.asarray(ds["N"].values).ravel()[0])
    rel = (eg - ode) / ode                                   # (run, seed)
    apart = np.abs(rel) > 0.5                                # SGD and its ODE in different states
    kept = np.where(apart, np.nan, rel)
    run_mean = np.nanmean(kept, 1)
    run_sem = np.nanstd(kept, 1, ddof=1) / np.sqrt(np.sum(~apart, 1))
    i = int(np.nanargmax(np.abs(run_mean)))
    a = ds["alpha"].values
    when = f"mean over the last {late} records, α = {a[-late]:.0f}–{a[-1]:.0f}" if late > 1 else f"α = {a[-1]:.0f}"
    lines = [f"ε_g ({when}), SGD (N = {N}, {n} seeds) "
             f"against the ODE from each seed's own start: seed-mean "
             f"relative deviation within ±{np.nanmax(np.abs(run_mean)):.3f} over {len(labels)} runs (largest "
             f"{run_mean[i]:+.3f}, {labels[i]}, s.e. {run_sem[i]:.3f}); median over all seeds "
             f"{np.nanmedian(np.abs(rel)):.3f}"]
    for r, s_ in zip(*np.nonzero(apart)):
        lines.append(f"{labels[r]}, seed {s_}: SGD ε_g = {eg[r, s_]:.2e} against ODE {ode[r, s_]:.2e} "
                     "(one of the two still on a plateau; left out above)")
    return lines


def _goldt_fig1(ds) -> list[str]:
    """Seed-mean ε_g(α) against the ODE before the escape, and the escape time of both."""
    a = ds["alpha"].values
    sgd, ode = ds["eg"].values[0].mean(0), ds["eg_ode"].values[0].mean(0)
    before = (ode > 1e-2) & (a > 0)
    rel = np.abs(sgd - ode)[before] / ode[before]

    def escape(y):
        below = np.nonzero((y < 1e-3) & (a > 0))[0]
        return f"α = {a[below[0]]:.0f}" if below.size else f"not before α = {a[-1]:.0f}"

    return [f"seed-mean ε_g(α) against the ODE while ε_g > 10⁻² (start and plateau): relative deviation "
            f"≤ {rel.max():.3f}",
            f"escape (ε_g < 10⁻³, on the output grid): SGD seed mean at {escape(sgd)}, ODE seed mean at "
            f"{escape(ode)}"]


def _goldt_fig2(ds) -> list[str]:
    lines = _goldt(ds, late=10)
    fp, ode = ds["fixed_point_eg"].values, np.nanmean(ds["eg_ode"].values[:, :, -1], 1)  # the ODE's last state
    ok = np.isfinite(fp)
    if ok.any():
        dev = np.abs(ode[ok] - fp[ok]) / fp[ok]
        lines.append(f"ODE at the final time against the fixed point ε_g* (Newton on the ODE): within "
                     f"{dev.max():.2%} ({int(ok.sum())} runs)")
    return lines


def _montanari(ds) -> list[str]:
    """Largest |simulation mean − DMFT| in units of the simulation's standard error, per run."""
    lines = []
    for r, label in enumerate(ds["label"].values):
        info = json.loads(str(ds["sim_info"].values[r]) or "{}")
        if not info:
            continue
        st = ds["sim_t"].values[r]
        sim = ds["sim_train_error"].values[r]
        ok = np.isfinite(st) & np.all(np.isfinite(sim), axis=0)
        t, sim = st[ok], sim[:, ok]
        tt, et = ds["t"].values[r], ds["dmft_train_error"].values[r]
        fin = np.isfinite(tt) & np.isfinite(et)
        t, sim = t[t <= tt[fin].max()], sim[:, t <= tt[fin].max()]
        theory = np.interp(t, tt[fin], et[fin])
        n = sim.shape[0]
        mean, sem = sim.mean(0), sim.std(0, ddof=1) / np.sqrt(n)
        z = np.abs(mean - theory) / np.where(sem > 0, sem, np.inf)
        j = int(np.argmax(np.abs(mean - theory)))
        gap = abs(mean[j] - theory[j])
        kind = "real-network SGD" if "network" in info.get("kind", "") else "Gaussian-model GD"
        lines.append(f"{label}: train error, {kind} (d = {info.get('d')}, {n} seeds) against DMFT: "
                     f"largest gap {gap:.3g} ({gap / theory[j]:.1%} of the DMFT value, {z[j]:.1f} s.e.) at t = {t[j]:.3g}")
    if "threshold_abar_gf" in ds:
        m = ds["threshold_m"].values
        a = ds["threshold_abar_gf"].values
        inf = float(ds.attrs.get("abar_gf_inf", "nan"))
        lines.append("ᾱ_GF(m): " + ", ".join(f"m = {int(mm)}: {aa:.3f}" for mm, aa in zip(m, a))
                     + f"; extrapolated ᾱ_GF(∞) = {inf:.3f} (paper ≈ 1.18)")
    return lines


def _xiao_signal(ds) -> list[str]:
    q = ds["critical_q_star_erf"].values
    closed = np.pi / 4 * np.sqrt(1 + 4 * q)
    dev = np.nanmax(np.abs(ds["critical_weight_var_erf"].values - closed))
    return [f"erf critical line against the closed form σ_w² = (π/4)√(1 + 4q*): largest difference {dev:.1e} "
            f"over {q.size} values of σ_b²"]


def _xiao_spectrum(ds) -> list[str]:
    lines = []
    for p, phase in enumerate(ds["phase"].values):
        parts = []
        for v in ("theta_o", "lambda_max"):
            meas, th = ds[v].values[p, -1], ds[f"theory_{v}"].values[p, -1]
            parts.append(f"{v} {abs(meas - th) / abs(th):.1e}")
        lines.append(f"{phase}, depth {int(ds['depth'].values[-1])}: measured against the large-depth theory, "
                     "relative difference " + ", ".join(parts))
    return lines


def _xiao_phase(ds) -> list[str]:
    acc = ds["ntk_test_accuracy"]
    best = float(acc.sel(time=np.inf).max()) if np.inf in acc["time"].values else float(acc.max())
    sgd = ds["sgd_test_accuracy"]
    return [f"NTK test accuracy at t = ∞: best {best:.3f}; finite-width SGD test accuracy "
            f"from {float(sgd.min()):.3f} to {float(sgd.max()):.3f} over {sgd.size} (σ_w², depth) points"]


def _xiao_cnn(ds) -> list[str]:
    lam = ds["lambda_min"]
    archs = [str(a) for a in ds["architecture"].values]
    phases = [str(p) for p in ds["phase"].values]
    if "chaotic" not in phases or "cnn_flatten" not in archs or "cnn_gap" not in archs:
        return []
    c = phases.index("chaotic")
    ratio = float(lam.values[c, archs.index("cnn_flatten"), -1] / lam.values[c, archs.index("cnn_gap"), -1])
    return [f"chaotic phase, depth {int(ds['depth'].values[-1])}: λ_min(flatten)/λ_min(pool) = {ratio:.3f} "
            f"(theory: d = {ds.attrs.get('d', '?')} pixels)"]


AGREEMENT = {"goldt2019": _goldt, "goldt2019_fig1": _goldt_fig1, "goldt2019_fig2": _goldt_fig2, "montanari2025": _montanari, "xiao2020_signal": _xiao_signal,
             "xiao2020_spectrum": _xiao_spectrum, "xiao2020_phase": _xiao_phase, "xiao2020_cnn": _xiao_cnn}


def agreement(paper: str, figure: str, nc: Path) -> list[str]:
    fn = AGREEMENT.get(f"{paper}_{figure}") or AGREEMENT.get(paper)
    return fn(_load(nc)) if fn and nc.exists() else []


def run_figure(paper: str, figure: str, out: Path, quick: bool = False) -> float:
    cmd = [sys.executable, "-m", "learndyn", "reproduce", paper, "--figure", figure, "--out", str(out),
           "--no-progress"] + (["--quick"] if quick else [])
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def write_page(sources: list[Path]) -> str:
    times = json.loads(WALLTIMES.read_text()) if WALLTIMES.exists() else {}
    out = ["# Gallery\n",
           "Every figure of the three papers as `learndyn reproduce` makes it at full size, with its command, "
           "its wall time on a 2-core machine (goldt2019 and montanari2025 re-timed after the restructuring of the package, on a loaded 2-core machine; xiao2020 from the run before it) and the agreement of theory and simulation, computed from the "
           "figure's netCDF file (written beside the PNG; `learndyn.results.load_dataset` reads it). "
           "`--quick` gives the same figure at a small size in seconds to minutes. This page and its images "
           "are regenerated by `python docs/gallery/make_gallery.py --run` (hours; CI does not run it).\n"]
    paper_titles = {"goldt2019": "Goldt et al. 2019 — teacher–student online SGD",
                    "montanari2025": "Montanari & Urbani 2025 — DMFT of two-layer networks",
                    "xiao2020": "Xiao, Pennington & Schoenholz 2020 — NNGP/NTK"}
    last = None
    for paper, figure, caption in FIGURES:
        name = f"{paper}_{figure}"
        if paper != last:
            out.append(f"## {paper_titles[paper]}\n")
            last = paper
        nc = next((s / paper / f"{name}.nc" for s in sources if (s / paper / f"{name}.nc").exists()),
                  next((s / f"{name}.nc" for s in sources if (s / f"{name}.nc").exists()), Path("/nonexistent")))
        wall = f"{times[name]:.0f} s" if name in times else GROUP_TIMES[paper]
        out.append(f"### {paper} {figure}\n")
        out.append(f"![{paper} {figure}](gallery/{name}.png)\n")
        out.append(caption + "\n")
        out.append(f"* command: `learndyn reproduce {paper} --figure {figure} --out results/figures`")
        out.append(f"* wall time (2 cores): {wall}")
        for line in agreement(paper, figure, nc):
            out.append(f"* {line}")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="store_true", help="rerun every figure at full size (hours)")
    ap.add_argument("--out", type=Path, default=Path("results/gallery"), help="where --run writes figures")
    ap.add_argument("--only", nargs="*", default=None, help="with --run: only these <paper>_<figure>")
    ap.add_argument("--quick", action="store_true", help="with --run: small versions; print, change nothing")
    ap.add_argument("--from", dest="sources", type=Path, action="append", default=[],
                    help="folders holding <paper>/<paper>_<figure>.nc (or the files directly)")
    args = ap.parse_args()
    sources = list(args.sources)
    if args.run:
        times = json.loads(WALLTIMES.read_text()) if WALLTIMES.exists() else {}
        for paper, figure, _ in FIGURES:
            name = f"{paper}_{figure}"
            if args.only and name not in args.only:
                continue
            out = args.out / paper
            seconds = run_figure(paper, figure, out, args.quick)
            if args.quick:
                print(f"{name} (quick): {seconds:.0f} s")
                for line in agreement(paper, figure, out / f"{name}.nc"):
                    print("  " + line)
                continue
            times[name] = round(seconds, 1)
            shutil.copyfile(out / f"{name}.png", HERE / f"{name}.png")
            WALLTIMES.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
        if args.quick:
            return
        sources.insert(0, args.out)
    (DOCS / "gallery.md").write_text(write_page(sources))
    print("wrote", DOCS / "gallery.md")


if __name__ == "__main__":
    main()
