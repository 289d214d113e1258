"""Trend inputs from hostile or broken files (issue 23): every rejected row is reported with its file,
line and reason; bytes that are not UTF-8, unclosed quotes, huge headers and huge values cost one
row, not the file, and never a huge message."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fashionlens.trends import inputs
from fashionlens.trends.inputs import (
    MAX_CSV_ROW_LINES,
    TrendInputError,
    ValidationReport,
    read_post_metadata,
    read_streetstyle,
    read_tag_results,
    sniff_format,
)

HEADER = b"image,timestamp,city,caption\n"


def _rows(n: int) -> list[bytes]:
    return [b"img%03d.jpg,2024-01-%02d,paris,nice\n" % (i, i % 28 + 1) for i in range(n)]


def _read(path: Path) -> tuple[pd.DataFrame, ValidationReport]:
    report = ValidationReport()
    return read_post_metadata(path, report), report


def _result(image: str, **garment: object) -> str:
    g = {"object_type": "lower-body", "score": 0.9, "category": {"id": "jeans", "score": 0.8}, **garment}
    return json.dumps({"schema": "fashionlens/result/v1", "image": {"path": image}, "garments": [g], "error": None})


def test_a_non_utf8_byte_rejects_only_its_row_naming_file_and_line(tmp_path: Path) -> None:
    rows = _rows(20)
    rows[9] = b"img009.jpg,2024-01-10,par\xffis,nice\n"
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"".join(rows))
    df, report = _read(path)
    assert len(df) == 19 and "img009.jpg" not in set(df["image"])
    assert report.rows_read == 20 and report.rows_rejected == 1
    assert report.examples["not UTF-8 text"] == ["posts.csv:11: byte b'\\xff' at column 26"]
    assert "posts.csv:11" in report.summary()


def test_an_unclosed_quote_is_reported_at_its_line_and_the_rows_after_it_are_kept(tmp_path: Path) -> None:
    rows = _rows(600)
    rows[49] = b'img049.jpg,2024-01-22,"paris,nice\n'
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"".join(rows))
    df, report = _read(path)
    assert len(df) == 599  # not 80 rows: the 520 after the quote are read again
    reason = f"unclosed quote (a quoted field runs on for over {MAX_CSV_ROW_LINES} lines)"
    assert report.rejected == {reason: 1}
    assert report.examples[reason][0].startswith("posts.csv:51: the quote opens in b'img049.jpg")
    assert "reading resumed on line 52" in report.examples[reason][0]


def test_an_unclosed_quote_at_the_end_of_the_file_is_reported_at_its_line(tmp_path: Path) -> None:
    rows = _rows(10)
    rows[7] = b'img007.jpg,2024-01-08,"paris,nice\n'
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"".join(rows))
    df, report = _read(path)
    assert len(df) == 9
    assert report.examples["unclosed quote at end of file"][0].startswith("posts.csv:9: the quote opens in")


def test_quoted_line_breaks_are_kept_and_noted(tmp_path: Path) -> None:
    rows = _rows(5)
    rows[2] = b'img002.jpg,2024-01-03,paris,"two\nlines"\n'
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"".join(rows) + b"img009.jpg,not-a-date,paris,x\n")
    df, report = _read(path)
    assert len(df) == 5 and df.loc[df["image"] == "img002.jpg", "caption"].item() == "two\nlines"
    assert any("1 row(s) have a quoted field with line breaks (the first on line 4)" in n for n in report.notes)
    assert report.examples["unparseable timestamp"] == ["posts.csv:8: timestamp='not-a-date'"]  # physical line


def test_bad_quoting_and_too_many_fields_name_their_lines(tmp_path: Path) -> None:
    rows = _rows(6)
    rows[1] = b'img001.jpg,2024-01-02,"par"is,nice\n'
    rows[3] = b"img003.jpg,2024-01-04,paris,nice,extra\n"
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"".join(rows))
    df, report = _read(path)
    assert len(df) == 4
    assert report.examples["malformed CSV quoting"][0].startswith("posts.csv:3: ")
    assert report.examples["wrong number of fields (expected 4)"] == [
        "posts.csv:5: 5 fields: 'img003.jpg,2024-01-04,paris,nice,extra'"]


def test_a_huge_header_gives_a_bounded_message(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_bytes(b"image,timestamp," + b"x" * 10_000_000 + b"\n" + b"".join(_rows(3)))
    with pytest.raises(TrendInputError, match=r"posts\.csv:1: header line is 10,000,016 bytes; expected at most "
                                              r"65,536") as info:
        read_post_metadata(path)
    assert len(str(info.value)) < 400
    assert sniff_format(path) == "metadata"


@pytest.mark.parametrize("header, message", [
    (b"image,timestamp," + b",".join(b"c%d" % i for i in range(5000)), "header has 5,002 columns (expected at most"),
    (b"image,timestamp,city,city", "header has duplicate column(s) ['city']"),
    (b"image,timestamp,,city", "header has an empty column name"),
    (b"image,timestamp,ci\xffty", "header is not UTF-8 text (byte b'\\xff' at column 19)"),
    (b'image,timestamp,"city', "header is not a CSV line"),
    (b"\n\n", "no header line"),
])
def test_bad_headers_are_errors_with_bounded_messages(tmp_path: Path, header: bytes, message: str) -> None:
    path = tmp_path / "posts.csv"
    path.write_bytes(header + b"\n" + (b"".join(_rows(2)) if header.strip() else b""))
    with pytest.raises(TrendInputError) as info:
        read_post_metadata(path)
    assert message in str(info.value)
    assert len(str(info.value)) < 700


def test_many_unknown_columns_give_a_bounded_message(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_bytes(b"image,timestamp," + b",".join(b"column_%d" % i for i in range(900)) + b"\n")
    with pytest.raises(TrendInputError, match="unknown column") as info:
        read_post_metadata(path)
    assert len(str(info.value)) < 1200


def test_long_values_are_cut_in_examples(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"a.jpg," + b"9" * 100_000 + b",paris,x\n" + b"b.jpg,2024-01-01,paris,x\n")
    df, report = _read(path)
    assert len(df) == 1
    (example,) = report.examples["unparseable timestamp"]
    assert example.startswith("posts.csv:2: timestamp='999") and len(example) < 120


def test_over_long_lines_reject_their_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_CSV_LINE_BYTES", 200)
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"a.jpg,2024-01-01,paris," + b"x" * 500 + b"\n" + b"".join(_rows(3)))
    df, report = _read(path)
    assert len(df) == 3
    assert report.examples["line too long (over 200 bytes)"] == ["posts.csv:2: 524 bytes"]


def test_the_careful_reader_agrees_with_pandas_on_a_clean_file(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER + b"".join(_rows(30)) + b'x.jpg,,"a, b",""\r\n\r\ny.jpg,2024-02-01\n')
    data = path.read_bytes()
    columns, index = inputs._csv_header(path, data)
    fast = inputs._csv_fast(data, columns, index)
    assert fast is not None
    careful = inputs._csv_careful(path, data, columns, index, ValidationReport())
    pd.testing.assert_frame_equal(fast, careful)
    assert list(careful["_line"][-2:]) == [32, 34]


def test_streetstyle_rows_with_bad_bytes_are_rejected_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "ss.csv"
    path.write_bytes(b"id,created_time,city_id,major_color\n1,2013-07-20,1,Black\n2,2013-07-21,1,Wh\xe9te\n"
                     b"3,2013-07-22,2,Red\n")
    data = read_streetstyle(path)
    assert len(data.posts) == 2
    assert data.report.examples["not UTF-8 text"] == ["ss.csv:3: byte b'\\xe9' at column 18"]


# --- tag results (JSON lines) ---------------------------------------------------------------------
@pytest.fixture
def meta(tmp_path: Path) -> Path:
    path = tmp_path / "posts.csv"
    path.write_bytes(HEADER + b"".join(_rows(10)))
    return path


def test_tag_result_lines_report_file_line_and_reason(tmp_path: Path, meta: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_JSONL_LINE_BYTES", 1000)
    res = tmp_path / "r.jsonl"
    lines = [
        _result("img000.jpg").encode(),
        _result("img001.jpg").encode().replace(b"jeans", b"je\xffans"),
        b"[" * 100_000,
        _result("img002.jpg", category={"id": ["jeans"]}).encode(),
        _result("img003.jpg", attributes="plain").encode(),
        _result("img004.jpg", score="high").encode(),
        json.dumps({"schema": "fashionlens/result/v1", "image": {"path": 5}}).encode(),
        json.dumps({"schema": "x" * 10_000}).encode()[:990],
        _result("img005.jpg", category={"id": "c" * 2000}).encode(),
        json.dumps({"schema": "fashionlens/result/v1", "image": "a.jpg", "error": {"type": "t" * 100}}).encode(),
        _result("nowhere-" + "n" * 300 + ".jpg").encode(),
        _result("img000.jpg").encode(),
        _result("img006.jpg").encode(),
    ]
    res.write_bytes(b"\n".join(lines) + b"\n")
    data = read_tag_results(res, meta)
    ex = data.report.examples
    column = lines[1].index(b"\xff") + 1
    assert ex["not UTF-8 text"] == [f"r.jsonl:2: byte b'\\xff' at column {column}"]
    assert ex["line too long (over 1,000 bytes)"] == ["r.jsonl:3: 100,001 bytes",
                                                      f"r.jsonl:9: {len(lines[8]) + 1:,} bytes"]
    assert ex["malformed result record"] == [
        "r.jsonl:4: garments[0].category.id=['jeans'] (expected a text of at most 200 characters)",
        "r.jsonl:5: garments[0].attributes is str (expected an object)",
        "r.jsonl:6: garments[0].score='high' (expected a number)",
        "r.jsonl:7: image.path=5 (expected a text of at most 4096 characters)"]
    assert ex["invalid JSON line"][0].startswith("r.jsonl:8: ")
    assert data.report.rejected["tag error record (other)"] == 1
    (missing,) = ex["no metadata row for image"]
    assert missing.startswith("r.jsonl:11: image='nowhere-nnn") and len(missing) < 120
    assert ex["duplicate result for image (first kept)"] == ["r.jsonl:12: image='img000.jpg'"]
    assert data.report.rows_used == 10 + 2  # the metadata rows and the two good results
    assert set(data.labels["value"].astype(str)) == {"lower-body", "jeans"}


def test_distinct_error_types_are_capped(tmp_path: Path, meta: Path) -> None:
    res = tmp_path / "r.jsonl"
    res.write_text("\n".join(json.dumps({"schema": "fashionlens/result/v1", "error": {"type": f"kind{i}"}})
                             for i in range(100)) + "\n")
    data = read_tag_results(res, meta)
    assert len(data.report.rejected) == 21 and data.report.rejected["tag error record (other)"] == 80


# --- random input -----------------------------------------------------------------------------------
_CELL = st.one_of(st.text(max_size=12), st.sampled_from(["2024-01-05", "paris", '"', '""', "\n", "\r", ",", "9" * 30,
                                                        "1e999", "-5", "nan", "\x00", "2024-13-45T99:99"]))
_ROW = st.lists(_CELL, min_size=0, max_size=6).map(lambda cells: ",".join(cells).encode("utf-8", "surrogatepass"))
_RAW = st.binary(max_size=40)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(_ROW, _RAW), max_size=12))
def test_random_csv_rows_give_a_table_or_a_trend_input_error(tmp_path: Path, rows: list[bytes]) -> None:
    path = tmp_path / "posts.csv"
    path.write_bytes(b"image,timestamp,city,lat,lon,likes,caption\n" + b"\n".join(rows) + b"\n")
    try:
        df, report = _read(path)
    except TrendInputError:
        return
    assert report.rows_used == len(df)
    assert report.rows_read == report.rows_used + report.rows_rejected
    assert all(len(e) < 300 for exs in report.examples.values() for e in exs)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_as_csv_give_a_table_or_a_trend_input_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "posts.csv"
    path.write_bytes(data)
    try:
        read_post_metadata(path)
    except TrendInputError:
        pass


_JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.sampled_from(["schema", "image", "path", "garments", "category", "id", "score",
                                                "attributes", "colours", "pattern", "object_type", "error", "type"]),
                               inner, max_size=4), max_leaves=15)
_RECORD = _JSON_VALUE.map(lambda v: {"schema": "fashionlens/result/v1", "image": {"path": "img000.jpg"},
                                     "garments": v} if not isinstance(v, dict) else
                          {"schema": "fashionlens/result/v1", **v})


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(_RECORD.map(lambda r: json.dumps(r).encode()), st.binary(max_size=30)), max_size=6))
def test_random_result_lines_give_data_not_exceptions(tmp_path: Path, meta: Path, lines: list[bytes]) -> None:
    res = tmp_path / "r.jsonl"
    res.write_bytes(b"\n".join(lines) + b"\n")
    data = read_tag_results(res, meta)
    assert data.report.rows_read >= len([ln for ln in lines if ln.strip()])
