"""Where fashionlens reads data sets and writes run outputs by default: resolved here, in one place.

Two environment variables move the defaults away from a checkout's layout:

``FASHIONLENS_DATA``   folder holding the data sets (``clothing/``, ``rise/``, ``ccp/``, ``streetstyle/``);
                       default ``../shared/datasets``
``FASHIONLENS_RUNS``   folder for training outputs, caches and evaluation reports; default ``runs``

Unset or blank, the defaults are the relative paths above, resolved against the current directory as
they always were (run from a checkout's root, ``../shared/datasets`` is the checkout's sibling). A
``~`` in a variable's value is expanded. Paths come back as ``str`` (they go into configs, YAML and
JSON as given). Training configs call these when a config is built (an explicit ``data_root`` /
``out_dir`` / ``cache_dir`` in a YAML file or ``--set`` wins); command-line defaults when the parser
is built; keyword defaults of library functions when their module is imported.
"""

from __future__ import annotations

import os

DATA_ENV = "FASHIONLENS_DATA"
RUNS_ENV = "FASHIONLENS_RUNS"
DEFAULT_DATA_ROOT = "../shared/datasets"
DEFAULT_RUNS_DIR = "runs"

__all__ = ["DATA_ENV", "DEFAULT_DATA_ROOT", "DEFAULT_RUNS_DIR", "RUNS_ENV", "default_data_root", "default_runs_dir",
           "runs_path"]


def _from_env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return os.path.expanduser(value) if value else default


def default_data_root() -> str:
    """The data-set folder: ``$FASHIONLENS_DATA``, else ``../shared/datasets`` (relative to the current
    directory)."""
    return _from_env(DATA_ENV, DEFAULT_DATA_ROOT)


def default_runs_dir() -> str:
    """The folder for run outputs and caches: ``$FASHIONLENS_RUNS``, else ``runs`` (relative to the current
    directory)."""
    return _from_env(RUNS_ENV, DEFAULT_RUNS_DIR)


def runs_path(*parts: str) -> str:
    """A path under :func:`default_runs_dir`, e.g. ``runs_path("cache", "detector")`` → ``runs/cache/detector``."""
    return os.path.join(default_runs_dir(), *parts)
