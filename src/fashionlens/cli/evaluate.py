"""``fashionlens evaluate detector``, ``evaluate classifier`` and ``evaluate calibration``. Parses arguments and
calls :func:`fashionlens.evaluate.detector_report.run_detector_evaluation` /
:func:`fashionlens.evaluate.report.evaluate_classifier_on_cache` /
:func:`fashionlens.evaluate.calibration.run_calibration`."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_evaluate_detector(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.detector_report import run_detector_evaluation

    if args.save_defaults and args.type_fusion == "on" and not args.no_classify:
        args.ed_parser.error("--save-defaults stores the detector's own threshold: add --type-fusion off")
    summary = run_detector_evaluation(
        out_dir=args.out, weights=args.weights, classifier=args.classifier, coco=args.coco, images=args.images,
        mapping=args.mapping, dataset=args.dataset, data_root=args.data_root, split=args.split, seed=args.seed,
        limit=args.limit, classify=not args.no_classify, type_fusion=args.type_fusion == "on",
        score_thresh=args.score_thresh, nms_thresh=args.nms_thresh,
        rule_sets=[tuple(r for r in rs.split(",") if r) for rs in (args.rules or [""])], task=args.task,
        save_defaults=args.save_defaults, progress=not args.quiet,
        on_message=lambda line: print(f"fashionlens: {line}", file=sys.stderr))
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_evaluate_classifier(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.report import evaluate_classifier_on_cache

    summary = evaluate_classifier_on_cache(args.weights, args.cache, split=args.split, out_dir=args.out,
                                           batch_size=args.batch_size)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_evaluate_calibration(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.calibration import main_argv, run_calibration

    if not 0.0 < args.precision <= 1.0:
        args.ecal_parser.error(f"--precision: expected a number in (0, 1], got {args.precision}")
    if args.test and args.model == "detector":
        args.ecal_parser.error("--test: measured for --model classifier, grader and damage (not yet the detector)")
    if args.model == "detector":
        from fashionlens.evaluate.calibration import run_detector_calibration

        summary = run_detector_calibration(args.weights, dataset=args.dataset, data_root=args.data_root,
                                           seed=args.seed, backend=args.backend, out_dir=args.out,
                                           precision=args.precision, save=args.save, save_to=args.save_to,
                                           progress=not args.quiet, argv=main_argv())
    elif args.model == "grader":
        from fashionlens.evaluate.calibration_grader import (
            DEFAULT_GRADER_DATA,
            run_grader_calibration,
        )

        summary = run_grader_calibration(args.weights, data=args.data or DEFAULT_GRADER_DATA, out_dir=args.out,
                                         precision=args.precision, seed=args.seed, save=args.save,
                                         save_to=args.save_to, test=args.test, progress=not args.quiet,
                                         argv=main_argv())
    elif args.model == "damage":
        from fashionlens.evaluate.calibration_damage import (
            DEFAULT_DAMAGE_RECIPE,
            run_damage_calibration,
        )

        summary = run_damage_calibration(args.weights, recipe=args.recipe or DEFAULT_DAMAGE_RECIPE,
                                         data_root=args.data_root, backend=args.backend, out_dir=args.out,
                                         precision=args.precision, seed=args.seed, save=args.save,
                                         save_to=args.save_to, test=args.test, progress=not args.quiet,
                                         argv=main_argv())
    else:
        from fashionlens.evaluate.calibration import DEFAULT_RECIPE

        recipe = args.recipe or DEFAULT_RECIPE
        summary = run_calibration(args.weights, recipe=recipe, data_root=args.data_root, backend=args.backend,
                                  out_dir=args.out, precision=args.precision, seed=args.seed, save=args.save,
                                  save_to=args.save_to, batch_size=args.batch_size, progress=not args.quiet,
                                  argv=main_argv())
        if args.test:
            from fashionlens.evaluate.operating_test import run_test_operating_points

            summary["test"] = run_test_operating_points(
                args.weights, calibration=args.save_to, recipe=recipe, data_root=args.data_root,
                backend="onnx" if args.backend == "auto" else args.backend, precision=args.precision,
                out=f"{args.out}/calibration_test.json", batch_size=args.batch_size, progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def register_evaluate(eval_sub: argparse._SubParsersAction) -> None:
    """Add ``detector``, ``classifier`` and ``calibration`` to the ``evaluate`` group's sub-commands ``eval_sub``."""
    ed = eval_sub.add_parser("detector", help="COCO box/mask AP, PR sweep and end-to-end metrics on labelled photos")
    ed.add_argument("--weights", default=None, help="detector weights (default: the shipped detector)")
    ed.add_argument("--classifier", default=None, help="classifier weights for end-to-end metrics (default: shipped)")
    ed.add_argument("--coco", default=None, help="COCO instances JSON (else --dataset/--split)")
    ed.add_argument("--images", default=None, help="image folder of --coco")
    ed.add_argument("--mapping", default=None, help="taxonomy mapping of the COCO labels (e.g. fashionpedia)")
    ed.add_argument("--dataset", default="ccp", help="development data set(s), comma-separated (with --split)")
    ed.add_argument("--data-root", default="../shared/datasets")
    ed.add_argument("--split", choices=["train", "val", "test"], default="val")
    ed.add_argument("--seed", type=int, default=0, help="split seed (as in training)")
    ed.add_argument("--score-thresh", type=float, default=None, help="operating threshold for end-to-end metrics")
    ed.add_argument("--rules", action="append", metavar="R1,R2", help="rule set to measure (repeatable; '' = none)")
    ed.add_argument("--nms-thresh", type=float, default=None, help="same-type NMS IoU (default: stored)")
    ed.add_argument("--save-defaults", action="store_true",
                    help="store the F1-best score threshold (first rule set) in the detector weights")
    ed.add_argument("--no-classify", action="store_true",
                    help="detector only: no end-to-end classification metrics and no classifier-fused object types")
    ed.add_argument("--type-fusion", choices=["on", "off"], default="on",
                    help="on (as tag): a confident classifier's object type replaces the detector's "
                         "(fashionlens.detection.type_fusion); off: the detector's own types")
    ed.add_argument("--task", choices=["coco", "top1"], default="coco",
                    help="coco: AP on boxes/masks; top1: single-garment photos (clothing, rise), top detection's "
                         "object type vs the label")
    ed.add_argument("--limit", type=int, default=None)
    ed.add_argument("--out", default="runs/evaluate-detector", help="output folder")
    ed.add_argument("-q", "--quiet", action="store_true")
    ed.set_defaults(func=_cmd_evaluate_detector, ed_parser=ed)

    ec = eval_sub.add_parser("classifier", help="metrics + confusion matrices on a prepared split")
    ec.add_argument("--weights", default=None, help="classifier weights (default: the shipped model)")
    ec.add_argument("--cache", default="runs/cache/classifier-224-s0", help="prepared sample cache")
    ec.add_argument("--split", default="test", choices=["train", "val", "test"])
    ec.add_argument("--out", default="runs/eval", help="folder for metrics.json and PNGs")
    ec.add_argument("--batch-size", type=int, default=64)
    ec.set_defaults(func=_cmd_evaluate_classifier)

    ecal = eval_sub.add_parser("calibration", help="fit and measure the classifier's calibration on its validation "
                               "split: ECE before/after, reliability diagrams, precision/coverage per field")
    ecal.add_argument("--model", choices=["classifier", "detector", "grader", "damage"], default="classifier",
                      help="classifier: every head on the recipe's validation split; detector: the garment scores "
                           "on --dataset's validation photos (matched at IoU >= 0.5); grader: the grading heads on "
                           "their RISE validation items; damage: the damage regions on the damage recipe's "
                           "validation photos (synthetic damage + the same photos clean)")
    ecal.add_argument("--weights", default=None,
                      help="weights (default: the shipped classifier / detector / grading heads / damage head)")
    ecal.add_argument("--dataset", default="ccp", help="with --model detector: the labelled photos (validation split)")
    ecal.add_argument("--data", default=None, metavar="PATH",
                      help="with --model grader: the RISE folder (default ../shared/datasets/rise)")
    ecal.add_argument("--recipe", default=None,
                      help="the weights' training config: its sample cache and seeded split give the validation set "
                           "(default configs/classifier_lite0.yaml; --model damage: configs/damage_lite0.yaml)")
    ecal.add_argument("--test", action="store_true",
                      help="also measure the saved calibration and operating points once on the test split "
                           "(the model cards' numbers; nothing is fitted on test)")
    ecal.add_argument("--data-root", default=None, help="data sets (default: the recipe's)")
    ecal.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    ecal.add_argument("--precision", type=float, default=0.90, help="target precision of the operating points")
    ecal.add_argument("--seed", type=int, default=0, help="split seed (as in training) and seed of the two "
                      "validation halves (out-of-fold numbers)")
    ecal.add_argument("--save", action="store_true",
                      help="store the calibration next to the weights (<weights>.calibration.json)")
    ecal.add_argument("--save-to", default=None, metavar="FILE", help="store the calibration here instead")
    ecal.add_argument("--out", default="runs/calibration", help="folder for calibration.json and the PNGs")
    ecal.add_argument("--batch-size", type=int, default=64)
    ecal.add_argument("-q", "--quiet", action="store_true")
    ecal.set_defaults(func=_cmd_evaluate_calibration, ecal_parser=ecal)
