"""Read posts and their garment labels for trend analysis, validating every row.

Two sources feed one :class:`TrendData`:

* ``fashionlens tag`` results (``fashionlens/result/v1`` or ``v2`` JSON lines) joined on ``image`` with a
  post-metadata table (CSV or Parquet: ``image``, ``timestamp`` and optionally ``city``, ``lat``,
  ``lon``, ``author``, ``likes``, ``comments``, ``hashtags``, ``caption``);
* StreetStyle-27k label CSVs (GeoStyle, ICCV 2019), read directly.

Rows that cannot be used are never dropped silently: each is counted under a reason in the
:class:`ValidationReport` (with the first few examples as ``file:line: detail``). A table whose
*columns* are wrong is an error (:class:`TrendInputError`) naming the expected columns.

Hostile or broken files cost bounded effort and never take good rows down with them: CSV and JSON
lines are decoded line by line (a row with bytes that are not UTF-8 is rejected, the rest kept); a
quoted CSV field may run over at most :data:`MAX_CSV_ROW_LINES` lines (an unclosed quote is reported
at the line where it opened and reading resumes on the next line); header, CSV lines and JSON lines
have size limits; values quoted in messages are cut to a few dozen characters.

``TrendData.posts`` has one row per post (``timestamp`` is tz-naive UTC); ``TrendData.labels`` is
long: one row per (post, attribute, value), ``post`` being the row position in ``posts``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fashionlens.io.safe_yaml import short_repr

log = logging.getLogger(__name__)

META_REQUIRED: tuple[str, ...] = ("image", "timestamp")
META_OPTIONAL: tuple[str, ...] = ("city", "lat", "lon", "author", "likes", "comments", "hashtags", "caption")

STREETSTYLE_BASE: tuple[str, ...] = ("id", "url", "created_time", "city_id", "month_id", "lat", "long",
                                     "x1", "y1", "x2", "y2", "width", "height")
STREETSTYLE_ATTRIBUTES: tuple[str, ...] = (
    "clothing_pattern", "major_color", "wearing_necktie", "collar_presence", "wearing_scarf", "sleeve_length",
    "neckline_shape", "clothing_category", "wearing_jacket", "wearing_hat", "wearing_glasses", "multiple_layers")
STREETSTYLE_REQUIRED: tuple[str, ...] = ("id", "created_time", "city_id")

# single-label attributes read from a tag result's garment ``attributes``; ``colours`` is multi-label
TAG_SINGLE_ATTRIBUTES: tuple[str, ...] = ("pattern", "material", "sleeve", "neckline", "fit")
#: the tag-result schemas read (v2 unsure fields have ``id: null`` and are skipped like low scores)
RESULT_SCHEMAS = ("fashionlens/result/v1", "fashionlens/result/v2")
RESULT_SCHEMA = " or ".join(RESULT_SCHEMAS)
POST_COLUMNS: tuple[str, ...] = ("post_id", "timestamp", "place", "lat", "lon", "author", "likes", "comments",
                                 "hashtags", "caption")
_MAX_EXAMPLES = 5

#: Longest CSV header line, in bytes (a longer one is a :class:`TrendInputError`).
MAX_CSV_HEADER_BYTES = 64 * 1024
#: Longest CSV line, in bytes (the row holding a longer one is rejected).
MAX_CSV_LINE_BYTES = 128 * 1024
#: Most lines one CSV row may span (a quoted field with line breaks); more means an unclosed quote.
MAX_CSV_ROW_LINES = 100
#: Longest JSON line of tag results, in bytes (a longer one is rejected, read in pieces).
MAX_JSONL_LINE_BYTES = 4 * 2 ** 20
#: Most distinct ``tag error record (TYPE)`` reasons per file part; further types count as ``other``.
_MAX_ERROR_TYPES = 20
_QUOTE_CHARS = 80  # longest value quoted in an example
_ERROR_TYPE_RE = re.compile(r"^[\w.:-]{1,40}$")


def _quote(value: object) -> str:
    """A value from the input, quoted for an example or message: ``repr``, at most 80 characters."""
    return short_repr(value, _QUOTE_CHARS)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TrendInputError(ValueError):
    """An input table or file cannot be read at all (wrong columns, unknown format, missing file)."""


@dataclass
class ValidationReport:
    """Counts of rows read, used and rejected (by reason), with a few examples per reason."""

    rows_read: int = 0
    rows_used: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return int(sum(self.rejected.values()))

    def reject(self, reason: str, count: int = 1, examples: Iterable[str] = ()) -> None:
        if count <= 0:
            return
        self.rejected[reason] += int(count)
        kept = self.examples.setdefault(reason, [])
        for ex in examples:
            if len(kept) >= _MAX_EXAMPLES:
                break
            kept.append(ex)

    def merge(self, other: ValidationReport) -> ValidationReport:
        out = ValidationReport(self.rows_read + other.rows_read, self.rows_used + other.rows_used,
                               self.rejected + other.rejected, {}, self.notes + other.notes)
        for rep in (self, other):
            for reason, exs in rep.examples.items():
                out.reject(reason, 0)
                out.examples.setdefault(reason, [])
                out.examples[reason].extend(exs[: _MAX_EXAMPLES - len(out.examples[reason])])
        return out

    def to_frame(self) -> pd.DataFrame:
        rows = [{"reason": r, "rows": n, "examples": " | ".join(self.examples.get(r, []))}
                for r, n in self.rejected.most_common()]
        return pd.DataFrame(rows, columns=["reason", "rows", "examples"])

    def to_dict(self) -> dict:
        return {"rows_read": self.rows_read, "rows_used": self.rows_used, "rows_rejected": self.rows_rejected,
                "rejected": dict(self.rejected), "examples": self.examples, "notes": list(self.notes)}

    def summary(self) -> str:
        lines = [f"{self.rows_read} rows read, {self.rows_used} used, {self.rows_rejected} rejected"]
        for reason, n in self.rejected.most_common():
            ex = self.examples.get(reason, [])
            lines.append(f"  {n:>8}  {reason}" + (f"  (e.g. {ex[0]})" if ex else ""))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class TrendData:
    """Posts (one row each) and their labels (long: post, attribute, value)."""

    posts: pd.DataFrame
    labels: pd.DataFrame
    report: ValidationReport
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [c for c in POST_COLUMNS if c not in self.posts.columns]
        if missing:
            raise TrendInputError(f"posts table lacks columns {missing}; expected {list(POST_COLUMNS)}")
        if list(self.labels.columns) != ["post", "attribute", "value"]:
            raise TrendInputError(
                f"labels table has columns {list(self.labels.columns)}; expected ['post', 'attribute', 'value']")

    @property
    def attributes(self) -> list[str]:
        return sorted(self.labels["attribute"].astype(str).unique())

    def __len__(self) -> int:
        return len(self.posts)


class _RunawayRow(Exception):
    """A CSV row spans more than :data:`MAX_CSV_ROW_LINES` lines (an unclosed quote)."""


_LINE_RE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n|$)")


def _csv_header(path: Path, data: bytes) -> tuple[list[str], int]:
    """The column names and 0-based line index of the header (the first non-blank line).

    Raises:
        TrendInputError: no header, a header over :data:`MAX_CSV_HEADER_BYTES`, not UTF-8, badly
            quoted, or with empty or duplicate column names.
    """
    pos, index = 0, 0
    while pos < len(data):
        match = _LINE_RE.match(data, pos)
        assert match is not None  # the pattern matches the empty string
        raw = match.group(1)
        if raw.strip():
            break
        pos, index = match.end(), index + 1
    else:
        raise TrendInputError(f"{path}: no header line; expected a CSV file whose first line names its columns")
    where = f"{path}:{index + 1}"
    if len(raw) > MAX_CSV_HEADER_BYTES:
        raise TrendInputError(f"{where}: header line is {len(raw):,} bytes; expected at most "
                              f"{MAX_CSV_HEADER_BYTES:,} (column names separated by commas); it starts "
                              f"{_quote(raw[:_QUOTE_CHARS])}")
    try:
        text = raw.decode("utf-8-sig" if index == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        raise TrendInputError(f"{where}: header is not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} at column "
                              f"{exc.start + 1}); expected column names in UTF-8") from None
    try:
        names = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise TrendInputError(f"{where}: header is not a CSV line ({exc}); got {_quote(text)}") from None
    dupes = sorted({n for n in names if names.count(n) > 1}) if len(names) <= 1000 else []
    if len(names) > 1000 or dupes or not all(n.strip() for n in names):
        problem = (f"{len(names):,} columns (expected at most 1,000)" if len(names) > 1000
                   else f"duplicate column(s) {_quote(dupes)}" if dupes else "an empty column name")
        raise TrendInputError(f"{where}: header has {problem}; got {_quote(names)}")
    return names, index


def _csv_fast(data: bytes, columns: list[str], header_index: int) -> pd.DataFrame | None:
    """Read a well-formed CSV with pandas' C parser, or ``None`` when the file needs the careful reader.

    Taken only when pandas gives the same columns, every line is at most :data:`MAX_CSV_LINE_BYTES`,
    there is no bare carriage return and every non-empty line after the header is exactly one row
    (so no quoted field spans lines: no unclosed quote swallowed the lines after it). ``_line``
    holds each row's 1-based line number.
    """
    a = np.frombuffer(data, dtype=np.uint8)
    after_cr = np.flatnonzero(a == 13) + 1
    if len(after_cr) and (after_cr[-1] >= len(a) or (a[after_cr] != 10).any()):
        return None  # a bare \r ends lines differently for pandas and for our line count
    ends = np.flatnonzero(a == 10)
    if len(a) and a[-1] != 10:
        ends = np.r_[ends, len(a)]
    starts = np.r_[0, ends[:-1] + 1] if len(ends) else np.empty(0, dtype=np.int64)
    sizes = ends - starts
    if len(sizes) and sizes.max() > MAX_CSV_LINE_BYTES:
        return None
    has_cr = np.zeros(len(ends), dtype=bool)
    nz = sizes > 0
    has_cr[nz] = a[ends[nz] - 1] == 13
    data_lines = np.flatnonzero((sizes - has_cr) > 0)
    data_lines = data_lines[data_lines > header_index] + 1
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OverflowError):
        return None
    if [str(c) for c in df.columns] != columns or len(df) != len(data_lines):
        return None
    df["_line"] = data_lines
    return df


def _csv_careful(path: Path, data: bytes, columns: list[str], header_index: int,
                 report: ValidationReport) -> pd.DataFrame:
    """Read a CSV row by row with :mod:`csv` (strict quoting), rejecting bad rows into ``report``.

    A row is rejected, as ``file:line: detail``, for bytes that are not UTF-8, a line over
    :data:`MAX_CSV_LINE_BYTES`, bad quoting (a quote not closed by the end of the file or within
    :data:`MAX_CSV_ROW_LINES` lines) or too many fields; after bad quoting, reading resumes on the
    line after the one where the row began. Short rows are padded, as pandas does.
    """
    lines = data.splitlines(keepends=True)
    name = path.name
    n_fields = len(columns)
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    bad: dict[int, tuple[str, str]] = {}  # line index → (reason, detail)
    multiline: list[int] = []  # first lines of rows that span several lines

    def reject(reason: str, index: int, detail: str) -> None:
        report.rows_read += 1
        report.reject(reason, 1, [f"{name}:{index + 1}: {detail}"])

    def feed(start: int, row_start: list[int]) -> Iterator[str]:
        for j in range(start, len(lines)):
            if j - row_start[0] >= MAX_CSV_ROW_LINES:
                raise _RunawayRow
            raw = lines[j]
            if len(raw) > MAX_CSV_LINE_BYTES:
                bad[j] = (f"line too long (over {MAX_CSV_LINE_BYTES:,} bytes)", f"{len(raw):,} bytes")
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad[j] = ("not UTF-8 text", f"byte {raw[exc.start:exc.start + 1]!r} at column {exc.start + 1}")
                yield raw.decode("utf-8", "replace")

    pos = header_index + 1  # the header was read by _csv_header
    while pos < len(lines):
        start, row_start = pos, [pos]
        reader = csv.reader(feed(start, row_start), strict=True)
        try:
            for row in reader:
                first, last = row_start[0], start + reader.line_num - 1
                row_start[0] = last + 1
                problem = next((j for j in range(first, last + 1) if j in bad), None)
                if problem is not None:
                    reject(bad[problem][0], problem, bad[problem][1])
                elif not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                elif len(row) > n_fields:
                    reject(f"wrong number of fields (expected {n_fields})", first,
                           f"{len(row)} fields: {_quote(','.join(row))}")
                else:
                    rows.append(row + [""] * (n_fields - len(row)))
                    line_numbers.append(first + 1)
                    if last > first:
                        multiline.append(first + 1)
            pos = len(lines)
        except _RunawayRow:
            reject(f"unclosed quote (a quoted field runs on for over {MAX_CSV_ROW_LINES} lines)", row_start[0],
                   f"the quote opens in {_quote(lines[row_start[0]][:_QUOTE_CHARS])}; "
                   f"reading resumed on line {row_start[0] + 2}")
            pos = row_start[0] + 1
        except csv.Error as exc:
            opening = _quote(lines[row_start[0]][:_QUOTE_CHARS])
            if "unexpected end of data" in str(exc):
                reason = "unclosed quote at end of file"
                detail = f"the quote opens in {opening}; reading resumed on the next line"
            else:
                reason, detail = "malformed CSV quoting", f"{exc} in {opening}"
            reject(reason, row_start[0], detail)
            pos = row_start[0] + 1
    if multiline:
        report.notes.append(f"{name}: {len(multiline)} row(s) have a quoted field with line breaks (the first on "
                            f"line {multiline[0]}); if that is unexpected, look for a quote that is not closed")
    df = pd.DataFrame(rows, columns=columns, dtype=str) if rows else pd.DataFrame(
        {c: pd.Series([], dtype=str) for c in columns})
    df = df.replace("", np.nan)
    df["_line"] = np.asarray(line_numbers, dtype=np.int64)
    return df


def _read_csv_counting_bad_lines(path: Path, report: ValidationReport) -> pd.DataFrame:
    """Read a CSV as strings; rows that cannot be read are counted in ``report`` (with ``file:line``), not fatal.

    A well-formed file is read by pandas' C parser; any other (bytes that are not UTF-8, unclosed or
    bad quotes, too many fields, over-long lines) by :func:`_csv_careful`, row by row. ``_line`` holds
    each row's 1-based line number, for the examples of the data checks that follow.

    Raises:
        TrendInputError: the header is missing, too long, not UTF-8 or has empty or duplicate names.
    """
    data = path.read_bytes()
    columns, header_index = _csv_header(path, data)
    df = _csv_fast(data, columns, header_index)
    if df is None:
        log.info("%s: not a plain CSV file; reading it row by row", path)
        df = _csv_careful(path, data, columns, header_index, report)
    return df


def _parse_timestamps(raw: pd.Series) -> pd.Series:
    """Parse to tz-naive UTC; unparseable → NaT (the caller counts them)."""
    try:
        ts = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # pragma: no cover - pandas versions differ
        ts = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    again = ts.isna() & raw.notna()
    if again.any():  # a few non-ISO forms (e.g. '07/20/2013 10:41') still parse
        ts[again] = pd.to_datetime(raw[again], utc=True, errors="coerce", format="mixed")
    return ts.dt.tz_convert(None)


def _line_numbers(df: pd.DataFrame) -> np.ndarray:
    """Each row's 1-based line in its file (``_line`` from the CSV reader; else row position + 2, after a header)."""
    if "_line" in df.columns:
        return df["_line"].to_numpy()
    return np.arange(len(df)) + 2


