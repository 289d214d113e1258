"""``fashionlens export onnx``: the classifier, a detector or a damage head → ONNX. Parses arguments and
calls :mod:`fashionlens.runtime` (``export corrections`` registers from :mod:`fashionlens.cli.sorting`)."""

from __future__ import annotations

import argparse


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    if args.damage is not None:
        from fashionlens.runtime.damage_onnx import export_damage_onnx

        print(export_damage_onnx(args.damage or None, args.output))
        return 0
    if args.detector is not None:
        from fashionlens.runtime.detector_onnx import export_detector_onnx

        print(export_detector_onnx(args.detector or None, args.output))
        return 0
    from fashionlens.runtime.onnx_export import export_classifier_onnx

    print(export_classifier_onnx(args.weights, args.output))
    return 0


def register_export(export_sub: argparse._SubParsersAction) -> None:
    """Add ``onnx`` to the ``export`` group's sub-commands ``export_sub``."""
    eo = export_sub.add_parser("onnx", help="export the classifier (default) or the detector network to ONNX")
    eo.add_argument("--weights", default=None, help="classifier weights (default: the shipped classifier)")
    eo.add_argument("--detector", nargs="?", const="", default=None, metavar="WEIGHTS",
                    help="export a detector instead (no value: the shipped detector)")
    eo.add_argument("--damage", nargs="?", const="", default=None, metavar="WEIGHTS",
                    help="export a damage head instead (no value: the shipped damage head)")
    eo.add_argument("--output", default=None, help="ONNX file (default: next to the weights)")
    eo.set_defaults(func=_cmd_export_onnx)
