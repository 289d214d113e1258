import json
from pathlib import Path

import pytest

from fashionlens.trends.inputs import (
    TrendInputError,
    load_inputs,
    read_post_metadata,
    read_streetstyle,
    read_tag_results,
    sniff_format,
)


def _result(path: str, category: str = "jeans", colours=("blue",), error=None) -> str:
    rec = {"schema": "fashionlens/result/v1", "image": {"path": path, "width": 10, "height": 10},
           "garments": [] if error else [{"object_type": "lower-body", "score": 0.9,
                                          "category": {"id": category, "score": 0.8},
                                          "attributes": {"pattern": {"id": "plain", "score": 0.5},
                                                         "colours": [{"id": c, "score": 0.5} for c in colours]}}],
           "error": error}
    return json.dumps(rec)


@pytest.fixture
def meta_csv(tmp_path: Path) -> Path:
    p = tmp_path / "posts.csv"
    p.write_text("image,timestamp,city,lat,lon,author,likes,comments,hashtags,caption\n"
                 "a.jpg,2024-01-05T10:00:00Z,paris,48.8,2.3,ann,10,1,#ootd #denim,love it\n"
                 "photos/b.jpg,2024-01-06 11:00,paris,,,bob,3,0,#ootd,meh\n"
                 "c.jpg,not-a-date,paris,,,bob,3,0,,\n"
                 "d.jpg,2024-02-01,,,,,many,0,,\n"
                 "e.jpg,2024-02-02,,95.0,,,1,0,,\n"
                 ",2024-02-03,,,,,1,0,,\n"
                 "a.jpg,2024-02-04,,,,,1,0,,\n"
                 "f.jpg,,,,,,1,0,,\n"
                 "g.jpg,2024-02-05,london,,,cy,2,1,,hate it\n")
    return p


def test_empty_likes_and_comments_are_missing_not_bad(tmp_path: Path):
    """An empty count is a missing value, not a malformed one: the post is kept."""
    from fashionlens.trends.inputs import ValidationReport

    p = tmp_path / "posts.csv"
    p.write_text("image,timestamp,likes,comments\n"
                 "a.jpg,2024-01-05,,\n"
                 "b.jpg,2024-01-06,3,\n"
                 "c.jpg,2024-01-07,2.5,1\n")
    rep = ValidationReport()
    df = read_post_metadata(p, rep)
    assert list(df["image"]) == ["a.jpg", "b.jpg"]
    assert rep.rejected == {"bad likes (expected a non-negative integer)": 1}


def test_metadata_bad_rows_are_counted_with_reasons(meta_csv: Path):
    from fashionlens.trends.inputs import ValidationReport

    rep = ValidationReport()
    df = read_post_metadata(meta_csv, rep)
    assert rep.rows_read == 9
    assert list(df["image"]) == ["a.jpg", "photos/b.jpg", "g.jpg"]
    assert rep.rejected["unparseable timestamp"] == 1
    assert rep.rejected["missing timestamp"] == 1
    assert rep.rejected["bad likes (expected a non-negative integer)"] == 1
    assert rep.rejected["bad lat (expected a number in [-90, 90])"] == 1
    assert rep.rejected["missing image"] == 1
    assert rep.rejected["duplicate image in metadata (first row kept)"] == 1
    assert rep.rows_rejected == 6
    assert "posts.csv:4: timestamp='not-a-date'" in rep.examples["unparseable timestamp"][0]
    assert "unparseable timestamp" in rep.summary()
    assert len(rep.to_frame()) == 6


@pytest.mark.parametrize("header, message", [
    ("image,timestamp,colour", "unknown column(s) ['colour']"),
    ("image,city", "missing column(s) ['timestamp']"),
])
def test_metadata_bad_columns_raise_naming_expected(tmp_path: Path, header: str, message: str):
    p = tmp_path / "m.csv"
    p.write_text(header + "\n")
    with pytest.raises(TrendInputError) as exc:
        read_post_metadata(p)
    assert message in str(exc.value)
    assert "'image', 'timestamp'" in str(exc.value)


def test_tag_results_join_and_rejections(tmp_path: Path, meta_csv: Path):
    res = tmp_path / "r.jsonl"
    res.write_text("\n".join([
        _result("/data/a.jpg", colours=("blue", "white")),  # matched by file name
        _result("photos/b.jpg", category="skirts"),          # matched by path
        "{not json",
        json.dumps({"schema": "other/v9"}),
        _result("g.jpg", error={"type": "truncated", "message": "x"}),
        _result("zzz.jpg"),
        _result("a.jpg"),
    ]) + "\n")
    data = read_tag_results(res, meta_csv)
    r = data.report
    assert r.rejected["invalid JSON line"] == 1
    assert r.rejected["not a fashionlens/result/v1 or fashionlens/result/v2 record"] == 1
    assert r.rejected["tag error record (truncated)"] == 1
    assert r.rejected["no metadata row for image"] == 1
    assert r.rejected["duplicate result for image (first kept)"] == 1
    assert len(data.posts) == 3  # g.jpg stays as a post without labels
    assert any("no tag result" in n for n in r.notes)
    lab = data.labels
    a = lab[lab["post"] == 0]
    assert set(zip(a["attribute"], a["value"])) == {("object_type", "lower-body"), ("category", "jeans"),
                                                     ("pattern", "plain"), ("colours", "blue"), ("colours", "white")}
    assert set(lab[lab["post"] == 1]["value"]) >= {"skirts"}
    assert str(data.posts["place"].iloc[0]) == "paris"


def test_min_score_filters_labels(tmp_path: Path, meta_csv: Path):
    res = tmp_path / "r.jsonl"
    res.write_text(_result("a.jpg") + "\n")
    data = read_tag_results(res, meta_csv, min_score=0.6)
    assert set(data.labels["attribute"]) == {"object_type", "category"}


def test_streetstyle_rows_and_validation(tmp_path: Path):
    p = tmp_path / "ss.csv"
    p.write_text("id,url,created_time,city_id,month_id,lat,long,clothing_pattern,major_color\n"
                 "1,u,2013-07-20 10:41:18+00,15,2013_7,34.1,-118.3,Solid,Black\n"
                 "2,u,2013-07-21 10:41:18+00,3,2013_7,4.6,-74.1,,White\n"
                 "3,u,yesterday,3,2013_7,4.6,-74.1,Solid,\n"
                 "4,u,2013-07-22 10:00:00+00,x,2013_7,4.6,-74.1,Solid,\n")
    data = read_streetstyle(p)
    assert len(data.posts) == 2
    assert data.report.rejected == {"unparseable created_time": 1, "bad city_id (expected an integer)": 1}
    assert list(data.posts["place"].astype(str)) == ["city_15", "city_3"]
    assert len(data.labels) == 3  # empty cells are "not labelled", not a value
    assert sniff_format(p) == "streetstyle"


def test_streetstyle_unknown_column(tmp_path: Path):
    p = tmp_path / "ss.csv"
    p.write_text("id,created_time,city_id,shoe_size\n1,2013-07-20,1,42\n")
    with pytest.raises(TrendInputError, match="unknown column"):
        read_streetstyle(p)


def test_load_inputs_needs_metadata_for_jsonl(tmp_path: Path):
    res = tmp_path / "r.jsonl"
    res.write_text(_result("a.jpg") + "\n")
    with pytest.raises(TrendInputError, match="--meta"):
        load_inputs([res])
    with pytest.raises(FileNotFoundError):
        load_inputs([tmp_path / "missing.csv"])