def _examples(where: str, mask: np.ndarray, raw: pd.Series | None, col: str, lines: np.ndarray) -> list[str]:
    idx = np.flatnonzero(mask)[:_MAX_EXAMPLES]
    if raw is None:
        return [f"{where}:{lines[i]}: {col} missing" for i in idx]
    return [f"{where}:{lines[i]}: {col}={_quote(raw.iloc[i])}" for i in idx]


def _check_columns(columns: Sequence[str], required: Sequence[str], optional: Sequence[str], what: str,
                   where: str) -> None:
    cols = [str(c) for c in columns if c != "_line"]
    missing = [c for c in required if c not in cols]
    unknown = [c for c in cols if c not in required and c not in optional]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if unknown:
            parts.append(f"unknown column(s) {short_repr(unknown, 300)}")
        raise TrendInputError(f"{where}: {' and '.join(parts)}; a {what} has columns {list(required)}"
                              f" and optionally {list(optional)}; got {short_repr(cols, 300)}")


def _validate_common(df: pd.DataFrame, where: str, report: ValidationReport, ts_col: str,
                     lat_col: str | None, lon_col: str | None, count_cols: Sequence[str] = ()) -> pd.Series:
    """Row-wise checks shared by both formats; returns the boolean mask of good rows, fills parsed columns."""
    good = np.ones(len(df), dtype=bool)
    lines = _line_numbers(df)
    raw_ts = df[ts_col]
    ts = _parse_timestamps(raw_ts)
    missing = raw_ts.isna().to_numpy()
    bad = ts.isna().to_numpy() & ~missing
    report.reject(f"missing {ts_col}", int(missing.sum()), _examples(where, missing, None, ts_col, lines))
    report.reject(f"unparseable {ts_col}", int(bad.sum()), _examples(where, bad, raw_ts, ts_col, lines))
    good &= ~(missing | bad)
    df["_ts"] = ts
    for col, lo, hi in ((lat_col, -90, 90), (lon_col, -180, 180)):
        if col is None or col not in df.columns:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        badn = (num.isna() & raw.notna()).to_numpy() | ((num < lo) | (num > hi)).to_numpy()
        report.reject(f"bad {col} (expected a number in [{lo}, {hi}])", int((badn & good).sum()),
                      _examples(where, badn & good, raw, col, lines))
        good &= ~badn
        df[col] = num
    for col in count_cols:
        if col not in df.columns:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        badn = (num.isna() & raw.notna()).to_numpy() | (num < 0).to_numpy() | ((num % 1).fillna(0) != 0).to_numpy()
        report.reject(f"bad {col} (expected a non-negative integer)", int((badn & good).sum()),
                      _examples(where, badn & good, raw, col, lines))
        good &= ~badn
        df[col] = num
    return pd.Series(good, index=df.index)


