"""``fashionlens evaluate calibration --model damage``: calibrate the damage regions' scores on validation.

The validation set is the damage recipe's own (``configs/damage_lite0.yaml``): the RISE photos of the
project's group split (seed 0) ``val``, squashed to the recipe's ``height × width``, the garment found on
its plain backdrop, each painted once with synthetic damage (seed ``10000 + recipe seed``, photo by photo,
as ``fashionlens train damage`` makes it) — plus the same photos clean. The shipped damage head runs as
``grade`` runs it (:class:`fashionlens.grading.damage.DamageFinder`: its region verifier or threshold
decoding, ONNX by default), and every region it reports is labelled *real* when at least
:data:`~fashionlens.grading.region_verifier.REAL_REGION_SHARE` of its pixels are painted damage (every
region on a clean photo is false).

A region's ``score`` (the head's mean damage probability over it) is mapped to "is real damage" by the
method with the lowest held-out negative log-likelihood — none, temperature scaling of the log-odds, or
isotonic regression — fitted on one half of the photos (seeded) and scored on the other, both ways; the
"after" numbers are out of fold. Isotonic regression is a candidate only when validation has at least
:data:`MIN_ISOTONIC_PER_CLASS` real and as many false regions: with fewer of one kind it is a step function
fitted to a handful of points, flat over most scores (it would give every region the same score and lose
the head's ranking). The regions' raw scores and labels are kept in ``damage_regions.npz`` in ``out_dir``. ``--save`` stores the fit on all validation photos next to the weights
(``damage-segmenter-lite0.calibration.json``, one head ``damage`` and one operating table ``damage`` of
(threshold, precision, share of real regions kept)). ``test=True`` measures it once on the test photos
(painted with seed ``20000 + recipe seed``).
"""

from __future__ import annotations

import json
import random
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.evaluate.calibration import (
    Outcomes,
    fit_head,
    heldout_nll,
    reliability_diagram,
)
from fashionlens.models.calibration import (
    DEFAULT_PRECISION,
    Calibration,
    HeadCalibration,
    OperatingCurve,
    calibration_path,
    expected_calibration_error,
)
from fashionlens.models.heads import HeadSpec
from fashionlens.paths import runs_path

__all__ = ["DAMAGE_HEAD", "damage_regions", "run_damage_calibration"]

DEFAULT_DAMAGE_RECIPE = "configs/damage_lite0.yaml"
#: the damage calibration: one multi-label "head" of one value, ``damage`` (is this region real damage?)
DAMAGE_HEAD = HeadSpec("damage", "multi", ("damage",))
DAMAGE_FIELD = "damage"
#: real and false regions each needed before isotonic regression is tried
MIN_ISOTONIC_PER_CLASS = 20


def _recipe(path: str | Path) -> dict[str, Any]:
    import yaml

    cfg = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    return {"height": int(cfg.get("height", 640)), "width": int(cfg.get("width", 384)),
            "sources": list(cfg.get("sources", ["rise"])), "seed": int(cfg.get("seed", 0)),
            "limit": cfg.get("limit")}


def _split_photos(recipe: dict[str, Any], split: str, data_root: str | Path, progress: bool) -> list[Any]:
    """The recipe's photos of ``split`` with their garment masks (as ``fashionlens train damage`` loads them)."""
    from PIL import Image
    from tqdm.auto import tqdm

    from fashionlens.grading.synthetic_damage import plain_background_mask
    from fashionlens.io.datasets import read_dataset
    from fashionlens.io.splits import group_split

    paths: list[str] = []
    for source in recipe["sources"]:
        paths += [str(r.path) for r in group_split(read_dataset(source, data_root), seed=0)[split]]
    if recipe["limit"]:
        paths = paths[: int(recipe["limit"])]
    photos = []
    for p in tqdm(paths, desc=f"{split} photos", disable=not progress, unit="photo"):
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB").resize((recipe["width"], recipe["height"]), Image.BILINEAR))
        mask = plain_background_mask(rgb)
        if mask is not None:
            photos.append((p, rgb, mask))
    return photos


