"""The ``fashionlens`` command line (:func:`main`). One module per command group, each adding its own
sub-commands to the parser that :mod:`fashionlens.cli.main` builds; the library never imports this package."""

from fashionlens.cli.main import main

__all__ = ["main"]
