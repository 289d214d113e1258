"""Annotator agreement (issue 4): how well do people agree when they grade the same garments, and
where does the model sit relative to them.

Inputs are *annotation tables*, one per annotator (a CSV with one row per item: an ``item_id`` — or
``id`` — column and one column per field such as ``condition``, ``price``, ``stains``), and optionally
the model's ``fashionlens/item/v1`` or ``v2`` records (:mod:`fashionlens.grading.item`), matched by ``item_id``.

Per field the report gives

* the items every annotator rated and their **percent agreement** (all values equal);
* **Cohen's kappa** for every annotator pair (:func:`sklearn.metrics.cohen_kappa_score`), with
  quadratic weights on ordinal fields (``condition``, ``pilling`` and ``price`` by default, when their
  values are ordered numbers or price bands) — ``κ = 1 − Σ w·O / Σ w·E`` over the pair's confusion
  proportions ``O`` and the product of its marginals ``E``, ``w_ij = (i − j)²`` (ordinal) or
  ``[i ≠ j]`` (nominal);
* **Krippendorff's alpha** across all annotators (PyPI ``krippendorff``; nominal or ordinal level;
  items a rater left empty are missing values) — *the* statistic when there are more than two;
* with a model: its kappa against every annotator and their mean, on the items that all annotators
  *and* the model rated, next to the mean human–human kappa on the same items, and a verdict by
  :data:`VERDICT_RULE` (with an optional paired bootstrap interval of the difference).

Values are normalised before comparing: surrounding white space removed, case folded, inner white
space collapsed, numbers written one way (``"3"``, ``"3.0"`` and ``3`` are equal); empty cells and
``nan``/``n/a``/``na``/``null`` are missing. Problems with one field (absent from a file, only one
value used, no overlapping items) become notes in the report; problems with the inputs as a whole
(missing file, no id column, duplicated ids, no item in two files) raise :class:`AgreementInputError`
(a ``ValueError``) or ``FileNotFoundError`` with a message that says what was expected.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["AGREEMENT_SCHEMA", "DEFAULT_ORDINAL_FIELDS", "ID_COLUMNS", "VERDICT_MARGIN", "VERDICT_RULE",
           "AgreementInputError", "agreement_report", "annotation_table", "model_table", "model_value",
           "normalise_value", "plot_agreement", "read_annotations", "read_model_predictions",
           "write_agreement"]

AGREEMENT_SCHEMA = "fashionlens/agreement/v1"
ID_COLUMNS: tuple[str, ...] = ("item_id", "id")
DEFAULT_ORDINAL_FIELDS: tuple[str, ...] = ("condition", "pilling", "price")
VERDICT_MARGIN = 0.05
VERDICT_RULE = ("d = mean model–annotator kappa − mean annotator–annotator kappa, on the items every annotator "
                "and the model rated: d ≥ −{m} → 'model agrees with annotators about as well as they agree "
                "with each other' (d ≥ +{m}: 'better than'), d < −{m} → 'below human agreement'")
MODEL_NAME = "model"
#: cell texts (after normalisation) that mean "no value"
MISSING_TOKENS = frozenset({"", "nan", "n/a", "na", "null"})
#: a plain integer scale spanning at most this many steps gets every step in its value domain
_FILL_INTEGER_SPAN = 20
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?")
_BAND_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_BELOW = ("<", "≤", "under", "below", "up to", "upto", "max", "less than")
_ABOVE = (">", "≥", "over", "above", "from", "min", "more than")
_TOP_LEVEL_MODEL_FIELDS = {"category": ("category", "id"), "object_type": ("object_type",),
                           "route": ("route", "decision"), "brand": ("brand",)}


class AgreementInputError(ValueError):
    """The annotation tables or model records cannot be compared (the message says why)."""


# --- values -------------------------------------------------------------------------------------------
def normalise_value(value: Any) -> str | None:
    """One comparable text per value: stripped, case-folded, inner white space collapsed; numbers
    canonical (``"3"``, ``" 3.0 "``, ``3`` and ``3.0`` → ``"3"``; ``"2.50"`` → ``"2.5"``); booleans
    ``"true"``/``"false"``; ``None``, NaN and :data:`MISSING_TOKENS` → ``None``."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _number_text(float(value)) if math.isfinite(value) else None
    if isinstance(value, Mapping | list | tuple | set):
        raise AgreementInputError(f"expected a single value (text or number); got {type(value).__name__} {value!r}")
    text = " ".join(str(value).split()).casefold()
    if text in MISSING_TOKENS:
        return None
    if _NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return _number_text(number)
    return text


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _normalise_id(value: Any) -> str | None:
    if value is None or (isinstance(value, float | np.floating) and not math.isfinite(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _normalise_column(name: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().casefold())


# --- annotation tables --------------------------------------------------------------------------------
def annotation_table(frame: pd.DataFrame, *, name: str = "table") -> pd.DataFrame:
    """Validate and normalise one annotator's table: the result is indexed by ``item_id`` (text), has
    one column per field (names stripped, case-folded, spaces/hyphens → ``_``) and normalised values
    (text or ``None``). An index named ``item_id``/``id`` is used when the frame has no such column."""
    if not isinstance(frame, pd.DataFrame):
        raise AgreementInputError(f"{name}: expected a pandas DataFrame; got {type(frame).__name__}")
    df = frame.copy()
    if df.index.name is not None and _normalise_column(df.index.name) in ID_COLUMNS:
        df = df.reset_index()
    columns = [_normalise_column(c) for c in df.columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise AgreementInputError(f"{name}: expected unique column names; {duplicated} appear more than once "
                                  "(after stripping and case-folding)")
    df.columns = columns
    id_column = next((c for c in ID_COLUMNS if c in columns), None)
    if id_column is None:
        raise AgreementInputError(f"{name}: expected an id column named one of {list(ID_COLUMNS)}; "
                                  f"got columns {columns}")
    ids = [_normalise_id(v) for v in df[id_column]]
    empty = [i + 2 for i, v in enumerate(ids) if v is None]  # +2: header line, 1-based rows
    if empty:
        raise AgreementInputError(f"{name}: expected an {id_column} in every row; rows {_few(empty)} have none "
                                  "(row numbers count the header as row 1)")
    dups = sorted(i for i, count in Counter(ids).items() if count > 1)
    if dups:
        raise AgreementInputError(f"{name}: expected each {id_column} once; duplicated: {_few(dups)} "
                                  f"({len(ids) - len(set(ids))} extra rows)")
    fields = [c for c in columns if c not in ID_COLUMNS]
    out = pd.DataFrame({f: [normalise_value(v) for v in df[f]] for f in fields}, index=pd.Index(ids, name="item_id"),
                       dtype=object)
    return out


def read_annotations(path: str | Path) -> pd.DataFrame:
    """Read one annotator's CSV (comma, semicolon or tab separated; UTF-8 with or without BOM) into an
    :func:`annotation_table`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python",
                            encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as exc:
        raise AgreementInputError(f"{path}: expected a CSV table with a header row; could not read it ({exc})") from exc
    except OSError as exc:
        raise AgreementInputError(f"{path}: could not read the file ({exc})") from exc
    return annotation_table(frame, name=str(path))


# --- model records ------------------------------------------------------------------------------------
def model_value(record: Mapping[str, Any], field: str) -> Any:
    """The model's value for ``field`` in an item record: ``grades[field]["id"]``, else
    ``attributes[field]["id"]``; ``category`` → ``category["id"]``, ``object_type`` → ``object_type``,
    ``route`` → ``route["decision"]``, ``brand`` → ``brand``. ``None`` when the record has none."""
    grade = (record.get("grades") or {}).get(field)
    if isinstance(grade, Mapping) and grade.get("id") is not None:
        return grade["id"]
    attribute = (record.get("attributes") or {}).get(field)
    if isinstance(attribute, Mapping) and attribute.get("id") is not None:
        return attribute["id"]
    path = _TOP_LEVEL_MODEL_FIELDS.get(field)
    if path is None:
        return None
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def model_table(records: Iterable[Mapping[str, Any]], *, name: str = "model") -> pd.DataFrame:
    """Item records → a table like :func:`annotation_table` with a column for every field the records
    carry a single value for (grades, scalar attributes, category, object type, route, brand)."""
    from fashionlens.grading.item import ITEM_SCHEMA, ITEM_SCHEMAS_READ

    rows: dict[str, dict[str, str | None]] = {}
    for n, record in enumerate(records, 1):
        if not isinstance(record, Mapping):
            raise AgreementInputError(f"{name}: record {n}: expected a JSON object; got {type(record).__name__}")
        schema = record.get("schema", ITEM_SCHEMA)
        if schema not in ITEM_SCHEMAS_READ:
            raise AgreementInputError(f"{name}: record {n}: expected schema "
                                      f"{' or '.join(map(repr, ITEM_SCHEMAS_READ))}; got {schema!r}")
        item_id = _normalise_id(record.get("item_id"))
        if item_id is None:
            raise AgreementInputError(f"{name}: record {n}: expected an item_id; got {record.get('item_id')!r}")
        if item_id in rows:
            raise AgreementInputError(f"{name}: expected each item_id once; {item_id!r} repeats (record {n})")
        keys = set(record.get("grades") or {}) | set(_TOP_LEVEL_MODEL_FIELDS)
        keys |= {k for k, v in (record.get("attributes") or {}).items() if isinstance(v, Mapping)}
        row = {}
        for key in keys:
            try:
                row[_normalise_column(key)] = normalise_value(model_value(record, key))
            except AgreementInputError:
                row[_normalise_column(key)] = None  # list-valued (e.g. colours): not a single grade
        rows[item_id] = row
    frame = pd.DataFrame.from_dict(rows, orient="index", dtype=object)
    frame.index.name = "item_id"
    return frame.astype(object).where(frame.notna(), None)


def read_model_predictions(path: str | Path) -> pd.DataFrame:
    """Read ``fashionlens/item/v1`` or ``v2`` records (JSON lines; blank lines skipped) into a :func:`model_table`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model predictions file not found: {path}")
    records = []
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise AgreementInputError(f"{path}: line {n}: expected one JSON item record per line ({exc})") \
                        from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AgreementInputError(f"{path}: could not read the file ({exc})") from exc
    if not records:
        raise AgreementInputError(f"{path}: expected fashionlens/item/v1 or v2 records, one per line; the file has none")
    return model_table(records, name=str(path))


# --- statistics ---------------------------------------------------------------------------------------
def _weight_matrix(k: int, weights: str | None) -> np.ndarray:
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if weights == "quadratic":
        return (i - j).astype(np.float64) ** 2
    if weights == "linear":
        return np.abs(i - j).astype(np.float64)
    return (i != j).astype(np.float64)


def _kappa(a: np.ndarray, b: np.ndarray, k: int, weights: str | None) -> float | None:
    """Cohen's kappa of two code vectors through scikit-learn; ``None`` where it is undefined (both
    raters used one and the same value, or no items)."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) == 0 or (len(np.unique(a)) == 1 and np.array_equal(np.unique(a), np.unique(b))):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(a, b, labels=list(range(k)), weights=weights)
    return float(value) if np.isfinite(value) else None


def _kappa_batch(a: np.ndarray, b: np.ndarray, k: int, weights: str | None) -> np.ndarray:
    """Kappa of many resamples at once: ``a``, ``b`` are ``(resamples, items)`` codes (NaN where undefined).
    Same formula as scikit-learn's; used for the bootstrap only."""
    w = _weight_matrix(k, weights)
    r, n = a.shape
    observed = w[a, b].mean(1)
    rows = np.repeat(np.arange(r), n)
    pa = np.zeros((r, k))
    pb = np.zeros((r, k))
    np.add.at(pa, (rows, a.ravel()), 1.0 / n)
    np.add.at(pb, (rows, b.ravel()), 1.0 / n)
    expected = np.einsum("ri,ij,rj->r", pa, w, pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1.0 - observed / expected, np.nan)


def _alpha(codes: np.ndarray, k: int, level: str) -> float | None:
    """Krippendorff's alpha of a ``(raters, items)`` code matrix (NaN = missing)."""
    import krippendorff

    pairable = (np.sum(~np.isnan(codes), axis=0) >= 2)
    used = np.unique(codes[:, pairable][~np.isnan(codes[:, pairable])])
    if pairable.sum() == 0 or len(used) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = krippendorff.alpha(reliability_data=codes[:, pairable], value_domain=list(range(k)),
                                   level_of_measurement=level)
    return float(value) if np.isfinite(value) else None


# --- value domains ------------------------------------------------------------------------------------
def _band_key(value: str) -> tuple[float, float] | None:
    numbers = [float(x.replace(",", ".")) for x in _BAND_NUMBER.findall(value)]
    if not numbers or len(numbers) > 2:
        return None
    if len(numbers) == 2:
        return (numbers[0], numbers[1]) if numbers[0] <= numbers[1] else None
    x = numbers[0]
    if value.startswith(_BELOW):
        return (-math.inf, x)
    if value.endswith("+") or value.startswith(_ABOVE):
        return (x, math.inf)
    return (x, x)


def _ordered_domain(values: set[str]) -> tuple[list[str] | None, str]:
    """The order of a field's values, or ``None`` and the reason when they are not ordered numbers/bands."""
    if all(_NUMBER.fullmatch(v) for v in values):
        numbers = sorted(float(v) for v in values)
        if all(x.is_integer() for x in numbers) and numbers[-1] - numbers[0] <= _FILL_INTEGER_SPAN:
            return [_number_text(float(x)) for x in range(int(numbers[0]), int(numbers[-1]) + 1)], "integer scale"
        return sorted(values, key=float), "numbers"
    keys = {v: _band_key(v) for v in values}
    unordered = sorted(v for v, key in keys.items() if key is None)
    if unordered:
        return None, f"values such as {_few(unordered, 3)} are not numbers or bands"
    by_key: dict[tuple[float, float], list[str]] = {}
    for v, key in keys.items():
        by_key.setdefault(key, []).append(v)  # type: ignore[arg-type]
    ties = [sorted(vs) for vs in by_key.values() if len(vs) > 1]
    if ties:
        return None, f"values {ties[0]} have the same position"
    return sorted(values, key=lambda v: keys[v]), "bands"  # type: ignore[arg-type, return-value]


def _ordinal_spec(ordinal: Iterable[str] | Mapping[str, Sequence[Any] | None] | None
                  ) -> tuple[dict[str, list[str] | None], bool]:
    """``{field: explicit order or None}`` and whether the fields came from the caller."""
    if ordinal is None:
        return {f: None for f in DEFAULT_ORDINAL_FIELDS}, False
    if isinstance(ordinal, str):
        ordinal = [f for f in ordinal.split(",") if f.strip()]
    if isinstance(ordinal, Mapping):
        spec: dict[str, list[str] | None] = {}
        for field, order in ordinal.items():
            if order is None:
                spec[_normalise_column(field)] = None
                continue
            values = [normalise_value(v) for v in order]
            if any(v is None for v in values) or len(set(values)) != len(values):
                raise AgreementInputError(f"ordinal order of {field!r}: expected distinct non-empty values; got "
                                          f"{list(order)}")
            spec[_normalise_column(field)] = values  # type: ignore[assignment]
        return spec, True
    return {_normalise_column(f): None for f in ordinal}, True


# --- the report ---------------------------------------------------------------------------------------
def _as_tables(tables: Mapping[str, pd.DataFrame | str | Path] | Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    if isinstance(tables, Mapping):
        items = list(tables.items())
    elif isinstance(tables, str | Path):
        raise AgreementInputError("expected two or more annotation tables (a list of paths or a name → table "
                                  f"mapping); got one path {str(tables)!r}")
    else:
        paths = [Path(p) for p in tables]
        stems = [p.stem for p in paths]
        names = stems if len(set(stems)) == len(stems) else [str(p) for p in paths]
        if len(set(names)) != len(names):
            raise AgreementInputError(f"expected different annotation files; got {[str(p) for p in paths]}")
        items = list(zip(names, paths, strict=True))
    if len(items) < 2:
        raise AgreementInputError(f"expected two or more annotation tables; got {len(items)}")
    out = {}
    for name, table in items:
        name = str(name)
        if name == MODEL_NAME:
            raise AgreementInputError(f"annotator name {MODEL_NAME!r} is reserved for the model's predictions")
        out[name] = read_annotations(table) if isinstance(table, str | Path) else annotation_table(table, name=name)
    return out


def _as_model(model: pd.DataFrame | str | Path | Iterable[Mapping[str, Any]] | None) -> pd.DataFrame | None:
    if model is None:
        return None
    if isinstance(model, str | Path):
        return read_model_predictions(model)
    if isinstance(model, pd.DataFrame):
        return annotation_table(model, name=MODEL_NAME)
    return model_table(model, name=MODEL_NAME)


def _few(values: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:n])
    return shown + (f", … ({len(values)} in all)" if len(values) > n else "")


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def _mean(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return float(np.mean(vs)) if vs else None


def _verdict(model_kappa: float | None, human_kappa: float | None, margin: float) -> tuple[str, str]:
    if model_kappa is None or human_kappa is None:
        return "undefined", "undefined: a kappa is missing (too few items or only one value used)"
    d = model_kappa - human_kappa
    if d >= margin:
        return "above_human", "model agrees with annotators better than they agree with each other"
    if d >= -margin:
        return "on_par", "model agrees with annotators about as well as they agree with each other"
    return "below_human", "below human agreement"


def _overlapping_items(all_ids: Mapping[str, set]) -> set:
    """The item ids rated by at least two annotators; raises AgreementInputError when there are none."""
    overlap_any = set().union(*(ids_a & ids_b for ids_a, ids_b in itertools.combinations(all_ids.values(), 2)))
    if not overlap_any:
        raise AgreementInputError("expected items rated by at least two annotators; no item_id is in more than one "
                                  "table (" + "; ".join(f"{n}: {len(i)} items, e.g. {_few(sorted(i), 3)}"
                                                         for n, i in all_ids.items()) + ")")
    return overlap_any


def _check_model_items(predictions: pd.DataFrame, all_ids: Mapping[str, set], overlap_any: set,
                       notes: list[str]) -> None:
    """Raise AgreementInputError when no model record is of an annotated item; note the unmatched ones."""
    matched = set(predictions.index) & set().union(*all_ids.values())
    if not matched:
        raise AgreementInputError(
            f"expected model records for the annotated items; none of the {len(predictions)} model item_ids "
            f"(e.g. {_few(sorted(predictions.index), 3)}) is in an annotation table "
            f"(e.g. {_few(sorted(overlap_any), 3)})")
    unmatched = sorted(set(predictions.index) - matched)
    if unmatched:
        notes.append(f"{len(unmatched)} model records match no annotated item (e.g. {_few(unmatched, 3)})")


def _candidate_fields(columns: Mapping[str, set], fields: Sequence[str] | None) -> list[str]:
    """The fields to compare: those given (normalised, in order), else every annotator column, sorted."""
    if fields is None:
        return sorted({f for cols in columns.values() for f in cols})
    candidates = list(dict.fromkeys(_normalise_column(f) for f in fields))
    if not candidates:
        raise AgreementInputError("expected at least one field to compare; got an empty field list")
    return candidates


def _compare_fields(candidates: Sequence[str], humans: Mapping[str, pd.DataFrame], columns: Mapping[str, set],
                    predictions: pd.DataFrame | None, ordinal_spec: dict[str, list[str] | None], *,
                    margin: float, bootstrap: int, seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    """``(results by field, why each skipped field was skipped)``; a field needs two or more annotators."""
    names = list(humans)
    report_fields: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for field in candidates:
        raters = [n for n in names if field in columns[n]]
        if len(raters) < 2:
            skipped[field] = (f"only in {raters[0]}" if raters else "in no annotation table") + \
                "; a field needs at least two annotators"
            continue
        result = _field_agreement(field, {n: humans[n][field] for n in raters}, predictions, ordinal_spec,
                                  margin=margin, bootstrap=bootstrap, seed=seed)
        missing_in = [n for n in names if n not in raters]
        if missing_in:
            result["notes"].insert(0, f"not in {missing_in}: compared among {raters}")
        report_fields[field] = result
    return report_fields, skipped


def _items_summary(all_ids: Mapping[str, set], overlap_any: set, predictions: pd.DataFrame | None) -> dict[str, Any]:
    """The report's ``items`` counts: per annotator, rated by all, by two or more, and the model's."""
    in_all = set.intersection(*all_ids.values())
    return {
        "per_annotator": {n: len(i) for n, i in all_ids.items()},
        "rated_by_all": len(in_all),
        "rated_by_two_or_more": len(overlap_any),
        **({"model": len(predictions),
            "model_matched": len(set(predictions.index) & set().union(*all_ids.values()))}
           if predictions is not None else {}),
    }


def agreement_report(tables: Mapping[str, pd.DataFrame | str | Path] | Sequence[str | Path], *,
                     model: pd.DataFrame | str | Path | Iterable[Mapping[str, Any]] | None = None,
                     fields: Sequence[str] | None = None,
                     ordinal: Iterable[str] | Mapping[str, Sequence[Any] | None] | None = None,
                     margin: float = VERDICT_MARGIN, bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
    """Agreement between two or more annotators, per field, and of the model with them.

    ``tables``: annotator name → DataFrame (or CSV path), or a list of CSV paths (named by file stem).
    ``model``: item records (JSONL path, iterable of dicts) or a table like the annotators'.
    ``fields``: the fields to compare (default: every field at least two annotators have).
    ``ordinal``: fields compared with quadratic-weighted kappa and ordinal alpha (default
    :data:`DEFAULT_ORDINAL_FIELDS`); a mapping ``{field: [lowest, …, highest]}`` gives explicit orders.
    Without an explicit order a field's values must be numbers or bands (``"<100"``, ``"100-200"``,
    ``"500+"``); otherwise it is compared as nominal and a note says why.
    ``bootstrap``: resamples of the paired bootstrap interval of the model-minus-human kappa difference
    (0 = none). Returns a plain-JSON dict (schema :data:`AGREEMENT_SCHEMA`).
    """
    if bootstrap < 0:
        raise AgreementInputError(f"bootstrap: expected 0 (none) or a number of resamples; got {bootstrap}")
    humans = _as_tables(tables)
    names = list(humans)
    predictions = _as_model(model)
    notes: list[str] = []

    all_ids = {n: set(t.index) for n, t in humans.items()}
    overlap_any = _overlapping_items(all_ids)
    if predictions is not None:
        _check_model_items(predictions, all_ids, overlap_any, notes)

    columns = {n: set(t.columns) for n, t in humans.items()}
    candidates = _candidate_fields(columns, fields)
    ordinal_spec, ordinal_given = _ordinal_spec(ordinal)
    unknown = sorted(set(ordinal_spec) - set(candidates))
    if ordinal_given and unknown:
        notes.append(f"ordinal fields not compared: {unknown}")

    report_fields, skipped = _compare_fields(candidates, humans, columns, predictions, ordinal_spec,
                                             margin=margin, bootstrap=bootstrap, seed=seed)
    for field, why in skipped.items():
        notes.append(f"field {field!r} skipped: {why}")
    if not report_fields:
        raise AgreementInputError("expected at least one field that two or more annotation tables share; "
                                  + "; ".join(f"{f}: {why}" for f, why in skipped.items()))

    primary = "cohen_kappa" if len(names) == 2 else "krippendorff_alpha"
    return {
        "schema": AGREEMENT_SCHEMA,
        "annotators": names,
        "model": MODEL_NAME if predictions is not None else None,
        "primary_statistic": primary,
        "primary_statistic_why": ("two annotators: Cohen's kappa of the pair (Krippendorff's alpha given too)"
                                  if primary == "cohen_kappa" else
                                  f"{len(names)} annotators: Krippendorff's alpha is the agreement of the whole "
                                  "group (pairwise kappas are shown for detail)"),
        "items": _items_summary(all_ids, overlap_any, predictions),
        "verdict_rule": VERDICT_RULE.format(m=margin) if predictions is not None else None,
        "summary": [_summary_row(f, r) for f, r in report_fields.items()],
        "fields": report_fields,
        "skipped_fields": skipped,
        "notes": notes,
    }


def _summary_row(field: str, result: Mapping[str, Any]) -> dict[str, Any]:
    model = result["model"] or {}
    return {"field": field, "level": result["level"], "n_items_all": result["n_items_all"],
            "percent_agreement": result["percent_agreement"], "human_kappa_mean": result["human_kappa_mean"],
            "alpha": result["alpha"], "model_kappa_mean": model.get("kappa_mean"),
            "model_verdict": model.get("verdict_text")}


def _model_column(field: str, predictions: pd.DataFrame | None, index: pd.Index,
                  notes: list[str]) -> pd.Series | None:
    """The model's value of ``field`` per item of ``index`` (None = no value), or None (noted) when it has none."""
    if predictions is None:
        return None
    if field not in predictions.columns:
        notes.append(f"the model records carry no {field!r} (grades, attributes, category, object_type)")
        return None
    model_col = predictions[field].reindex(index)
    model_col = model_col.astype(object).where(model_col.notna(), None)
    if model_col.isna().all():
        notes.append(f"the model has no value for {field!r} on the annotated items")
        return None
    return model_col


def _field_domain(field: str, values: set[str], ordinal_spec: dict[str, list[str] | None],
                  notes: list[str]) -> tuple[list[str], str]:
    """``(values in code order, "ordinal" or "nominal")`` of a field; a given order must hold every value."""
    level = "nominal"
    domain: list[str] = sorted(values)
    if field in ordinal_spec:
        explicit = ordinal_spec[field]
        if explicit is not None:
            outside = sorted(values - set(explicit))
            if outside:
                raise AgreementInputError(f"{field}: values {_few(outside, 3)} are not in the given order "
                                          f"{' < '.join(explicit)}")
            domain, level = list(explicit), "ordinal"
        elif values:
            ordered, why = _ordered_domain(values)
            if ordered is None:
                notes.append(f"compared as nominal: {why}")
            else:
                domain, level = ordered, "ordinal"
    return domain, level


def _pair_agreements(field: str, coded: dict[str, np.ndarray], k: int, level: str, domain: list[str],
                     notes: list[str]) -> list[dict[str, Any]]:
    """Percent agreement and kappa (weighted and unweighted when ordinal) of each pair of raters."""
    weights = "quadratic" if level == "ordinal" else None
    pairs = []
    for a, b in itertools.combinations(list(coded), 2):
        both = ~np.isnan(coded[a]) & ~np.isnan(coded[b])
        ca, cb = coded[a][both].astype(int), coded[b][both].astype(int)
        pair: dict[str, Any] = {"a": a, "b": b, "n_items": int(both.sum()),
                                "percent_agreement": _r(float(np.mean(ca == cb))) if both.any() else None,
                                "kappa": _r(_kappa(ca, cb, k, weights))}
        if level == "ordinal":
            pair["kappa_unweighted"] = _r(_kappa(ca, cb, k, None))
        if not both.any():
            notes.append(f"{a} and {b} rated no {field!r} item in common")
        elif pair["kappa"] is None:
            notes.append(f"kappa {a}–{b} undefined: both used only the value {domain[ca[0]]!r}")
        pairs.append(pair)
    return pairs


def _field_agreement(field: str, columns: dict[str, pd.Series], predictions: pd.DataFrame | None,
                     ordinal_spec: dict[str, list[str] | None], *, margin: float, bootstrap: int,
                     seed: int) -> dict[str, Any]:
    notes: list[str] = []
    raters = list(columns)
    frame = pd.DataFrame(columns)  # union of the raters' item ids; NaN where an annotator has no row
    frame = frame.astype(object).where(frame.notna(), None)
    model_col = _model_column(field, predictions, frame.index, notes)

    values = {v for c in frame.columns for v in frame[c] if v is not None}
    if model_col is not None:
        values |= {v for v in model_col if v is not None}
    domain, level = _field_domain(field, values, ordinal_spec, notes)
    weights = "quadratic" if level == "ordinal" else None
    code = {v: i for i, v in enumerate(domain)}
    k = max(len(domain), 1)

    def codes(series: pd.Series) -> np.ndarray:
        return np.array([np.nan if v is None else code[v] for v in series], dtype=np.float64)

    coded = {n: codes(frame[n]) for n in raters}
    rated_all = np.all([~np.isnan(c) for c in coded.values()], axis=0)
    stacked = np.vstack([coded[n][rated_all] for n in raters])
    pct_all = float(np.mean(np.all(stacked == stacked[0], axis=0))) if rated_all.any() else None
    pairs = _pair_agreements(field, coded, k, level, domain, notes)

    matrix = np.vstack([coded[n] for n in raters])
    alpha = _alpha(matrix, k, level)
    if alpha is None:
        notes.append("Krippendorff's alpha undefined: fewer than two values among items rated twice or more")
    result: dict[str, Any] = {
        "level": level,
        "kappa_weights": weights or "none",
        "values": domain,
        "annotators": raters,
        "n_items_all": int(rated_all.sum()),
        "percent_agreement": _r(pct_all),
        "pairs": pairs,
        "human_kappa_mean": _r(_mean(p["kappa"] for p in pairs)),
        "alpha": _r(alpha),
        "alpha_level": level,
        "alpha_n_items": int(np.sum(np.sum(~np.isnan(matrix), axis=0) >= 2)),
        "model": None,
        "notes": notes,
    }
    if model_col is not None:
        result["model"] = _model_agreement(field, coded, codes(model_col), k, weights, margin=margin,
                                           bootstrap=bootstrap, seed=seed, notes=notes, domain=domain)
    return result


def _model_agreement(field: str, coded: dict[str, np.ndarray], model_codes: np.ndarray, k: int,
                     weights: str | None, *, margin: float, bootstrap: int, seed: int, notes: list[str],
                     domain: list[str]) -> dict[str, Any]:
    raters = list(coded)
    common = ~np.isnan(model_codes) & np.all([~np.isnan(c) for c in coded.values()], axis=0)
    n = int(common.sum())
    m = model_codes[common].astype(int)
    h = {r: coded[r][common].astype(int) for r in raters}
    kappa = {r: _kappa(m, h[r], k, weights) for r in raters}
    pct = {r: float(np.mean(m == h[r])) if n else None for r in raters}
    human_pairs = {f"{a}–{b}": _kappa(h[a], h[b], k, weights) for a, b in itertools.combinations(raters, 2)}
    model_mean = _mean(kappa.values()) if all(v is not None for v in kappa.values()) else None
    human_mean = _mean(human_pairs.values()) if all(v is not None for v in human_pairs.values()) else None
    code, text = _verdict(model_mean, human_mean, margin)
    if n == 0:
        notes.append(f"no item has {field!r} from every annotator and the model: no model comparison")
    out: dict[str, Any] = {
        "n_items": n,
        "kappa": {r: _r(v) for r, v in kappa.items()},
        "kappa_mean": _r(model_mean),
        "percent_agreement": {r: _r(v) for r, v in pct.items()},
        "human_kappa_same_items": {p: _r(v) for p, v in human_pairs.items()},
        "human_kappa_mean_same_items": _r(human_mean),
        "difference": _r(model_mean - human_mean) if model_mean is not None and human_mean is not None else None,
        "verdict": code,
        "verdict_text": text,
    }
    if bootstrap and n >= 2 and code != "undefined":
        lo, hi, used = _bootstrap_difference(m, h, k, weights, resamples=bootstrap, seed=seed)
        out["difference_ci95"] = [_r(lo), _r(hi)] if used else None
        out["bootstrap"] = {"resamples": bootstrap, "defined": used, "seed": seed}
    return out


def _bootstrap_difference(m: np.ndarray, h: dict[str, np.ndarray], k: int, weights: str | None, *,
                          resamples: int, seed: int) -> tuple[float, float, int]:
    """Percentile 95 % interval of (mean model–annotator kappa − mean annotator–annotator kappa) over
    ``resamples`` resamplings of the items (paired: all kappas on the same resampled items)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(m), size=(resamples, len(m)))
    raters = list(h)
    model_k = np.mean([_kappa_batch(m[idx], h[r][idx], k, weights) for r in raters], axis=0)
    human_k = np.mean([_kappa_batch(h[a][idx], h[b][idx], k, weights)
                       for a, b in itertools.combinations(raters, 2)], axis=0)
    d = model_k - human_k
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan, math.nan, 0
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi), len(d)


# --- outputs ------------------------------------------------------------------------------------------
def plot_agreement(report: Mapping[str, Any], path: str | Path) -> Path:
    """Bar chart of kappa per field: mean annotator–annotator kappa next to mean model–annotator kappa
    (when the report has a model) and Krippendorff's alpha (when there are more than two annotators).
    Written as PNG with matplotlib's Agg renderer (no display needed)."""
    from matplotlib.figure import Figure

    fields = list(report["fields"])
    series: list[tuple[str, list[float | None], str]] = [
        ("annotator–annotator κ (mean)", [report["fields"][f]["human_kappa_mean"] for f in fields], "#4c72b0")]
    if report.get("model"):
        series.append(("model–annotator κ (mean)",
                       [(report["fields"][f]["model"] or {}).get("kappa_mean") for f in fields], "#dd8452"))
    if len(report["annotators"]) > 2:
        series.append(("Krippendorff’s α", [report["fields"][f]["alpha"] for f in fields], "#55a868"))
    fig = Figure(figsize=(max(6.4, 1.5 + 0.5 * len(fields) * len(series)), 3.8), dpi=110)
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    x = np.arange(len(fields))
    for s, (label, values, colour) in enumerate(series):
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(x + (s - (len(series) - 1) / 2) * width, heights, width, label=label, color=colour)
        for bar, v in zip(bars, values, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0) + 0.02,
                    "n/a" if v is None else f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, [f"{f}\n({report['fields'][f]['level']})" for f in fields], fontsize=8)
    ax.set_ylim(min(-0.1, *[v for _, vs, _ in series for v in vs if v is not None] or [0]) - 0.05, 1.35)
    ax.set_ylabel("agreement (1 = perfect, 0 = chance)")
    ax.set_title(f"Agreement per field: {', '.join(report['annotators'])}" +
                 (" vs the model" if report.get("model") else ""), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncol=len(series), frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_agreement(report: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``agreement.json`` and ``agreement_kappa.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "agreement.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"json": json_path, "png": plot_agreement(report, out / "agreement_kappa.png")}