def damage_regions(finder: Any, photos: Sequence[Any], *, seed: int, progress: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(score, real, photo index, photos)`` of every region ``finder`` reports on each photo painted once with
    synthetic damage (``seed``) and on the same photo clean (photo index ``len(photos) + i``)."""
    from tqdm.auto import tqdm

    from fashionlens.grading.region_verifier import REAL_REGION_SHARE
    from fashionlens.grading.synthetic_damage import DamageStyle, add_synthetic_damage

    scores, real, photo = [], [], []
    for i, (_path, rgb, garment) in enumerate(tqdm(photos, desc="damage regions", disable=not progress)):
        img, painted, _ = add_synthetic_damage(rgb, garment, rng=np.random.default_rng([seed, i]), style=DamageStyle())
        for k, (image, target) in enumerate(((img, painted != 0), (rgb, None))):
            for d in finder.find(image, garment):
                scores.append(d.score)
                real.append(target is not None and bool(target[d.mask].mean() >= REAL_REGION_SHARE)
                            if d.mask.any() else False)
                photo.append(i + k * len(photos))
    return (np.asarray(scores, np.float64), np.asarray(real, bool), np.asarray(photo, int), 2 * len(photos))


def _kept_curve(score: np.ndarray, real: np.ndarray, points: int = 200) -> OperatingCurve:
    """Precision of the regions kept at each calibrated-score threshold and the share of real regions kept."""
    grid = np.unique(np.concatenate([[0.0], np.quantile(score, np.linspace(0, 1, points + 1), method="inverted_cdf")]))
    n_real = max(1, int(real.sum()))
    prec = [round(float(real[score >= t].mean()) if (score >= t).any() else 1.0, 4) for t in grid]
    cov = [round(float(real[score >= t].sum()) / n_real, 4) for t in grid]
    return OperatingCurve(tuple(round(float(t), 6) for t in grid), tuple(prec), tuple(cov), int(real.sum()))


def run_damage_calibration(weights: str | Path | None = None, *, recipe: str | Path = DEFAULT_DAMAGE_RECIPE,
                           data_root: str | None = None, backend: str = "auto", out_dir: str | Path | None = None,
                           precision: float = DEFAULT_PRECISION, seed: int = 0, save: bool = False,
                           save_to: str | Path | None = None, test: bool = False, threads: int | None = 1,
                           progress: bool = True, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit and measure the damage regions' calibration on the damage recipe's validation photos; see the module doc."""
    from fashionlens.grading.damage import DamageFinder
    from fashionlens.models.registry import DEFAULT_DAMAGE_MODEL, default_weights_path
    from fashionlens.paths import default_data_root

    weights_path = Path(weights) if weights else default_weights_path(DEFAULT_DAMAGE_MODEL)
    finder = DamageFinder(weights_path, backend=backend, threads=threads)
    cfg = _recipe(recipe)
    root = data_root or default_data_root()
    out = Path(runs_path("calibration") if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    photos = _split_photos(cfg, "val", root, progress)
    s, y, ph, n_photos = damage_regions(finder, photos, seed=10_000 + cfg["seed"], progress=progress)
    if len(s) < 20 or y.all() or not y.any():
        raise ValueError(f"damage calibration: expected at least 20 regions, real and false, on the validation "
                         f"photos; got {len(s)} ({int(y.sum())} real)")
    order = list(range(len(photos)))
    random.Random(f"calibration/{seed}").shuffle(order)
    half_of_photo = np.zeros(len(photos), int)
    half_of_photo[order[1::2]] = 1
    halves = half_of_photo[ph % len(photos)]  # a photo and its clean copy stay in one half
    nll = heldout_nll(s[:, None], y[:, None], halves, DAMAGE_HEAD)
    candidates = {k: v for k, v in nll.items()
                  if k != "isotonic" or min(int(y.sum()), int((~y).sum())) >= MIN_ISOTONIC_PER_CLASS}
    method = min(candidates, key=candidates.get)  # type: ignore[arg-type]
    oof = np.zeros_like(s)
    emitted = right = 0
    for half in (0, 1):
        fit, held = halves != half, halves == half
        cal = fit_head(s[fit, None], y[fit, None], DAMAGE_HEAD, method)
        oof[held] = cal.apply(s[held, None])[:, 0]
        t = _kept_curve(cal.apply(s[fit, None])[:, 0].astype(np.float64), y[fit]).threshold_for(precision)
        keep = held & (oof >= t)
        emitted += int(keep.sum())
        right += int(y[keep].sum())
    final: HeadCalibration = fit_head(s[:, None], y[:, None], DAMAGE_HEAD, method)
    curve = _kept_curve(final.apply(s[:, None])[:, 0].astype(np.float64), y)
    row: dict[str, Any] = {
        "photos": len(photos), "regions": len(s), "real": int(y.sum()),
        "regions_on_clean_photos": int((ph >= len(photos)).sum()),
        "precision_as_decoded": round(float(y.mean()), 4),
        "ece_before": round(expected_calibration_error(s, y), 4),
        "ece_after": round(expected_calibration_error(oof, y), 4),
        "method": method, "heldout_nll": nll, "false_regions": int((~y).sum()),
        f"precision_at_{precision:g}": round(right / emitted, 4) if emitted else None,
        f"real_kept_at_{precision:g}": round(right / max(1, int(y.sum())), 4),
        "threshold": curve.threshold_for(precision),
    }
    if method == "temperature":
        row["temperature"] = final.temperature
    picture = reliability_diagram(Outcomes(s, y, ph, n_photos), Outcomes(oof, y, ph, n_photos),
                                  out / "reliability_damage.png",
                                  title=f"damage regions — RISE validation, {len(photos)} photos painted + clean, "
                                        f"{len(s)} regions")
    command = ("fashionlens evaluate calibration " + " ".join(shlex.quote(a) for a in (argv or []))).strip()
    provenance = {"split": "val", "recipe": str(recipe), "seed": cfg["seed"], "paint_seed": 10_000 + cfg["seed"],
                  "photos": len(photos), "n": len(s), "real": int(y.sum()),
                  "label": "real when >= 30% of the region's pixels are painted damage; every region on a clean "
                           "photo is false",
                  "weights": {"name": finder.meta.name, "version": finder.meta.version, "file": weights_path.name},
                  "backend": finder.backend, "decoding": finder.info.get("damage_decoding"), "halves_seed": seed,
                  "command": command}
    calibration = Calibration(heads={DAMAGE_HEAD.name: final}, operating={DAMAGE_FIELD: curve},
                              provenance=provenance, metrics={DAMAGE_FIELD: {k: v for k, v in row.items()
                                                                           if k != "heldout_nll"}})
    summary: dict[str, Any] = {"model": finder.info, "split": "val", "precision_target": precision, "damage": row,
                               "pictures": [str(picture)]}
    np.savez_compressed(out / "damage_regions.npz", val_score=s, val_real=y, val_photo=ph)
    if save or save_to:
        target = Path(save_to) if save_to else calibration_path(weights_path)
        summary["saved"] = str(calibration.save(target))
    if test:
        test_photos = _split_photos(cfg, "test", root, progress)
        ts, ty, tph, _ = damage_regions(finder, test_photos, seed=20_000 + cfg["seed"], progress=progress)
        np.savez_compressed(out / "damage_regions.npz", val_score=s, val_real=y, val_photo=ph, test_score=ts,
                            test_real=ty, test_photo=tph)
        tc = final.apply(ts[:, None])[:, 0].astype(np.float64)
        t = curve.threshold_for(precision)
        keep = tc >= t
        summary["test"] = {"photos": len(test_photos), "regions": len(ts), "real": int(ty.sum()),
                           "regions_on_clean_photos": int((tph >= len(test_photos)).sum()),
                           "precision_as_decoded": round(float(ty.mean()), 4) if len(ty) else None,
                           "ece_before": round(expected_calibration_error(ts, ty), 4),
                           "ece_after": round(expected_calibration_error(tc, ty), 4),
                           f"precision_at_{precision:g}": round(float(ty[keep].mean()), 4) if keep.any() else None,
                           f"real_kept_at_{precision:g}": round(float(ty[keep].sum()) / max(1, int(ty.sum())), 4)}
    (out / "calibration_damage.json").write_text(json.dumps(summary, indent=2), "utf-8")
    return summary
