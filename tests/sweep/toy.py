"""A tiny, fast runner for the sweep tests (pure NumPy, no JIT), with hooks to slow a task down, to
log every computation and to kill its own worker once. Importing this module registers it as "toy"."""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learndyn.sweep import Option, Output, PointResult, Runner, register


@dataclass(frozen=True)
class ToyProblem:
    """``y_i = a * f(x_i) + b`` for ``n`` standard normals ``x`` drawn from the seed."""

    a: float
    n: int = 4
    b: float = 0.0
    kind: str = "sin"

    def __post_init__(self) -> None:
        if not math.isfinite(self.a):
            raise ValueError(f"a: must be finite, got {self.a!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n: must be a positive integer, got {self.n!r}")
        if self.kind not in ("sin", "cos"):
            raise ValueError(f"kind: unknown {self.kind!r}; allowed are ['sin', 'cos']")


def direct(problem: ToyProblem, seed: int, scale: float = 1.0) -> np.ndarray:
    """The toy computation, called directly (the reference for the sweep)."""
    x = np.random.default_rng([seed, 12345]).standard_normal(problem.n) * scale
    f = np.sin if problem.kind == "sin" else np.cos
    return problem.a * f(x) + problem.b


def _call(problem: ToyProblem, seed: int, *, scale: float, delay: float, log_dir: str, die_once_dir: str,
          die_when_a: float, fail_when_a: float, **_: Any) -> np.ndarray:
    point = f"a={problem.a}_n={problem.n}_b={problem.b}_kind={problem.kind}"
    tag = f"{point}_seed={seed}"
    if die_once_dir and problem.a == die_when_a:
        marker = Path(die_once_dir) / point
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-task, once per point
    if problem.a == fail_when_a:
        raise RuntimeError(f"deliberate failure at a={problem.a}")
    if delay:
        time.sleep(delay)
    if log_dir:
        with open(Path(log_dir) / "computed.log", "a") as fh:
            fh.write(tag + "\n")
    return direct(problem, seed, scale)


def _outputs(problem: ToyProblem, options: dict[str, Any], n_seeds: int) -> dict[str, Output]:
    return {"y": Output(("seed", "i"), {"i": np.arange(problem.n)}),
            "y_mean": Output(("seed",)),
            "n_pos": Output(("seed",), dtype="i8")}


def _reduce(y: np.ndarray, problem: ToyProblem, options: dict[str, Any], seeds: list[int]) -> PointResult:
    ok = bool(np.all(y < options["flag_above"]))
    return PointResult({"y": y[None, :], "y_mean": np.array([y.mean()]), "n_pos": np.array([int(np.sum(y > 0))])},
                       ok=ok, message="" if ok else "y above flag_above")


def _check(problem: ToyProblem, options: dict[str, Any]) -> None:
    if options["scale"] <= 0:
        raise ValueError(f"scale: must be > 0, got {options['scale']!r}")


TOY = Runner(
    name="toy",
    problem=ToyProblem,
    options={
        "scale": Option(float, 1.0, "scale of x"),
        "delay": Option(float, 0.0, "seconds to sleep per seed"),
        "log_dir": Option(str, "", "append one line per computation to LOG_DIR/computed.log"),
        "die_once_dir": Option(str, "", "kill the worker the first time a point with a = die_when_a runs"),
        "die_when_a": Option(float, float("nan"), "see die_once_dir"),
        "fail_when_a": Option(float, float("nan"), "raise for this value of a"),
        "flag_above": Option(float, float("inf"), "flag the point when y exceeds this"),
    },
    call=_call,
    reduce=_reduce,
    outputs=_outputs,
    check=_check,
    cost=lambda problem, options, n_seeds: n_seeds * (options["delay"] + 1e-4),
    memory=lambda problem, options, n_seeds: 1e6,
    description="toy runner of the tests",
)

# configs name it "toy" (a registered runner); an import path would need allow_import=True
register(TOY, replace=True)