def _empty_posts(n: int) -> dict:
    return {c: pd.Series([pd.NA] * n, dtype="object") for c in POST_COLUMNS}


def _finish_posts(cols: dict) -> pd.DataFrame:
    posts = pd.DataFrame(cols)
    posts["timestamp"] = pd.to_datetime(posts["timestamp"])
    for c in ("lat", "lon", "likes", "comments"):
        posts[c] = pd.to_numeric(posts[c], errors="coerce").astype("float64")
    posts["place"] = posts["place"].astype("category")
    posts["author"] = posts["author"].astype("category")
    posts["post_id"] = posts["post_id"].astype(str)
    return posts.reset_index(drop=True)


def read_streetstyle(paths: str | Path | Sequence[str | Path]) -> TrendData:
    """Read StreetStyle-27k label CSVs (``id,url,created_time,city_id,month_id,lat,long,...``).

    Each row is one person in a photo (a "post"); its attribute columns (``clothing_pattern``,
    ``major_color``, ...) become labels; empty cells mean "not labelled". Places are ``city_<id>``.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    report = ValidationReport()
    posts_parts, label_parts, offset = [], [], 0
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"StreetStyle CSV not found: {path}")
        df = _read_csv_counting_bad_lines(path, report)
        _check_columns(df.columns, STREETSTYLE_REQUIRED,
                       [c for c in STREETSTYLE_BASE + STREETSTYLE_ATTRIBUTES if c not in STREETSTYLE_REQUIRED],
                       "StreetStyle CSV", str(path))
        report.rows_read += len(df)
        good = _validate_common(df, path.name, report, "created_time", "lat", "long")
        city = pd.to_numeric(df["city_id"], errors="coerce")
        badc = (city.isna() | (city % 1 != 0)).to_numpy() & good.to_numpy()
        report.reject("bad city_id (expected an integer)", int(badc.sum()),
                      _examples(path.name, badc, df["city_id"], "city_id", _line_numbers(df)))
        good &= ~badc
        attrs = [c for c in STREETSTYLE_ATTRIBUTES if c in df.columns]
        if not attrs:
            raise TrendInputError(f"{path}: no attribute columns; expected some of {list(STREETSTYLE_ATTRIBUTES)}")
        df = df[good.to_numpy()].reset_index(drop=True)
        n = len(df)
        posts_parts.append(pd.DataFrame({
            "post_id": df["id"].astype(str), "timestamp": df["_ts"],
            "place": "city_" + city[good.to_numpy()].astype(int).astype(str).to_numpy(),
            "lat": df.get("lat"), "lon": df.get("long"),
            "author": pd.Series([pd.NA] * n, dtype="object"), "likes": np.nan, "comments": np.nan,
            "hashtags": pd.Series([pd.NA] * n, dtype="object"), "caption": pd.Series([pd.NA] * n, dtype="object")}))
        for a in attrs:
            vals = df[a]
            m = vals.notna().to_numpy()
            label_parts.append(pd.DataFrame({"post": np.flatnonzero(m) + offset, "attribute": a,
                                             "value": vals[m].to_numpy()}))
        offset += n
        report.rows_used += n
        log.info("read %d StreetStyle rows from %s", n, path)
    posts = _finish_posts(pd.concat(posts_parts, ignore_index=True).to_dict("series"))
    labels = _labels_frame(label_parts)
    return TrendData(posts, labels, report, [str(p) for p in paths])


def _labels_frame(parts: list[pd.DataFrame], dedupe: bool = True) -> pd.DataFrame:
    if parts:
        labels = pd.concat(parts, ignore_index=True)
    else:
        labels = pd.DataFrame({"post": pd.Series([], dtype="int64"), "attribute": [], "value": []})
    labels["post"] = labels["post"].astype("int64")
    labels["attribute"] = labels["attribute"].astype("category")
    if not isinstance(labels["value"].dtype, pd.CategoricalDtype):
        labels["value"] = labels["value"].astype(str)
    labels["value"] = labels["value"].astype("category")
    return labels.drop_duplicates(ignore_index=True) if dedupe else labels


def _read_parquet(path: str) -> pd.DataFrame:
    """``pd.read_parquet`` (fastparquet in the core install, pyarrow where the ``ray`` extra brought it),
    with what fastparquet prints about undecodable footers kept off stdout. Runs in a child process."""
    with contextlib.redirect_stdout(io.StringIO()):
        return pd.read_parquet(path)


#: seconds a Parquet post-metadata file may take to read before it counts as unreadable (a decoder that loops)
PARQUET_READ_TIMEOUT_S = 600.0


def _read_parquet_isolated(path: Path, timeout: float | None = None) -> pd.DataFrame:
    """A Parquet table read in a child process: fastparquet's decoders can crash the process (SIGSEGV)
    on damaged or hostile bytes (dask/fastparquet#666), which must cost the file, not the run. The child is
    killed after ``timeout`` seconds (default :data:`PARQUET_READ_TIMEOUT_S`): a decoder that loops, or a forked
    child stuck on a lock another thread of this process held, costs the file too. (The default start method
    is kept: a fork server or spawn would re-run a caller's unguarded script in the child.)

    Raises:
        TrendInputError: no Parquet engine, or not a readable Parquet file (an error, a crash or a timeout).
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout
    from concurrent.futures.process import BrokenProcessPool

    limit = PARQUET_READ_TIMEOUT_S if timeout is None else timeout
    ex = ProcessPoolExecutor(max_workers=1)
    try:
        return ex.submit(_read_parquet, str(path)).result(timeout=limit)
    except FutureTimeout:
        # no public way to stop a running worker before Python 3.14's terminate_workers(): kill it by its process
        for proc in list(getattr(ex, "_processes", {}).values()):
            proc.kill()
        raise TrendInputError(f"{path}: not a readable Parquet file (reading it took over {limit:g} s); "
                              "expected a post-metadata table") from None
    except ImportError as exc:
        raise TrendInputError(f"{path}: reading Parquet needs fastparquet or pyarrow ({exc}); "
                              "install one, or pass the metadata as CSV") from exc
    except BrokenProcessPool:
        raise TrendInputError(f"{path}: not a readable Parquet file (the Parquet reader crashed on it); "
                              "expected a post-metadata table") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in either engine's decoder, any type
        raise TrendInputError(f"{path}: not a readable Parquet file ({type(exc).__name__}: "
                              f"{_clip(str(exc))}); expected a post-metadata table") from None
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def read_post_metadata(path: str | Path, report: ValidationReport | None = None) -> pd.DataFrame:
    """Read and validate a post-metadata table (CSV or Parquet); bad rows are rejected into ``report``."""
    path = Path(path)
    report = report if report is not None else ValidationReport()
    if not path.is_file():
        raise FileNotFoundError(f"post metadata not found: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        df = _read_parquet_isolated(path)
        df = df.astype("object").where(lambda d: d.notna(), None)
        df = df.astype({c: str for c in df.columns if c in ("image", "timestamp")})
    else:
        df = _read_csv_counting_bad_lines(path, report)
    _check_columns(df.columns, META_REQUIRED, META_OPTIONAL, "post-metadata table", str(path))
    report.rows_read += len(df)
    good = _validate_common(df, path.name, report, "timestamp", "lat", "lon", ("likes", "comments"))
    noimg = df["image"].isna().to_numpy() & good.to_numpy()
    report.reject("missing image", int(noimg.sum()), _examples(path.name, noimg, None, "image", _line_numbers(df)))
    good &= ~noimg
    dup = df["image"].duplicated(keep="first").to_numpy() & good.to_numpy()
    report.reject("duplicate image in metadata (first row kept)", int(dup.sum()),
                  _examples(path.name, dup, df["image"], "image", _line_numbers(df)))
    good &= ~dup
    report.rows_used += int(good.sum())
    return df[good.to_numpy()].reset_index(drop=True)


class _BadRecord(Exception):
    """A result record whose fields have the wrong types (the message says which and what was expected)."""


def _label_text(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise _BadRecord(f"{where}={_quote(value)} (expected a text of at most 200 characters)")
    return value


def _as_object(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise _BadRecord(f"{where} is {type(value).__name__} (expected an object)")
    return value


def _score_ok(obj: dict, min_score: float, where: str) -> bool:
    score = obj.get("score")
    if score is None:
        return True
    if not isinstance(score, (int, float)):
        raise _BadRecord(f"{where}.score={_quote(score)} (expected a number)")
    return score >= min_score


def _bad_record_detail(rec: dict, min_score: float) -> str:
    """What is wrong with a result record that :func:`_fast_labels` could not read."""
    image = rec.get("image")
    img = image.get("path") if isinstance(image, dict) else image
    if not isinstance(img, str) or len(img) > 4096:
        return f"image.path={_quote(img)} (expected a text of at most 4096 characters)"
    try:
        _record_labels(rec, min_score)
    except _BadRecord as exc:
        return str(exc)
    return "fields of unexpected types"


def _record_labels(rec: dict, min_score: float) -> list[tuple[str, str]]:
    """The ``(attribute, value)`` labels of one result record with a score of at least ``min_score``.

    The careful (slow) twin of :func:`_fast_labels`: it says what is wrong.

    Raises:
        _BadRecord: a field has the wrong type (e.g. ``garments`` not a list, an ``id`` not a text).
    """
    out: list[tuple[str, str]] = []
    garments = rec.get("garments") or ()
    if not isinstance(garments, (list, tuple)):
        raise _BadRecord(f"garments={_quote(garments)} (expected a list)")
    for k, g in enumerate(garments):
        g = _as_object(g, f"garments[{k}]")
        ot = g.get("object_type")
        if ot and _score_ok(g, min_score, f"garments[{k}]"):
            out.append(("object_type", _label_text(ot, f"garments[{k}].object_type")))
        cat = g.get("category")
        if cat:
            cat = _as_object(cat, f"garments[{k}].category")
            if cat.get("id") and _score_ok(cat, min_score, f"garments[{k}].category"):
                out.append(("category", _label_text(cat["id"], f"garments[{k}].category.id")))
        attrs = g.get("attributes")
        if not attrs:
            continue
        attrs = _as_object(attrs, f"garments[{k}].attributes")
        for a in TAG_SINGLE_ATTRIBUTES:
            v = attrs.get(a)
            if v:
                v = _as_object(v, f"garments[{k}].attributes.{a}")
                if v.get("id") and _score_ok(v, min_score, f"garments[{k}].attributes.{a}"):
                    out.append((a, _label_text(v["id"], f"garments[{k}].attributes.{a}.id")))
        colours = attrs.get("colours") or ()
        if not isinstance(colours, (list, tuple)):
            raise _BadRecord(f"garments[{k}].attributes.colours={_quote(colours)} (expected a list)")
        for j, c in enumerate(colours):
            c = _as_object(c, f"garments[{k}].attributes.colours[{j}]")
            if c.get("id") and _score_ok(c, min_score, f"garments[{k}].attributes.colours[{j}]"):
                out.append(("colours", _label_text(c["id"], f"garments[{k}].attributes.colours[{j}].id")))
    return out


def _skip_rest_of_line(fh: io.BufferedReader) -> int:
    """Read past the end of the current line in 64 KiB pieces; the number of bytes skipped."""
    skipped = 0
    while True:
        piece = fh.readline(2 ** 16)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return skipped


class _ChunkParse:
    """What :func:`_parse_tag_chunk` gathers from one chunk: usable records, their labels, rejections."""

    def __init__(self) -> None:
        self.images: list[str] = []
        self.image_lines: list[int] = []
        self.rec_idx: list[int] = []
        self.codes: list[int] = []
        self.vocab: dict[tuple[str, str], int] = {}
        self.rejected: Counter = Counter()
        self.examples: dict[str, list[tuple[int, str]]] = {}
        self.error_types: set[str] = set()
        self.nlines = 0

    def reject(self, reason: str, lineno: int, detail: str = "") -> None:
        self.rejected[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < _MAX_EXAMPLES:
            ex.append((lineno, detail))

    def reject_error_record(self, err: object, lineno: int) -> None:
        """Count a tag error record under its type (at most :data:`_MAX_ERROR_TYPES` types, then ``other``)."""
        kind = err.get("type", "error") if isinstance(err, dict) else err
        kind = kind if isinstance(kind, str) and _ERROR_TYPE_RE.match(kind) else "other"
        if kind not in self.error_types and len(self.error_types) >= _MAX_ERROR_TYPES:
            kind = "other"
        self.error_types.add(kind)
        self.reject(f"tag error record ({kind})", lineno)

    def add(self, img: str, lineno: int, labels: list[tuple[str, str]]) -> None:
        self.images.append(img)
        self.image_lines.append(lineno)
        vocab = self.vocab
        for pair in labels:
            code = vocab.get(pair)
            if code is None:
                code = vocab[pair] = len(vocab)
            self.rec_idx.append(len(self.images) - 1)
            self.codes.append(code)

    def to_dict(self) -> dict:
        return {"images": self.images, "image_lines": self.image_lines,
                "rec": np.asarray(self.rec_idx, dtype=np.int64), "codes": np.asarray(self.codes, dtype=np.int64),
                "vocab": list(self.vocab), "rejected": self.rejected, "examples": self.examples,
                "nlines": self.nlines}


def _chunk_lines(fh: io.BufferedReader, start: int, end: int, out: _ChunkParse) -> Iterator[bytes]:
    """The non-blank lines in bytes ``[start, end)`` of ``fh``, counted in ``out.nlines``.

    A line over :data:`MAX_JSONL_LINE_BYTES` is skipped without being held in memory, and rejected.
    """
    fh.seek(start)
    pos = start
    while pos < end:
        line = fh.readline(MAX_JSONL_LINE_BYTES + 1)
        if not line:
            break
        pos += len(line)
        out.nlines += 1
        if len(line) > MAX_JSONL_LINE_BYTES and not line.endswith(b"\n"):
            skipped = _skip_rest_of_line(fh)
            pos += skipped
            out.reject(f"line too long (over {MAX_JSONL_LINE_BYTES:,} bytes)", out.nlines,
                       f"{len(line) + skipped:,} bytes")
            continue
        if line.strip():
            yield line


def _load_result(line: bytes, lineno: int, out: _ChunkParse) -> dict | None:
    """The ``fashionlens/result/v1``/``v2`` record on ``line``, or ``None`` (rejected into ``out``) if it is not one."""
    try:
        rec = json.loads(line)
    except UnicodeDecodeError as exc:
        out.reject("not UTF-8 text", lineno, f"byte {line[exc.start:exc.start + 1]!r} at column {exc.start + 1}")
        return None
    except ValueError as exc:
        out.reject("invalid JSON line", lineno, _clip(str(exc), 60))
        return None
    except RecursionError:
        out.reject("invalid JSON line", lineno, "nested too deeply")
        return None
    if not isinstance(rec, dict) or rec.get("schema") not in RESULT_SCHEMAS:
        got = rec.get("schema") if isinstance(rec, dict) else type(rec).__name__
        out.reject(f"not a {RESULT_SCHEMA} record", lineno, f"schema={_quote(got)}")
        return None
    return rec


def _fast_labels(rec: dict, min_score: float) -> list[tuple[str, str]] | None:
    """The ``(attribute, value)`` labels of a record with a score of at least ``min_score``.

    The fast twin of :func:`_record_labels`: ``None`` when a field has the wrong type (a record
    whose labels are not all checked is never kept).
    """
    labels: list[tuple[str, str]] = []
    try:
        for g in rec.get("garments") or ():
            ot = g.get("object_type")
            sc = g.get("score")
            if ot and (sc is None or sc >= min_score):
                labels.append(("object_type", ot))
            cat = g.get("category")
            if cat and cat.get("id") and (cat.get("score") is None or cat["score"] >= min_score):
                labels.append(("category", cat["id"]))
            attrs = g.get("attributes")
            if not attrs:
                continue
            for a in TAG_SINGLE_ATTRIBUTES:
                v = attrs.get(a)
                if v and v.get("id") and (v.get("score") is None or v["score"] >= min_score):
                    labels.append((a, v["id"]))
            for c in attrs.get("colours") or ():
                if c.get("id") and (c.get("score") is None or c["score"] >= min_score):
                    labels.append(("colours", c["id"]))
    except (AttributeError, TypeError):
        return None
    for _, value in labels:
        if type(value) is not str or len(value) > 200:
            return None
    return labels


def _parse_tag_chunk(path: str, start: int, end: int, min_score: float) -> dict:
    """Parse result lines in bytes ``[start, end)`` of ``path`` (a line-aligned chunk).

    Returns the image paths of usable records (with their chunk-relative line numbers), and their
    labels as ``(record, code)`` int arrays with a local vocabulary of ``(attribute, value)`` pairs;
    rejections carry chunk-relative line numbers. Runs in worker processes for big files. A line
    over :data:`MAX_JSONL_LINE_BYTES` is skipped without being held in memory, and rejected.
    """
    out = _ChunkParse()
    with open(path, "rb") as fh:
        for line in _chunk_lines(fh, start, end, out):
            lineno = out.nlines
            rec = _load_result(line, lineno, out)
            if rec is None:
                continue
            err = rec.get("error")
            if err:
                out.reject_error_record(err, lineno)
                continue
            image = rec.get("image") or {}
            img = image.get("path") if isinstance(image, dict) else None
            if not img:
                out.reject("result without image.path", lineno)
                continue
            # the labels, checked before any is kept: a record with fields of the wrong types is rejected
            labels = _fast_labels(rec, min_score)
            if labels is None or type(img) is not str or len(img) > 4096:
                out.reject("malformed result record", lineno, _bad_record_detail(rec, min_score))
                continue
            out.add(img, lineno, labels)
    return out.to_dict()


def _line_chunks(path: Path, parts: int) -> list[tuple[int, int]]:
    size = path.stat().st_size
    if parts <= 1 or size < 8 * 2 ** 20:
        return [(0, size)]
    bounds = [0]
    with path.open("rb") as fh:
        for i in range(1, parts):
            fh.seek(size * i // parts)
            _skip_rest_of_line(fh)
            b = fh.tell()
            if bounds[-1] < b < size:
                bounds.append(b)
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


def _parse_results_file(path: Path, workers: int, min_score: float) -> list[dict]:
    """:func:`_parse_tag_chunk` over the line-aligned chunks of ``path`` (in worker processes when several)."""
    chunks = _line_chunks(path, workers)
    if len(chunks) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=len(chunks)) as ex:
            return list(ex.map(_parse_tag_chunk, [str(path)] * len(chunks), [c[0] for c in chunks],
                               [c[1] for c in chunks], [min_score] * len(chunks)))
    return [_parse_tag_chunk(str(path), chunks[0][0], chunks[0][1], min_score)]


class _ImageMatcher:
    """Finds the metadata row of a result's image: by exact path, else by file name; each row once."""

    def __init__(self, meta_images: list[str]) -> None:
        self.by_path = {p: i for i, p in enumerate(meta_images)}
        self.by_name: dict[str, int] | None = None  # built on the first miss
        self.matched = np.zeros(len(meta_images), dtype=bool)

    def _find(self, img: str) -> int | None:
        i = self.by_path.get(img)
        if i is None:
            if self.by_name is None:
                self.by_name = {}
                for p, k in self.by_path.items():
                    self.by_name.setdefault(p.replace("\\", "/").rsplit("/", 1)[-1], k)
            i = self.by_name.get(img.replace("\\", "/").rsplit("/", 1)[-1])
        return i

    def rows(self, part: dict, name: str, line_offset: int, report: ValidationReport) -> np.ndarray:
        """The metadata row of each usable record of ``part`` (-1: rejected into ``report``, no row or taken)."""
        rows = np.empty(len(part["images"]), dtype=np.int64)
        for j, (img, ln) in enumerate(zip(part["images"], part["image_lines"])):
            i = self._find(img)
            if i is None:
                report.reject("no metadata row for image", 1, [f"{name}:{line_offset + ln}: image={_quote(img)}"])
                rows[j] = -1
            elif self.matched[i]:
                report.reject("duplicate result for image (first kept)", 1,
                              [f"{name}:{line_offset + ln}: image={_quote(img)}"])
                rows[j] = -1
            else:
                self.matched[i] = True
                rows[j] = i
        return rows


def _count_part(report: ValidationReport, part: dict, name: str, line_offset: int) -> None:
    """Add a parsed chunk's lines and rejections (examples as ``file:line``) to ``report``."""
    report.rows_read += part["nlines"]
    for reason, n in part["rejected"].items():
        report.reject(reason, n, [f"{name}:{line_offset + ln}" + (f": {d}" if d else "")
                                  for ln, d in part["examples"][reason]])


def _tag_posts(meta: pd.DataFrame) -> pd.DataFrame:
    """The posts table of the metadata rows (columns the metadata lacks are empty)."""
    n = len(meta)
    cols = {
        "post_id": meta["image"].astype(str), "timestamp": meta["_ts"],
        "place": meta["city"] if "city" in meta else pd.Series([pd.NA] * n, dtype="object"),
    }
    for c in ("lat", "lon", "author", "likes", "comments", "hashtags", "caption"):
        cols[c] = meta[c] if c in meta else pd.Series([pd.NA] * n, dtype="object")
    return _finish_posts(cols)


def _tag_labels(post_parts: list[np.ndarray], code_parts: list[np.ndarray],
                pair_codes: dict[tuple[str, str], int]) -> pd.DataFrame:
    """The long labels table from per-chunk ``(post, global code)`` arrays, one row per (post, attribute, value)."""
    codes = np.concatenate(code_parts) if code_parts else np.empty(0, dtype=np.int64)
    post_all = np.concatenate(post_parts) if post_parts else np.empty(0, dtype=np.int64)
    # one row per (post, attribute, value): two garments of one photo may share a value
    K = max(len(pair_codes), 1)
    key = np.sort(post_all * K + codes, kind="stable")
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key
    post_all, codes = key // K, key % K
    pairs = list(pair_codes)
    attrs = sorted({a for a, _ in pairs})
    values = sorted({v for _, v in pairs})
    a_of = np.asarray([attrs.index(a) for a, _ in pairs] or [0], dtype=np.int64)
    v_idx = {v: i for i, v in enumerate(values)}
    v_of = np.asarray([v_idx[v] for _, v in pairs] or [0], dtype=np.int64)
    return _labels_frame([pd.DataFrame({
        "post": post_all,
        "attribute": pd.Categorical.from_codes(a_of[codes], categories=attrs),
        "value": pd.Categorical.from_codes(v_of[codes], categories=values)})], dedupe=False)


def read_tag_results(results: str | Path | Sequence[str | Path], metadata: str | Path, *,
                     min_score: float = 0.0, workers: int | None = None) -> TrendData:
    """Join ``fashionlens tag`` JSONL results with a post-metadata table on ``image``.

    A result matches a metadata row by its ``image.path``, else by the file name alone. Results
    that are error records, not JSON, of another schema, or without a metadata row are rejected
    (counted). Metadata rows without a result stay as posts (for social analytics) with no labels.
    Labels with a score below ``min_score`` are skipped. Files over 8 MiB are parsed by
    ``workers`` processes (default: the CPU count, at most 8).
    """
    results = [results] if isinstance(results, (str, Path)) else list(results)
    report = ValidationReport()
    meta = read_post_metadata(metadata, report)
    matcher = _ImageMatcher(meta["image"].astype(str).tolist())
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    post_parts: list[np.ndarray] = []
    code_parts: list[np.ndarray] = []
    pair_codes: dict[tuple[str, str], int] = {}
    for path in results:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tag results not found: {path}")
        next_offset = 0
        for part in _parse_results_file(path, workers, min_score):
            line_offset, next_offset = next_offset, next_offset + part["nlines"]
            _count_part(report, part, path.name, line_offset)
            rows = matcher.rows(part, path.name, line_offset, report)
            report.rows_used += int((rows >= 0).sum())
            post = rows[part["rec"]] if len(part["rec"]) else np.empty(0, dtype=np.int64)
            keep = post >= 0
            # map the chunk's (attribute, value) vocabulary onto global codes
            to_global = np.asarray([pair_codes.setdefault(pair, len(pair_codes)) for pair in part["vocab"]] or [0],
                                   dtype=np.int64)
            post_parts.append(post[keep])
            code_parts.append(to_global[part["codes"][keep]])
    n_unmatched = int((~matcher.matched).sum())
    if n_unmatched:
        report.notes.append(f"{n_unmatched} metadata rows have no tag result: kept as posts without labels")
    return TrendData(_tag_posts(meta), _tag_labels(post_parts, code_parts, pair_codes), report,
                     [str(p) for p in results] + [str(metadata)])


def combine(datas: Sequence[TrendData]) -> TrendData:
    """Concatenate several inputs into one (post indices are shifted)."""
    if not datas:
        raise TrendInputError("no inputs to combine; expected at least one TrendData")
    if len(datas) == 1:
        return datas[0]
    posts, labels, offset = [], [], 0
    report = ValidationReport()
    sources: list[str] = []
    for d in datas:
        p = d.posts.copy()
        p["place"] = p["place"].astype("object")
        p["author"] = p["author"].astype("object")
        posts.append(p)
        lab = d.labels.astype({"attribute": "object", "value": "object"})
        lab = lab.assign(post=lab["post"] + offset)
        labels.append(lab)
        offset += len(d.posts)
        report = report.merge(d.report)
        sources += d.sources
    return TrendData(_finish_posts(pd.concat(posts, ignore_index=True).to_dict("series")),
                     _labels_frame(labels), report, sources)


def sniff_format(path: str | Path) -> str:
    """``'tags'`` for JSON lines, ``'streetstyle'`` for a StreetStyle CSV, ``'metadata'`` for a post table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path}")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return "tags"
    if path.suffix.lower() in (".parquet", ".pq"):
        return "metadata"
    with path.open("rb") as fh:  # at most the header limit: the reader refuses a longer header itself
        first = fh.readline(MAX_CSV_HEADER_BYTES + 1).decode("utf-8", errors="replace")
    header = [h.strip().strip('"').lstrip("\ufeff") for h in first.split(",")]
    if "created_time" in header and "city_id" in header:
        return "streetstyle"
    if "image" in header and "timestamp" in header:
        return "metadata"
    raise TrendInputError(f"{path}: cannot tell the format from header {short_repr(header, 300)}; "
                          f"expected JSON lines of "
                          f"{RESULT_SCHEMA}, a StreetStyle CSV ({list(STREETSTYLE_REQUIRED)} + attributes) or "
                          f"a post-metadata table ({list(META_REQUIRED)} + optional {list(META_OPTIONAL)})")


def load_inputs(inputs: Sequence[str | Path], metadata: str | Path | None = None, *,
                min_score: float = 0.0) -> TrendData:
    """Read any mix of StreetStyle CSVs and tag-result JSONL files (the latter need ``metadata``)."""
    if not inputs:
        raise TrendInputError("no inputs; expected StreetStyle CSVs or tag-result JSONL files")
    kinds = {str(p): sniff_format(p) for p in inputs}
    tags = [p for p in inputs if kinds[str(p)] == "tags"]
    street = [p for p in inputs if kinds[str(p)] == "streetstyle"]
    metas = [p for p in inputs if kinds[str(p)] == "metadata"]
    if metas and metadata is None and len(metas) == 1 and tags:
        metadata = metas[0]
    elif metas:
        raise TrendInputError(f"post-metadata tables {[str(m) for m in metas]} given as inputs; pass one with "
                              "--meta next to the tag-result JSONL files")
    datas = []
    if tags:
        if metadata is None:
            raise TrendInputError("tag-result JSONL inputs need a post-metadata table (image, timestamp, ...); "
                                  "got none (use --meta)")
        datas.append(read_tag_results(tags, metadata, min_score=min_score))
    if street:
        datas.append(read_streetstyle(street))
    return combine(datas)
