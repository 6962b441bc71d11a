"""The ``learndyn`` command line (typer), the top floor of the package.

Every command is built from the public API of the theories (:mod:`learndyn.online`, :mod:`learndyn.dmft`,
:mod:`learndyn.kernels`), of the sweeps (:mod:`learndyn.sweep`) and of the paper recipes
(:mod:`learndyn.experiments`); no theory package imports this one. Each module below contributes its
commands through a ``register(app, reproduce_app)`` function:

* :mod:`learndyn.cli.online` -- ``ode``, ``simulate``, ``compare`` (Goldt et al. 2019);
* :mod:`learndyn.cli.sweep` -- ``sweep``, ``sweep-status``, ``sweep-runners``;
* :mod:`learndyn.cli.plot` -- ``plot`` (a variable of a sweep store);
* :mod:`learndyn.cli.dmft` -- ``dmft`` (Montanari & Urbani 2025);
* :mod:`learndyn.cli.kernels` -- ``signal`` (Schoenholz et al. 2017; Xiao, Pennington & Schoenholz 2020);
* :mod:`learndyn.cli.reproduce` -- ``reproduce goldt2019 | montanari2025 | xiao2020``.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "reproduce_app", "main"]

#: The ``learndyn`` typer application (every command).
app = typer.Typer(
    name="learndyn",
    help="Exact theories of neural-network learning dynamics and the simulations that test them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: The ``learndyn reproduce <paper>`` group (the module :mod:`learndyn.cli.reproduce` fills it).
reproduce_app = typer.Typer(help="Reproduce the figures and claims of a paper.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")

# Each module below defines register(app, reproduce_app).
_COMMAND_MODULES = ["online", "sweep", "plot", "dmft", "kernels", "reproduce"]


@app.command()
def version() -> None:
    """Print the package version."""
    from .. import __version__

    typer.echo(__version__)


for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app, reproduce_app)


def main() -> None:
    """Console-script entry point (``learndyn``, ``python -m learndyn``): run :data:`app`."""
    app()


if __name__ == "__main__":
    main()
