"""Read posts and their garment labels for trend analysis, validating every row.

Two sources feed one :class:`TrendData`:

* ``fashionlens tag`` results (``fashionlens/result/v1`` JSON lines) joined on ``image`` with a
  post-metadata table (CSV or Parquet: ``image``, ``timestamp`` and optionally ``city``, ``lat``,
  ``lon``, ``author``, ``likes``, ``comments``, ``hashtags``, ``caption``);
* StreetStyle-27k label CSVs (GeoStyle, ICCV 2019), read directly.

Rows that cannot be used are never dropped silently: each is counted under a reason in the
:class:`ValidationReport` (with the first few examples as ``file:line: detail``). A table whose
*columns* are wrong is an error (:class:`TrendInputError`) naming the expected columns.

``TrendData.posts`` has one row per post (``timestamp`` is tz-naive UTC); ``TrendData.labels`` is
long: one row per (post, attribute, value), ``post`` being the row position in ``posts``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

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
RESULT_SCHEMA = "fashionlens/result/v1"
POST_COLUMNS: tuple[str, ...] = ("post_id", "timestamp", "place", "lat", "lon", "author", "likes", "comments",
                                 "hashtags", "caption")
_MAX_EXAMPLES = 5


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


def _read_csv_counting_bad_lines(path: Path, report: ValidationReport) -> pd.DataFrame:
    """Read a CSV as strings; rows with the wrong number of fields are counted, not fatal.

    The fast C parser is tried first; only a file with malformed lines is re-read with the
    Python parser, which reports each bad line. (Line numbers in the data checks that follow
    count data rows, so they are exact only for files without malformed lines.)
    """
    kw = dict(dtype=str, keep_default_na=False, na_values=[""])
    try:
        return pd.read_csv(path, **kw)
    except pd.errors.ParserError:
        pass
    bad: list[list[str]] = []

    def on_bad(fields: list[str]) -> None:
        bad.append(fields)

    df = pd.read_csv(path, engine="python", on_bad_lines=on_bad, **kw)
    report.rows_read += len(bad)
    report.reject(f"wrong number of fields (expected {len(df.columns)})", len(bad),
                  [f"{path.name}: {','.join(map(str, f))[:80]!r} has {len(f)} fields" for f in bad])
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


def _examples(where: str, mask: np.ndarray, raw: pd.Series | None, col: str, line_offset: int = 2) -> list[str]:
    idx = np.flatnonzero(mask)[:_MAX_EXAMPLES]
    if raw is None:
        return [f"{where}:{i + line_offset}: {col} missing" for i in idx]
    return [f"{where}:{i + line_offset}: {col}={raw.iloc[i]!r}" for i in idx]


def _check_columns(columns: Sequence[str], required: Sequence[str], optional: Sequence[str], what: str,
                   where: str) -> None:
    cols = [str(c) for c in columns]
    missing = [c for c in required if c not in cols]
    unknown = [c for c in cols if c not in required and c not in optional]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if unknown:
            parts.append(f"unknown column(s) {unknown}")
        raise TrendInputError(f"{where}: {' and '.join(parts)}; a {what} has columns {list(required)}"
                              f" and optionally {list(optional)}; got {cols}")


def _validate_common(df: pd.DataFrame, where: str, report: ValidationReport, ts_col: str,
                     lat_col: str | None, lon_col: str | None, count_cols: Sequence[str] = ()) -> pd.Series:
    """Row-wise checks shared by both formats; returns the boolean mask of good rows, fills parsed columns."""
    good = np.ones(len(df), dtype=bool)
    raw_ts = df[ts_col]
    ts = _parse_timestamps(raw_ts)
    missing = raw_ts.isna().to_numpy()
    bad = ts.isna().to_numpy() & ~missing
    report.reject(f"missing {ts_col}", int(missing.sum()), _examples(where, missing, None, ts_col))
    report.reject(f"unparseable {ts_col}", int(bad.sum()), _examples(where, bad, raw_ts, ts_col))
    good &= ~(missing | bad)
    df["_ts"] = ts
    for col, lo, hi in ((lat_col, -90, 90), (lon_col, -180, 180)):
        if col is None or col not in df.columns:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        badn = (num.isna() & raw.notna()).to_numpy() | ((num < lo) | (num > hi)).to_numpy()
        report.reject(f"bad {col} (expected a number in [{lo}, {hi}])", int((badn & good).sum()),
                      _examples(where, badn & good, raw, col))
        good &= ~badn
        df[col] = num
    for col in count_cols:
        if col not in df.columns:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        badn = (num.isna() & raw.notna()).to_numpy() | (num < 0).to_numpy() | (num % 1 != 0).fillna(False).to_numpy()
        report.reject(f"bad {col} (expected a non-negative integer)", int((badn & good).sum()),
                      _examples(where, badn & good, raw, col))
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
                      _examples(path.name, badc, df["city_id"], "city_id"))
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


def read_post_metadata(path: str | Path, report: ValidationReport | None = None) -> pd.DataFrame:
    """Read and validate a post-metadata table (CSV or Parquet); bad rows are rejected into ``report``."""
    path = Path(path)
    report = report if report is not None else ValidationReport()
    if not path.is_file():
        raise FileNotFoundError(f"post metadata not found: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except ImportError as exc:
            raise TrendInputError(f"{path}: reading Parquet needs pyarrow or fastparquet ({exc}); "
                                  "install one, or pass the metadata as CSV") from exc
        df = df.astype("object").where(lambda d: d.notna(), None)
        df = df.astype({c: str for c in df.columns if c in ("image", "timestamp")})
    else:
        df = _read_csv_counting_bad_lines(path, report)
    _check_columns(df.columns, META_REQUIRED, META_OPTIONAL, "post-metadata table", str(path))
    report.rows_read += len(df)
    good = _validate_common(df, path.name, report, "timestamp", "lat", "lon", ("likes", "comments"))
    noimg = df["image"].isna().to_numpy() & good.to_numpy()
    report.reject("missing image", int(noimg.sum()), _examples(path.name, noimg, None, "image"))
    good &= ~noimg
    dup = df["image"].duplicated(keep="first").to_numpy() & good.to_numpy()
    report.reject("duplicate image in metadata (first row kept)", int(dup.sum()),
                  _examples(path.name, dup, df["image"], "image"))
    good &= ~dup
    report.rows_used += int(good.sum())
    return df[good.to_numpy()].reset_index(drop=True)


def _parse_tag_chunk(path: str, start: int, end: int, min_score: float) -> dict:
    """Parse result lines in bytes ``[start, end)`` of ``path`` (a line-aligned chunk).

    Returns the image paths of usable records, and their labels as ``(record, code)`` int arrays
    with a local vocabulary of ``(attribute, value)`` pairs; rejections carry chunk-relative line
    numbers. Runs in worker processes for big files.
    """
    images: list[str] = []
    rec_idx: list[int] = []
    codes: list[int] = []
    vocab: dict[tuple[str, str], int] = {}
    rejected: Counter = Counter()
    examples: dict[str, list[tuple[int, str]]] = {}
    single = TAG_SINGLE_ATTRIBUTES
    loads = json.loads

    def reject(reason: str, lineno: int, detail: str = "") -> None:
        rejected[reason] += 1
        ex = examples.setdefault(reason, [])
        if len(ex) < _MAX_EXAMPLES:
            ex.append((lineno, detail))

    def add(a: str, v: str) -> None:
        code = vocab.get((a, v))
        if code is None:
            code = vocab[(a, v)] = len(vocab)
        rec_idx.append(len(images) - 1)
        codes.append(code)

    nlines = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        pos = start
        for line in fh:
            if pos >= end:
                break
            pos += len(line)
            nlines += 1
            if not line.strip():
                continue
            try:
                rec = loads(line)
            except ValueError as exc:
                reject("invalid JSON line", nlines, str(exc)[:60])
                continue
            if not isinstance(rec, dict) or rec.get("schema") != RESULT_SCHEMA:
                got = rec.get("schema") if isinstance(rec, dict) else type(rec).__name__
                reject(f"not a {RESULT_SCHEMA} record", nlines, f"schema={got!r}")
                continue
            err = rec.get("error")
            if err:
                reject(f"tag error record ({err.get('type', 'error') if isinstance(err, dict) else err})", nlines)
                continue
            img = (rec.get("image") or {}).get("path")
            if not img:
                reject("result without image.path", nlines)
                continue
            images.append(img)
            for g in rec.get("garments") or ():
                ot = g.get("object_type")
                sc = g.get("score")
                if ot and (sc is None or sc >= min_score):
                    add("object_type", ot)
                cat = g.get("category")
                if cat and cat.get("id") and (cat.get("score") is None or cat["score"] >= min_score):
                    add("category", cat["id"])
                attrs = g.get("attributes")
                if not attrs:
                    continue
                for a in single:
                    v = attrs.get(a)
                    if v and v.get("id") and (v.get("score") is None or v["score"] >= min_score):
                        add(a, v["id"])
                for c in attrs.get("colours") or ():
                    if c.get("id") and (c.get("score") is None or c["score"] >= min_score):
                        add("colours", c["id"])
    return {"images": images, "rec": np.asarray(rec_idx, dtype=np.int64), "codes": np.asarray(codes, dtype=np.int64),
            "vocab": list(vocab), "rejected": rejected, "examples": examples, "nlines": nlines}


def _line_chunks(path: Path, parts: int) -> list[tuple[int, int]]:
    size = path.stat().st_size
    if parts <= 1 or size < 8 * 2 ** 20:
        return [(0, size)]
    bounds = [0]
    with path.open("rb") as fh:
        for i in range(1, parts):
            fh.seek(size * i // parts)
            fh.readline()
            b = fh.tell()
            if bounds[-1] < b < size:
                bounds.append(b)
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


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
    meta_images = meta["image"].astype(str).tolist()
    by_path = {p: i for i, p in enumerate(meta_images)}
    by_name: dict[str, int] | None = None
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    post_parts: list[np.ndarray] = []
    code_parts: list[np.ndarray] = []
    pair_codes: dict[tuple[str, str], int] = {}
    matched = np.zeros(len(meta), dtype=bool)
    for path in results:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tag results not found: {path}")
        chunks = _line_chunks(path, workers)
        if len(chunks) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=len(chunks)) as ex:
                parsed = list(ex.map(_parse_tag_chunk, [str(path)] * len(chunks), [c[0] for c in chunks],
                                     [c[1] for c in chunks], [min_score] * len(chunks)))
        else:
            parsed = [_parse_tag_chunk(str(path), chunks[0][0], chunks[0][1], min_score)]
        line_offset = 0
        for part in parsed:
            report.rows_read += part["nlines"]
            for reason, n in part["rejected"].items():
                report.reject(reason, n, [f"{path.name}:{line_offset + ln}" + (f": {d}" if d else "")
                                          for ln, d in part["examples"][reason]])
            line_offset += part["nlines"]
            # image → metadata row (exact path, else file name)
            rows = np.empty(len(part["images"]), dtype=np.int64)
            for j, img in enumerate(part["images"]):
                i = by_path.get(img)
                if i is None:
                    if by_name is None:
                        by_name = {}
                        for p, k in by_path.items():
                            by_name.setdefault(p.replace("\\", "/").rsplit("/", 1)[-1], k)
                    i = by_name.get(img.replace("\\", "/").rsplit("/", 1)[-1])
                if i is None:
                    report.reject("no metadata row for image", 1, [f"{path.name}: image={img!r}"])
                    rows[j] = -1
                elif matched[i]:
                    report.reject("duplicate result for image (first kept)", 1, [f"{path.name}: image={img!r}"])
                    rows[j] = -1
                else:
                    matched[i] = True
                    rows[j] = i
            report.rows_used += int((rows >= 0).sum())
            post = rows[part["rec"]] if len(part["rec"]) else np.empty(0, dtype=np.int64)
            keep = post >= 0
            # map the chunk's (attribute, value) vocabulary onto global codes
            to_global = np.asarray([pair_codes.setdefault(pair, len(pair_codes)) for pair in part["vocab"]] or [0],
                                   dtype=np.int64)
            post_parts.append(post[keep])
            code_parts.append(to_global[part["codes"][keep]])
    n_unmatched = int((~matched).sum())
    if n_unmatched:
        report.notes.append(f"{n_unmatched} metadata rows have no tag result: kept as posts without labels")
    n = len(meta)
    cols = {
        "post_id": meta["image"].astype(str), "timestamp": meta["_ts"],
        "place": meta["city"] if "city" in meta else pd.Series([pd.NA] * n, dtype="object"),
    }
    for c in ("lat", "lon", "author", "likes", "comments", "hashtags", "caption"):
        cols[c] = meta[c] if c in meta else pd.Series([pd.NA] * n, dtype="object")
    posts = _finish_posts(cols)
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
    labels = _labels_frame([pd.DataFrame({
        "post": post_all,
        "attribute": pd.Categorical.from_codes(a_of[codes], categories=attrs),
        "value": pd.Categorical.from_codes(v_of[codes], categories=values)})], dedupe=False)
    return TrendData(posts, labels, report, [str(p) for p in results] + [str(metadata)])


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
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        header = [h.strip() for h in fh.readline().split(",")]
    if "created_time" in header and "city_id" in header:
        return "streetstyle"
    if "image" in header and "timestamp" in header:
        return "metadata"
    raise TrendInputError(f"{path}: cannot tell the format from header {header}; expected JSON lines of "
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
