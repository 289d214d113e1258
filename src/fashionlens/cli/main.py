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
    search,
    serve,
    sorting,
    tag,
    train,
    trends,
)

#: exit code of a command stopped by an operating-system error (full disk, permission denied, I/O error)
EXIT_OS_ERROR = 3


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
    stderr and exit 2; other operating-system errors (a full disk, a permission) with one line and
    :data:`EXIT_OS_ERROR`; a closed output pipe exits 1 quietly.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"fashionlens: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        sys.stderr.close()
        return 1
    except OSError as exc:  # a full disk, a permission, an I/O error: one line, never a traceback
        print(f"fashionlens: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_OS_ERROR


def _one_line(exc: BaseException, limit: int = 1000) -> str:
    """An exception as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
