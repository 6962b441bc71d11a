"""The ``learndyn`` command line (typer).

Each theory contributes its commands from ``learndyn/<theory>/cli.py`` through a ``register(app,
reproduce)`` function; paper recipes hang under ``learndyn reproduce <paper>``.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="learndyn",
    help="Exact theories of neural-network learning dynamics and the simulations that test them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
reproduce = typer.Typer(help="Reproduce the figures and claims of a paper.", no_args_is_help=True)
app.add_typer(reproduce, name="reproduce")

# Each module below defines register(app, reproduce).
_COMMAND_MODULES = [
    "learndyn.online.cli",
    "learndyn.online.sgd_cli",
    "learndyn.sweep.cli",
    "learndyn.dmft.cli",
    "learndyn.kernels.cli",
]


@app.command()
def version() -> None:
    """Print the package version."""
    from . import __version__

    typer.echo(__version__)


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app, reproduce)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
