"""Export: reviewed garments as COCO that pycocotools loads (boxes, RLE masks, attributes), reviewed items
in the RISE layout that the project's item reader reads back; pending and skipped tasks left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from review_testing import (
    box_mask,
    garment,
    item_line,
    result_line,
    sure,
    three_unsure_fields,
    unsure,
    write_jsonl,
    write_photo,
)

from fashionlens.io.records import decode_mask
from fashionlens.review.export import export_reviewed
from fashionlens.review.queue import build_queue
from fashionlens.review.store import ReviewStore


def _store_with_reviews(tmp_path: Path) -> tuple[ReviewStore, dict[str, int]]:
    a = write_photo(tmp_path / "p" / "a.jpg")
    b = write_photo(tmp_path / "p" / "b.png", 80, 60)
    mask = box_mask(96, 128, (24, 32, 48, 64))
    lines = [result_line(a, [garment(mask=mask, attributes=three_unsure_fields()),
                             garment(object_type="lower-body", bbox=(10, 70, 40, 50),
                                     category=unsure([("jeans", 0.5), ("trousers", 0.4)]),
                                     attributes={"pattern": unsure([("plain", 0.5), ("striped", 0.2)])})]),
             result_line(b, [garment(bbox=(5, 5, 30, 30), attributes={"fit": unsure([("loose", 0.5), ("regular", 0.4)])})],
                         width=80, height=60)]
    store = ReviewStore(tmp_path / "r.sqlite")
    build_queue(write_jsonl(tmp_path / "r.jsonl", lines), store, diversity=0.0)
    tasks = {(t.line, t.index): t.id for t in store.tasks()}
    ids = {"masked": tasks[(1, 0)], "jeans": tasks[(1, 1)], "skipped": tasks[(2, 0)]}
    store.answer(ids["masked"], "pattern", "plain", reviewer="anna")
    store.answer(ids["masked"], "colours", ["blue", "white"], reviewer="anna")
    store.finish(ids["masked"], "accept")
    store.answer(ids["jeans"], "category", "jeans")
    store.finish(ids["jeans"], "accept")
    store.finish(ids["skipped"], "skip")
    return store, ids


def test_coco_export_loads_in_pycocotools_with_masks_and_attributes(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    store, ids = _store_with_reviews(tmp_path)
    summary = export_reviewed(store, tmp_path / "out")
    assert (summary.images, summary.annotations, summary.rise) == (1, 2, None)
    coco = COCO(str(tmp_path / "out" / "coco" / "annotations.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    by_task = {a["fashionlens"]["task_id"]: a for a in anns}
    assert set(by_task) == {ids["masked"], ids["jeans"]}  # the skipped one is left out
    masked = by_task[ids["masked"]]
    assert coco.loadCats(masked["category_id"])[0]["name"] == "t-shirts"
    assert masked["attributes"]["pattern"] == "plain" and masked["attributes"]["colours"] == ["blue", "white"]
    assert masked["attributes"]["material"] is None  # unsure and not answered: unknown, never the model's guess
    assert masked["attributes"]["sleeve"] == "short"
    drawn = coco.annToMask(masked).astype(bool)
    expected = decode_mask(box_mask(96, 128, (24, 32, 48, 64)))
    assert np.array_equal(drawn, expected) and masked["area"] == float(expected.sum())
    jeans = by_task[ids["jeans"]]
    assert coco.loadCats(jeans["category_id"])[0]["name"] == "jeans" and jeans["bbox"] == [10.0, 70.0, 40.0, 50.0]
    assert "segmentation" not in jeans
    # the export also serves as detections for COCOeval: loadRes takes its annotations as results
    results = [{**a, "score": 1.0} for a in anns]
    for r in results:
        r.pop("segmentation", None)
    res = coco.loadRes(results)
    assert len(res.getAnnIds()) == 2


def test_object_type_label_space(tmp_path: Path) -> None:
    store, _ = _store_with_reviews(tmp_path)
    export_reviewed(store, tmp_path / "out", label_space="object_type")
    data = json.loads((tmp_path / "out" / "coco" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert sorted(names[a["category_id"]] for a in data["annotations"]) == ["lower-body", "upper-body"]


def test_items_export_in_the_rise_layout_that_read_items_reads(tmp_path: Path) -> None:
    from fashionlens.io.rise_release import read_items

    front = write_photo(tmp_path / "items" / "IT 1" / "front.png")
    line = item_line("IT 1", front, category=sure("sweaters", 0.93),
                     attributes={"pattern": unsure([("striped", 0.4), ("plain", 0.38)]),
                                 "colours": [{"id": "red", "share": 0.7, "score": 0.95}],
                                 "material": sure("wool", 0.91)},
                     grades={"condition": unsure([("3", 0.4), ("4", 0.35)]), "type": sure("Sweater", 0.9)})
    store = ReviewStore(tmp_path / "r.sqlite")
    build_queue(write_jsonl(tmp_path / "items.jsonl", [line]), store)
    tid = store.next_task().id  # type: ignore[union-attr]
    store.answer(tid, "pattern", "plain")
    store.answer(tid, "grades.condition", "4")
    store.finish(tid, "accept")
    summary = export_reviewed(store, tmp_path / "out")
    assert summary.items == 1 and summary.coco is None
    rows = [json.loads(x) for x in (tmp_path / "out" / "rise" / "garments.jsonl").read_text().splitlines()]
    assert rows == [{"id": "IT_1", "type": "Sweater", "pattern": "plain", "cut": "[]", "material": "wool",
                     "colors": "['red']", "season": "", "gender": "", "condition": "4"}]
    items, _ = read_items(tmp_path / "out" / "rise")
    assert [i.item_id for i in items] == ["IT_1"] and items[0].views["front"].is_file()
    assert items[0].labels["condition"] == 4 and items[0].labels["material"] == "wool"
