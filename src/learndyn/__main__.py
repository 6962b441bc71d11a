"""``python -m learndyn``: the ``learndyn`` command line (:func:`learndyn.cli.main`)."""

from .cli import main

main()
