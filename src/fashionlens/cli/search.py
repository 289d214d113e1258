"""Command line for garment search (issue 5): ``index build/add/remove/info/verify``, ``search``,
``train alignment`` and ``evaluate search``. Parses arguments and calls the library.

Errors (a damaged index included: :class:`~fashionlens.search.IndexFormatError` is a ``ValueError``)
reach ``fashionlens.cli.main``, which prints them as one line and exits 2. ``index build``/``index add``
name every failed input on stderr and exit 1 when there is one, like ``tag``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fashionlens.paths import default_data_root, runs_path

_FILTERS = (("category", "category"), ("colour", "colours"), ("pattern", "pattern"), ("material", "material"),
            ("object_type", "object_type"))


def _tag_options(args: argparse.Namespace) -> Any:
    from fashionlens.search.catalogue import TagOptions

    return TagOptions(weights=args.weights, whole_image=args.whole_image, detector=args.detector,
                      backend=args.backend, batch_size=args.batch_size, threads=args.threads)


def _alignment(args: argparse.Namespace) -> str | bool | None:
    return False if getattr(args, "no_text", False) else args.alignment


def _report_failure(failure: Any) -> None:
    """One stderr line per failed input (a :class:`~fashionlens.search.catalogue.FailedInput`)."""
    print(f"fashionlens: failed: {failure}", file=sys.stderr)


def _cmd_index_build(args: argparse.Namespace) -> int:
    from fashionlens.search.catalogue import build_index

    summary = build_index(args.inputs, args.index, kind=args.kind, alignment=_alignment(args),
                          options=_tag_options(args), progress=not args.quiet, ivf_storage=args.ivf_storage,
                          on_failure=_report_failure)
    print(json.dumps(summary, indent=2))
    return 1 if summary["errors"] else 0


def _cmd_index_add(args: argparse.Namespace) -> int:
    from fashionlens.search.catalogue import add_to_index

    summary = add_to_index(args.inputs, args.index, alignment=args.alignment, options=_tag_options(args),
                           progress=not args.quiet, on_failure=_report_failure)
    print(json.dumps(summary, indent=2))
    return 1 if summary["errors"] else 0


def _cmd_index_verify(args: argparse.Namespace) -> int:
    from fashionlens.search.index import verify_index

    problems = verify_index(args.index)
    if not problems:
        print(f"OK {args.index}: manifest seal, file checksums, FAISS vectors, SQLite integrity_check, "
              "counts and ids agree")
        return 0
    print(f"{args.index}: {len(problems)} problem(s)")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def _cmd_index_remove(args: argparse.Namespace) -> int:
    from fashionlens.search.catalogue import remove_from_index

    if not args.paths and not args.ids:
        raise ValueError("index remove: give photo paths (as stored in the index) and/or --id N")
    print(json.dumps(remove_from_index(args.index, paths=args.paths, ids=args.ids or []), indent=2))
    return 0


def _cmd_index_info(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from fashionlens.search.index import GarmentIndex

    with GarmentIndex.load(args.index) as index:
        print(json.dumps({"index": args.index, "vectors": len(index), **asdict(index.manifest)}, indent=2, default=str))
    return 0


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arg, field in _FILTERS:
        values = [v.strip() for item in getattr(args, arg) or [] for v in item.split(",") if v.strip()]
        if values:
            out[field] = values if len(values) > 1 else values[0]
    return out


def _garment_arg(value: str) -> str | int:
    """``--garment``: ``auto`` or a garment number (0, 1, …)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected auto or a garment number (0, 1, …); got {value!r}")
    return number


def _photo_query(searcher: Any, photo: str, garment: str | int, k: int, filters: dict[str, Any]
                 ) -> tuple[dict[str, Any], list[Any]]:
    """Tag ``photo`` once, pick the garment (``auto``: :func:`~fashionlens.search.catalogue.choose_garment`),
    say which on stderr, and search for it. The query gains ``garment_choice``, ``caption`` and
    ``garments`` (every garment of the photo) after the keys ``search_image`` writes."""
    from dataclasses import replace

    from fashionlens.search.captions import describe_garments
    from fashionlens.search.catalogue import choose_garment, garment_query

    result = searcher.photo_result(photo)
    n = len(result.garments)
    chosen = choose_garment(result) if garment == "auto" else int(garment)
    if not 0 <= chosen < n:
        raise ValueError(f"{photo}: garment {chosen} does not exist; the photo has {n} "
                         f"garment(s), numbered 0–{n - 1} (or use --garment auto)")
    garments = describe_garments(result)
    query, embedding = garment_query(result, chosen, str(photo))
    query.update({"garment_choice": "auto" if garment == "auto" else "given",
                  "caption": garments[chosen]["caption"], "garments": garments})
    g = garments[chosen]
    how = (f", the largest confident one; --garment 0–{n - 1} picks another" if garment == "auto" and n > 1
           else "")
    print(f"fashionlens: searching garment {chosen} of {n}: {g['category'] or g['object_type']} "
          f"({g['object_type']}){how}", file=sys.stderr)
    [raw] = searcher.index.search(searcher.space.image_queries(embedding[None, :]), k, filters=filters or None)
    return query, [replace(h, score=float(h.score) * searcher.space.scale) for h in raw]


