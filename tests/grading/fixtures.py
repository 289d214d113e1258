"""A small generated data set in the assumed RISE-release layout, with labels learnable from pixels.

``write_release_fixture(root, n_items=…, seed=…)`` writes ``root/site_<k>/<item_id>/`` folders with a
front, a back and a brand/care-label photo and one flat JSON label object. File and key names vary
between items the way the reader must tolerate (``front.jpg``, ``<id>_front.JPG``, ``IMG_front.png``;
``labels_<id>.json``, ``labels.json``, ``<id>.json``; ``price``/``Price_Band``/``pricerange``, …).

What the pixels say (so a frozen-embedding model can beat the majority class for real):

* ``type`` — the drawn silhouette: Sweater (body + long sleeves), Vest (narrow body, no sleeves),
  Jacket (wide A-shape with a dark zip line);
* ``material`` — the fabric: cotton = plain pastel, wool = bold horizontal knit stripes,
  polyester = a saturated vertical gradient; ``season`` follows the material;
* ``condition`` 1–5 — the number of dark-brown blotches, ``(5 - condition) * 3``, on front and back;
  ``usage`` follows the condition (5/4 reuse, 3 export, 2 repair, 1 recycle), ``stains`` too;
* ``pilling`` 1–5 — the density of small pale dots; ``holes`` — small black discs;
* ``price`` follows the type (and is missing for about a quarter of the items); ``trend`` is random
  and missing for half: nothing to learn, and the masked loss must not care.

Used by ``tests/grading/test_grader.py`` and ``tests/io/test_rise_release.py`` (loaded by path).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

TYPES = ("Sweater", "Vest", "Jacket")
MATERIALS = {"cotton": "100% cotton", "wool": "80% wool 20% polyamide", "polyester": "100%poly"}
SEASON_OF = {"cotton": "Summer", "wool": "Winter", "polyester": "All"}
USAGE_OF = {5: "Reuse", 4: "Reuse", 3: "Export", 2: "Repair", 1: "Recycle"}
STAINS_OF = {5: "None", 4: "None", 3: "Minor", 2: "Minor", 1: "Major"}
PRICE_OF = {"Jacket": "200-400 SEK", "Sweater": "100-200 SEK", "Vest": "0-100 SEK"}

# name variants: (front, back, label photo, JSON name, key spelling)
_VARIANTS = (
    ("front.jpg", "back.jpg", "label.jpg", "labels_{id}.json", "plain"),
    ("{id}_front.JPG", "{id}_Back.png", "care.jpeg", "labels.json", "aliases"),
    ("IMG_front.png", "back.JPEG", "brand.jpg", "{id}.json", "upper"),
)


def _fabric(material: str, size: int, rng: np.random.Generator) -> np.ndarray:
    h = w = size
    if material == "cotton":
        base = rng.uniform(170, 235, 3)
        img = np.broadcast_to(base, (h, w, 3)).copy()
    elif material == "wool":
        a, b = rng.uniform(30, 120, 3), rng.uniform(150, 250, 3)
        rows = ((np.arange(h) // max(2, size // 16)) % 2).astype(bool)
        img = np.where(rows[:, None, None], a, b) * np.ones((h, w, 3))
    else:
        c = np.zeros(3)
        c[int(rng.integers(0, 3))] = 230
        t = np.linspace(0.35, 1.0, w)[None, :, None]
        img = (c * t + 20) * np.ones((h, w, 3))
    img += rng.normal(0, 4, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def _silhouette(kind: str, size: int) -> tuple[Image.Image, list[tuple[int, int]]]:
    s = size
    mask = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(mask)
    if kind == "Sweater":
        d.rectangle([int(0.3 * s), int(0.2 * s), int(0.7 * s), int(0.85 * s)], fill=255)
        d.rectangle([int(0.05 * s), int(0.2 * s), int(0.95 * s), int(0.35 * s)], fill=255)
    elif kind == "Vest":
        d.rectangle([int(0.37 * s), int(0.15 * s), int(0.63 * s), int(0.9 * s)], fill=255)
    else:
        d.polygon([(int(0.3 * s), int(0.12 * s)), (int(0.7 * s), int(0.12 * s)), (int(0.92 * s), int(0.92 * s)),
                   (int(0.08 * s), int(0.92 * s))], fill=255)
    inside = [(x, y) for y in range(0, s, 4) for x in range(0, s, 4) if mask.getpixel((x, y))]
    return mask, inside


def _garment_photo(kind: str, material: str, condition: int, pilling: int, holes: int, size: int,
                   rng: np.random.Generator, *, back: bool) -> Image.Image:
    bg = np.full((size, size, 3), 225, np.float32) + rng.normal(0, 3, (size, size, 3))
    photo = Image.fromarray(bg.clip(0, 255).astype(np.uint8))
    mask, inside = _silhouette(kind, size)
    photo.paste(Image.fromarray(_fabric(material, size, rng)), (0, 0), mask)
    d = ImageDraw.Draw(photo)
    if kind == "Jacket" and not back:
        d.line([(size // 2, int(0.12 * size)), (size // 2, int(0.92 * size))], fill=(20, 20, 20), width=3)
    pick = lambda: inside[int(rng.integers(0, len(inside)))]
    for _ in range((5 - condition) * 3):
        x, y = pick()
        r = int(rng.integers(size // 20, size // 9))
        d.ellipse([x - r, y - r, x + r, y + int(r * 0.7)], fill=(90, 55, 20))
    for _ in range(pilling * 25):
        x, y = pick()
        d.ellipse([x - 1, y - 1, x + 1, y + 1], fill=(245, 245, 240))
    for _ in range(holes * 2):
        x, y = pick()
        r = max(2, size // 40)
        d.ellipse([x - r, y - r, x + r, y + r], fill=(0, 0, 0))
    return photo


def _label_photo(size: int, rng: np.random.Generator) -> Image.Image:
    photo = Image.new("RGB", (size, size // 2), (250, 250, 245))
    d = ImageDraw.Draw(photo)
    d.text((4, 4), f"BRAND {int(rng.integers(0, 99))}", fill=(0, 0, 0))
    return photo


def _labels(item: dict[str, Any], style: str) -> dict[str, Any]:
    keys = {
        "plain": {"usage": "usage", "condition": "condition", "price": "price", "stains": "stains", "holes": "holes",
                  "pilling": "pilling", "damage": "damage", "type": "type", "material": "material",
                  "season": "season", "trend": "trend", "brand": "brand", "colors": "colors"},
        "aliases": {"usage": "Usage", "condition": "Condition_Score", "price": "Price_Band", "stains": "Stain",
                    "holes": "hole", "pilling": "Pilling", "damage": "Damages", "type": "Garment Type",
                    "material": "Composition", "season": "Seasons", "trend": "Trendy", "brand": "Brand",
                    "colors": "Colours"},
        "upper": {"usage": "USAGE", "condition": "CONDITION", "price": "PriceRange", "stains": "STAINS",
                  "holes": "HOLES", "pilling": "PILLING", "damage": "DAMAGE", "type": "TYPE",
                  "material": "MATERIAL", "season": "SEASON", "trend": "TREND", "brand": "BRAND", "colors": "COLOR"},
    }[style]
    out = {}
    for k, v in item.items():
        if k in keys and v is not None:
            out[keys[k]] = v
    if style == "aliases" and "condition" in item:  # "3 - good" style text
        out[keys["condition"]] = f"{item['condition']} - graded"
    if style == "upper" and "pilling" in item:
        out[keys["pilling"]] = str(item["pilling"])
    return out


def write_release_fixture(root: str | Path, *, n_items: int = 90, seed: int = 0, size: int = 128,
                          broken: bool = False) -> dict[str, Any]:
    """Write the data set; returns ``{"root", "items": {item_id: truth labels}, "broken": {case: item_id}}``.

    The truth labels use the canonical spelling the reader should produce (``usage`` lower-case,
    ``condition`` an int, ``material`` the main fibre). With ``broken`` four extra folders are added:
    one without a back photo, one with unreadable JSON, one without a label file and one with only a
    label photo (which the reader must leave out and report).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    truth: dict[str, dict[str, Any]] = {}
    for i in range(n_items):
        item_id = f"FX{i:04d}"
        kind = TYPES[i % len(TYPES)] if i < 3 else pyrng.choice(TYPES)
        material = pyrng.choice(list(MATERIALS))
        condition = int(rng.integers(1, 6))
        pilling = int(rng.integers(1, 6))
        holes = int(rng.random() < 0.2)
        stains = STAINS_OF[condition]
        damage = [d for d, on in (("stain", stains != "None"), ("hole", holes)) if on]
        item = {"usage": USAGE_OF[condition], "condition": condition, "price": PRICE_OF[kind],
                "stains": stains, "holes": "Minor" if holes else "None", "pilling": pilling,
                "damage": damage or "None", "type": kind, "material": MATERIALS[material],
                "season": SEASON_OF[material], "trend": pyrng.choice(["Trendy", "Classic"]),
                "brand": f"Brand{pyrng.randint(1, 9)}", "colors": ["Blue"]}
        if rng.random() < 0.25:
            item["price"] = None
        if rng.random() < 0.5:
            item["trend"] = None
        front_name, back_name, label_name, json_name, style = _VARIANTS[i % len(_VARIANTS)]
        folder = root / f"site_{i % 2}" / item_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, is_back in ((front_name, False), (back_name, True)):
            img = _garment_photo(kind, material, condition, pilling, holes, size, rng, back=is_back)
            _save(img, folder / name.format(id=item_id))
        _save(_label_photo(size, rng), folder / label_name)
        (folder / json_name.format(id=item_id)).write_text(json.dumps(_labels(item, style)), encoding="utf-8")
        n_damage = len(damage)
        truth[item_id] = {
            "usage": USAGE_OF[condition].lower(), "condition": condition,
            "price": None if item["price"] is None else item["price"].lower(), "stains": stains.lower(),
            "holes": "minor" if holes else "none", "pilling": pilling,
            "damage": "none" if not n_damage else (damage[0] if n_damage == 1 else "multiple"), "type": kind,
            "material": material, "season": SEASON_OF[material].lower(),
            "trend": None if item["trend"] is None else item["trend"].lower(),
        }
    cases: dict[str, str] = {}
    if broken:
        site = root / "site_x"
        for case in ("no_back", "bad_json", "no_json", "label_only"):
            item_id = f"BR_{case}"
            folder = site / item_id
            folder.mkdir(parents=True, exist_ok=True)
            if case != "label_only":
                _save(_garment_photo("Vest", "cotton", 3, 1, 0, size, rng, back=False), folder / "front.jpg")
            if case not in ("no_back", "label_only"):
                _save(_garment_photo("Vest", "cotton", 3, 1, 0, size, rng, back=True), folder / "back.jpg")
            _save(_label_photo(size, rng), folder / "label.jpg")
            if case == "bad_json":
                (folder / "labels.json").write_text('{"type": "Vest", "condition": ', encoding="utf-8")
            elif case in ("no_back", "label_only"):
                (folder / "labels.json").write_text(json.dumps({"type": "Vest", "condition": 3}), encoding="utf-8")
            cases[case] = item_id
    return {"root": root, "items": truth, "broken": cases}


def _save(img: Image.Image, path: Path) -> None:
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}[path.suffix.lower()]
    img.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
