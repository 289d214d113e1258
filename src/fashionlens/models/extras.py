"""Optional dependencies: what to install when a command needs the ``[train]`` extra.

``pip install fashionlens`` runs inference on ONNX Runtime without torch; training, evaluation,
export and ``--backend torch`` need ``pip install 'fashionlens[train]'``. :func:`require_torch`
imports torch or raises :class:`MissingExtraError` (a ``RuntimeError``, so the command line ends
with its one-line message and exit code 2, not an ``ImportError`` traceback).
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

__all__ = ["TRAIN_EXTRA", "MissingExtraError", "require_torch", "torch_available"]

#: the install command that adds torch and the lab's other dependencies
TRAIN_EXTRA = "pip install 'fashionlens[train]'"


class MissingExtraError(RuntimeError):
    """A feature needs an optional dependency that is not installed; the message says what to install."""


def torch_available() -> bool:
    """Whether torch can be imported (found on the path; not imported by this call)."""
    return importlib.util.find_spec("torch") is not None


def require_torch(what: str) -> ModuleType:
    """``import torch``, or :class:`MissingExtraError` saying that ``what`` needs the ``[train]`` extra.

    >>> torch = require_torch("the torch backend")   # doctest: +SKIP
    """
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError(f"{what} needs PyTorch, which is not installed ({exc}); "
                                f"install the train extra: {TRAIN_EXTRA}") from None
    return torch