def _cmd_search(args: argparse.Namespace) -> int:
    from fashionlens.search.captions import describe
    from fashionlens.search.catalogue import GarmentSearcher

    if args.k < 1:
        raise ValueError(f"-k: expected a number >= 1; got {args.k}")
    filters = _filters(args)
    with GarmentSearcher(args.index, options=_tag_options(args), alignment=args.alignment) as searcher:
        understanding: dict[str, Any] = {}  # text queries: what was understood, strict or not
        if args.text is not None:
            query: dict[str, Any] = {"text": args.text}
            found = searcher.query_text(args.text, k=args.k, filters=filters, understand=args.understand,
                                        strict=args.strict)
            hits = found.hits
            understanding = {"understood": found.understood(), "strict": found.strict}
        elif args.strict or not args.understand:
            raise ValueError("--strict and --no-query-parsing apply to --text queries")
        else:
            query, hits = _photo_query(searcher, args.image, args.garment, args.k, filters)
    rows = [h.to_dict() for h in hits]
    for row in rows:
        row["caption"] = describe(row)
    result = {"query": query, **understanding, "filters": filters, "hits": rows}
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.json and args.json != "-":
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", "utf-8")
    else:
        print(text)
    if args.sheet:
        from fashionlens.search.contact_sheet import contact_sheet

        # the tile's second line shows the garment's short caption (colours and noun) instead of the category id
        tiles = [{**row, "category": describe(row, short=True)} for row in rows]
        contact_sheet(tiles, args.sheet, image_root=args.image_root)
        print(f"fashionlens: contact sheet {args.sheet}", file=sys.stderr)
    return 0


