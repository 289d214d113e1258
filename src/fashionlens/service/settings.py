"""Service settings: one typed, validated dataclass, built in code or from ``FASHIONLENS_*`` variables.

Every limit the service applies lives here. Safe defaults: no CORS, no stored uploads, no API keys
(open: set keys for anything beyond loopback), loopback host in the CLI.

Environment variables read by :meth:`ServiceSettings.from_env` (what ``fashionlens serve`` sets for
its workers, so every worker process builds the same settings). Each but ``FASHIONLENS_API_KEYS``
is also a ``fashionlens serve`` option (``cli/serve.py``), which overrides the variable:

========================================  =====================================================
``FASHIONLENS_API_KEYS``                  comma-separated API keys (empty: auth off)
``FASHIONLENS_API_KEYS_FILE``             a file with one key per line (``#`` comments)
``FASHIONLENS_INDEX``                     garment index folder for ``/v1/search``
``FASHIONLENS_TRENDS``                    ``name=path[,path...]`` datasets, ``;``-separated
``FASHIONLENS_STORAGE``                   keep uploaded photos in this folder (off when unset)
``FASHIONLENS_CORS_ORIGINS``              comma-separated allowed origins (off when unset)
``FASHIONLENS_MAX_UPLOAD_BYTES``          largest photo (bytes)
``FASHIONLENS_MAX_REQUEST_BYTES``         largest request body (bytes)
``FASHIONLENS_MAX_PIXELS``                largest ``width × height`` (checked before decoding)
``FASHIONLENS_MAX_FILES``                 most photos per request
``FASHIONLENS_CONCURRENCY``               model calls running at once per worker
``FASHIONLENS_QUEUE``                     requests waiting for a slot before 503
``FASHIONLENS_TIMEOUT``                   seconds a request may wait + run before 504
``FASHIONLENS_THREADS``                   inference threads per model call
``FASHIONLENS_STATIC_DIR``                folder served at ``/app`` (web pages, no CDN)
``FASHIONLENS_CORRECTIONS_DB``            SQLite file of sorters' corrections (``POST /v1/corrections``; off when unset)
``FASHIONLENS_REVIEW_DB``                 SQLite review store behind ``/review`` and ``/v1/review`` (off when unset)
``FASHIONLENS_RETRY_AFTER``               seconds in ``Retry-After`` of a 503 (queue full, models loading)
``FASHIONLENS_CLASSIFIER``                classifier weights, a shipped name or a file (the shipped one when unset)
``FASHIONLENS_DETECTOR``                  detector weights, a shipped name or a file (the shipped one when unset)
``FASHIONLENS_PRECISION``                 operating point of ``/v1/grade``: a target precision in (0, 1], or ``off``
``FASHIONLENS_KEEP_UNCERTAIN``            ``1``/``true``: unsure fields of ``/v1/grade`` keep their best guess
========================================  =====================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ServiceSettings", "SettingsError", "parse_precision", "parse_trends", "read_api_keys_file"]

ENV_PREFIX = "FASHIONLENS_"


class SettingsError(ValueError):
    """A setting has an impossible value; the message names it, what was expected and what came."""


@dataclass(frozen=True)
class ServiceSettings:
    """Limits, auth and data locations of one service process.

    ``trends`` maps a dataset name to its input files (StreetStyle CSVs, or tag-result JSONL + one
    post-metadata table — as ``fashionlens trends report`` takes them).
    """

    max_upload_bytes: int = 15 * 2**20
    max_request_bytes: int = 40 * 2**20
    max_pixels: int = 40_000_000
    max_files: int = 8
    concurrency: int = 2
    queue_size: int = 8
    request_timeout_s: float = 30.0
    retry_after_s: int = 1
    threads: int = 1
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    cors_origins: tuple[str, ...] = ()
    storage_dir: Path | None = None
    index_dir: Path | None = None
    trends: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    static_dir: Path | None = None
    corrections_db: Path | None = None
    review_db: Path | None = None
    classifier_weights: str | None = None
    detector_weights: str | None = None
    precision: float | None = 0.90
    keep_uncertain: bool = False
    preload: bool = True

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_request_bytes", "max_pixels", "max_files", "concurrency",
                     "retry_after_s", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingsError(f"{name}: expected an integer >= 1; got {value!r}")
        if not isinstance(self.queue_size, int) or self.queue_size < 0:
            raise SettingsError(f"queue_size: expected an integer >= 0; got {self.queue_size!r}")
        if not self.request_timeout_s > 0:
            raise SettingsError(f"request_timeout_s: expected a number > 0; got {self.request_timeout_s!r}")
        if self.precision is not None and (isinstance(self.precision, bool) or not isinstance(self.precision, int | float)
                                           or not 0.0 < self.precision <= 1.0):
            raise SettingsError(f"precision: expected a number in (0, 1] or None (off); got {self.precision!r}")
        if not isinstance(self.keep_uncertain, bool):
            raise SettingsError(f"keep_uncertain: expected true or false; got {self.keep_uncertain!r}")
        if self.max_request_bytes < self.max_upload_bytes:
            raise SettingsError(f"max_request_bytes: expected >= max_upload_bytes ({self.max_upload_bytes}); "
                                f"got {self.max_request_bytes}")
        bad = [k for k in self.api_keys if not k or k != k.strip() or len(k) < 8]
        if bad:
            raise SettingsError(f"api_keys: expected keys of at least 8 characters without surrounding spaces; "
                                f"got {len(bad)} that are not")
        for name, value in self.trends.items():
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise SettingsError(f"trends: expected dataset names of letters, digits, '-' and '_'; got {name!r}")
            if not value:
                raise SettingsError(f"trends: dataset {name!r} has no input files")

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServiceSettings:
        """Settings from ``FASHIONLENS_*`` variables (see the module docstring); ``overrides`` win."""
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {}

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value.strip() if value is not None and value.strip() else None

        ints = {"MAX_UPLOAD_BYTES": "max_upload_bytes", "MAX_REQUEST_BYTES": "max_request_bytes",
                "MAX_PIXELS": "max_pixels", "MAX_FILES": "max_files", "CONCURRENCY": "concurrency",
                "QUEUE": "queue_size", "THREADS": "threads", "RETRY_AFTER": "retry_after_s"}
        for var, attr in ints.items():
            if (raw := get(var)) is not None:
                try:
                    kw[attr] = int(raw)
                except ValueError:
                    raise SettingsError(f"{ENV_PREFIX}{var}: expected an integer; got {raw!r}") from None
        if (raw := get("TIMEOUT")) is not None:
            try:
                kw["request_timeout_s"] = float(raw)
            except ValueError:
                raise SettingsError(f"{ENV_PREFIX}TIMEOUT: expected seconds (a number); got {raw!r}") from None
        keys = [k.strip() for k in (get("API_KEYS") or "").split(",") if k.strip()]
        if (path := get("API_KEYS_FILE")) is not None:
            keys += read_api_keys_file(path)
        kw["api_keys"] = tuple(dict.fromkeys(keys))
        if (raw := get("CORS_ORIGINS")) is not None:
            kw["cors_origins"] = tuple(o.strip() for o in raw.split(",") if o.strip())
        for var, attr in (("STORAGE", "storage_dir"), ("INDEX", "index_dir"), ("STATIC_DIR", "static_dir"),
                      ("CORRECTIONS_DB", "corrections_db"), ("REVIEW_DB", "review_db")):
            if (raw := get(var)) is not None:
                kw[attr] = Path(raw)
        if (raw := get("TRENDS")) is not None:
            kw["trends"] = parse_trends(raw)
        for var, attr in (("CLASSIFIER", "classifier_weights"), ("DETECTOR", "detector_weights")):
            if (raw := get(var)) is not None:
                kw[attr] = raw
        if (raw := get("PRECISION")) is not None:
            kw["precision"] = parse_precision(raw, f"{ENV_PREFIX}PRECISION")
        if (raw := get("KEEP_UNCERTAIN")) is not None:
            if raw.lower() not in _BOOLEANS:
                raise SettingsError(f"{ENV_PREFIX}KEEP_UNCERTAIN: expected 1/true/yes or 0/false/no; got {raw!r}")
            kw["keep_uncertain"] = _BOOLEANS[raw.lower()]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s) {unknown}; expected some of {sorted(known)}")
        return cls(**{**kw, **overrides})

    def to_env(self) -> dict[str, str]:
        """The ``FASHIONLENS_*`` variables that rebuild these settings in another process (API keys
        included: pass them through the environment, never the command line)."""
        env = {"MAX_UPLOAD_BYTES": self.max_upload_bytes, "MAX_REQUEST_BYTES": self.max_request_bytes,
               "MAX_PIXELS": self.max_pixels, "MAX_FILES": self.max_files, "CONCURRENCY": self.concurrency,
               "QUEUE": self.queue_size, "TIMEOUT": self.request_timeout_s, "THREADS": self.threads,
               "RETRY_AFTER": self.retry_after_s, "API_KEYS": ",".join(self.api_keys),
               "CORS_ORIGINS": ",".join(self.cors_origins), "STORAGE": self.storage_dir or "",
               "INDEX": self.index_dir or "", "STATIC_DIR": self.static_dir or "",
               "CORRECTIONS_DB": self.corrections_db or "", "REVIEW_DB": self.review_db or "",
               "TRENDS": ";".join(f"{k}={','.join(str(p) for p in v)}" for k, v in self.trends.items()),
               "CLASSIFIER": self.classifier_weights or "", "DETECTOR": self.detector_weights or "",
               "PRECISION": "off" if self.precision is None else f"{self.precision:g}",
               "KEEP_UNCERTAIN": "1" if self.keep_uncertain else "0"}
        return {ENV_PREFIX + k: str(v) for k, v in env.items()}


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def parse_precision(text: str, where: str = "precision") -> float | None:
    """``"0.9"`` → 0.9; ``"off"`` → None (no operating point); anything else is a :class:`SettingsError`."""
    from fashionlens.models.calibration import parse_precision as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise SettingsError(f"{where}: {exc}") from None


def parse_trends(text: str) -> dict[str, tuple[Path, ...]]:
    """``"street=a.csv,b.csv;tagged=results.jsonl,posts.csv"`` → ``{name: (paths...)}``."""
    out: dict[str, tuple[Path, ...]] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, paths = part.partition("=")
        if not sep or not name.strip() or not paths.strip():
            raise SettingsError(f"trends: expected NAME=PATH[,PATH...]; got {part!r}")
        if name.strip() in out:
            raise SettingsError(f"trends: dataset {name.strip()!r} given twice")
        out[name.strip()] = tuple(Path(p.strip()) for p in paths.split(",") if p.strip())
    return out


def read_api_keys_file(path: str | os.PathLike[str]) -> list[str]:
    """API keys, one per line; blank lines and ``#`` comments ignored."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise SettingsError(f"API keys file {p}: expected a readable text file; {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