def _cmd_train_alignment(args: argparse.Namespace) -> int:
    from fashionlens.train.alignment import AlignmentTrainConfig, train_alignment
    from fashionlens.train.config import load_config, parse_override

    config = load_config(args.config, dict(parse_override(o) for o in args.set or []),
                         config_class=AlignmentTrainConfig)
    summary = train_alignment(config, progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_evaluate_search(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.search_report import evaluate_search, evaluate_text_queries

    if args.queries:
        result = evaluate_text_queries(split=args.split, data_root=args.data_root, sources=tuple(args.sources.split(",")),
                                       alignment=args.alignment, classifier=args.classifier,
                                       max_per_family=args.max_queries or None, tune=args.tune, out_dir=args.out,
                                       progress=not args.quiet)
        print(json.dumps(result, indent=2))
        return 0
    if args.tune:
        raise ValueError("--tune applies to --queries")
    result = evaluate_search(alignment=args.alignment, classifier=args.classifier, cache_dir=args.cache,
                             data_root=args.data_root, sources=tuple(args.sources.split(",")), split=args.split,
                             out_dir=args.out, imagenet_baseline=not args.no_baseline, progress=not args.quiet)
    print(json.dumps(result, indent=2))
    return 0


def _add_tag_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None, help="classifier weights (default: the shipped model)")
    p.add_argument("--whole-image", action="store_true", help="photos are single garments: no detection")
    p.add_argument("--detector", default=None, help="detector weights (default: the shipped detector)")
    p.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``index`` group (build, add, remove, info, verify) and ``search`` to the top-level sub-commands ``sub``."""
    index = sub.add_parser("index", help="garment vector index: build, add, remove, info, verify") \
        .add_subparsers(dest="what", required=True)
    for name, func, helptext in (("build", _cmd_index_build, "build (or atomically rebuild) an index"),
                                 ("add", _cmd_index_add, "add photos / tag results (photos already there are replaced)")):
        c = index.add_parser(name, help=helptext)
        c.add_argument("inputs", nargs="+", help="photos, folders, glob patterns, or `tag --embed` JSONL files")
        c.add_argument("--index", required=True, metavar="DIR", help="index folder")
        if name == "build":
            c.add_argument("--kind", choices=["auto", "flat", "ivf", "hnsw"], default="auto",
                           help="auto: exact up to 20,000 garments, IVF above")
            c.add_argument("--ivf-storage", choices=["auto", "float16", "float32", "fastscan"], default="auto",
                           help="how IVF cells keep the vectors: float16 (half the memory of float32), float32 "
                                "(exact scores), fastscan (4-bit codes + exact float16 re-ranking: ~3x faster at "
                                "1M vectors), auto (default: fastscan from 100,000 garments, float16 below)")
            c.add_argument("--no-text", action="store_true", help="leave out the text-alignment part (no text search)")
        c.add_argument("--alignment", default=None, help="text–image alignment heads (default: the shipped ones)")
        _add_tag_options(c)
        c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        c.set_defaults(func=func)
    rm = index.add_parser("remove", help="remove the garments of photos (paths as stored) or ids")
    rm.add_argument("paths", nargs="*", help="photo paths as stored in the index")
    rm.add_argument("--id", dest="ids", type=int, action="append", help="a vector id (repeatable)")
    rm.add_argument("--index", required=True, metavar="DIR")
    rm.set_defaults(func=_cmd_index_remove)
    info = index.add_parser("info", help="print the index manifest")
    info.add_argument("--index", required=True, metavar="DIR")
    info.set_defaults(func=_cmd_index_info)
    verify = index.add_parser("verify", help="check the index files completely (checksums, FAISS, SQLite "
                                             "integrity_check, ids): prints OK (exit 0) or the problems (exit 1)")
    verify.add_argument("--index", required=True, metavar="DIR")
    verify.set_defaults(func=_cmd_index_verify)

    s = sub.add_parser("search", help="find garments like a photo's (--image) or matching words (--text)")
    s.add_argument("--index", required=True, metavar="DIR")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", metavar="PHOTO", help="query photo")
    what.add_argument("--text", help='query words, e.g. "red striped wool sweater"')
    s.add_argument("--strict", action="store_true",
                   help="text queries: keep only garments whose stored category, colours (all of them), pattern and "
                        "material agree with what the words name (default: those rank higher)")
    s.add_argument("--no-query-parsing", dest="understand", action="store_false",
                   help="text queries: rank by the text embedding alone, as before issue 27 (no category/colour "
                        "words read from the query, no re-ranking)")
    s.add_argument("--garment", type=_garment_arg, default="auto", metavar="auto|N",
                   help="which garment of the photo to search: auto (default: the largest confident one, "
                        "box area × detector score) or its number 0…n-1; the choice is printed on stderr")
    s.add_argument("--category", action="append", help="only these categories (repeat or comma-separate)")
    s.add_argument("--colour", "--color", dest="colour", action="append", help="only garments with this colour")
    s.add_argument("--pattern", action="append")
    s.add_argument("--material", action="append")
    s.add_argument("--object-type", dest="object_type", action="append")
    s.add_argument("-k", type=int, default=10, help="number of results")
    s.add_argument("--json", default=None, metavar="OUT", help="write the results here (default: stdout)")
    s.add_argument("--sheet", default=None, metavar="OUT.png", help="contact sheet of the results")
    s.add_argument("--image-root", default=None, help="relative stored paths are relative to this (contact sheet)")
    s.add_argument("--alignment", default=None, help="alignment heads the index was built with (default: shipped)")
    _add_tag_options(s)
    s.set_defaults(func=_cmd_search)


def register_train(train_sub: argparse._SubParsersAction) -> None:
    """Add ``alignment`` to the ``train`` group's sub-commands ``train_sub``."""
    ta = train_sub.add_parser(
        "alignment", help="train the text–image alignment heads (CLIP-style, on label captions)")
    ta.add_argument("--config", default=None, help="YAML config (see configs/alignment.yaml)")
    ta.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    ta.add_argument("-q", "--quiet", action="store_true")
    ta.set_defaults(func=_cmd_train_alignment)


def register_evaluate(eval_sub: argparse._SubParsersAction) -> None:
    """Add ``search`` to the ``evaluate`` group's sub-commands ``eval_sub``."""
    es = eval_sub.add_parser(
        "search", help="text→image recall/MRR, zero-shot vs probe vs supervised, image→image mAP")
    es.add_argument("--alignment", default=None, help="alignment heads (default: the shipped ones)")
    es.add_argument("--classifier", default=None, help="classifier weights (default: the shipped model)")
    es.add_argument("--cache", default=runs_path("cache", "classifier-224-s0"), help="prepared sample cache")
    es.add_argument("--data-root", default=default_data_root())
    es.add_argument("--sources", default="clothing,rise")
    es.add_argument("--split", choices=["train", "val", "test"], default="test")
    es.add_argument("--out", default=runs_path("eval-search"))
    es.add_argument("--no-baseline", action="store_true", help="skip the ImageNet-backbone baseline")
    es.add_argument("--queries", action="store_true",
                    help="instead: typed text queries composed from the split's labels (\"black and white striped "
                         "sweater\"), Recall@10/nDCG@10 with and without query understanding (issue 27)")
    es.add_argument("--max-queries", type=int, default=200,
                    help="--queries: at most this many per query family (seeded sample; 0 = all)")
    es.add_argument("--tune", action="store_true",
                    help="--queries: also grid-search the re-ranking weights (train/val splits only)")
    es.add_argument("-q", "--quiet", action="store_true")
    es.set_defaults(func=_cmd_evaluate_search)
