"""Command line for the HTTP service (issue 7): ``fashionlens serve``. Parses arguments, starts uvicorn.

Every ``FASHIONLENS_*`` setting of :mod:`fashionlens.service.settings` has an option here
(:data:`SETTING_OPTIONS`) except ``FASHIONLENS_API_KEYS``: API keys are never taken on the command
line (it is visible to other users): set the variable or pass ``--api-keys-file``. Precedence: an
option given on the command line, else the environment variable, else the default that ``--help``
shows (the :class:`~fashionlens.service.settings.ServiceSettings` default). The resulting settings
become ``FASHIONLENS_*`` variables again, so that every uvicorn worker process builds the same
settings through ``fashionlens.service.app:create_app_from_env``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_MIB = 2**20


@dataclass(frozen=True)
class SettingOption:
    """One ``serve`` option that sets a ``FASHIONLENS_<env>`` setting."""

    flag: str
    env: str                               # the variable's name without FASHIONLENS_
    help: str
    default: str                           # the default as --help shows it
    metavar: str | None = None
    type: Callable[[str], Any] = str
    repeat: str | None = None              # repeatable option: the separator joining its values
    to_env: Callable[[Any], str] = str     # the option's value → the variable's text
    switch: bool = False                   # a flag without a value: given = the variable set to "1"

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _mib_to_bytes(mb: float) -> str:
    return str(int(mb * _MIB))


def _precision_text(text: str) -> str:
    """``--precision``: a number in (0, 1] or ``off``, kept as its text (the variable's value)."""
    from fashionlens.cli.grading import precision_arg

    value = precision_arg(text)
    return "off" if value is None else f"{value:g}"


#: every FASHIONLENS_* setting but the API keys themselves, in --help order. The defaults shown are
#: ServiceSettings' (a test keeps them equal; the service is not imported here: it loads FastAPI,
#: which would slow every ``fashionlens`` command down)
SETTING_OPTIONS: tuple[SettingOption, ...] = (
    SettingOption("--index", "INDEX", "garment index folder for /v1/search", "none: search is off", "DIR"),
    SettingOption("--trends", "TRENDS", "a trends dataset (StreetStyle CSVs, or tag JSONL + post metadata); "
                  "repeatable", "none", "NAME=PATH[,PATH]", repeat=";"),
    SettingOption("--corrections-db", "CORRECTIONS_DB", "SQLite file of sorters' corrections (POST /v1/corrections; "
                  "created when missing)", "none: corrections are not saved", "FILE"),
    SettingOption("--review-db", "REVIEW_DB", "SQLite review store behind /review and /v1/review (created when "
                  "missing)", "none: /review is off", "FILE"),
    SettingOption("--storage", "STORAGE", "keep uploaded photos in this folder", "none: photos are not kept", "DIR"),
    SettingOption("--static", "STATIC_DIR", "serve this folder's files at /app", "none", "DIR"),
    SettingOption("--api-keys-file", "API_KEYS_FILE", "API keys, one per line, added to FASHIONLENS_API_KEYS "
                  "(keys are never taken on the command line)", "none: auth is off unless FASHIONLENS_API_KEYS is set",
                  "FILE"),
    SettingOption("--cors-origin", "CORS_ORIGINS", "allow this browser origin; repeatable", "none: CORS is off",
                  "ORIGIN", repeat=","),
    SettingOption("--classifier", "CLASSIFIER", "classifier weights: a shipped model's name or a file",
                  "the shipped classifier", "NAME|FILE"),
    SettingOption("--detector", "DETECTOR", "detector weights: a shipped model's name or a file",
                  "the shipped detector", "NAME|FILE"),
    SettingOption("--concurrency", "CONCURRENCY", "model calls running at once per worker", "2", "N", int),
    SettingOption("--queue", "QUEUE", "requests waiting for a model slot before 503 overloaded", "8", "N", int),
    SettingOption("--timeout", "TIMEOUT", "seconds a request may wait + run before 504 timeout", "30", "SECONDS",
                  float),
    SettingOption("--retry-after", "RETRY_AFTER", "seconds in Retry-After of a 503 (queue full, models loading)",
                  "1", "SECONDS", int),
    SettingOption("--threads", "THREADS", "inference threads per model call", "1", "N", int),
    SettingOption("--max-upload-mb", "MAX_UPLOAD_BYTES", "largest photo, in MiB (the variable is in bytes)", "15",
                  "MIB", float, to_env=_mib_to_bytes),
    SettingOption("--max-request-mb", "MAX_REQUEST_BYTES", "largest request body, in MiB (the variable is in "
                  "bytes; when set nowhere, at least the photo limit)", "40", "MIB", float, to_env=_mib_to_bytes),
    SettingOption("--max-pixels", "MAX_PIXELS", "largest width x height of a photo, checked before decoding "
                  "(decompression bombs)", "40000000", "N", int),
    SettingOption("--max-files", "MAX_FILES", "most photos in one request (more: 413 too_many_files)", "8", "N", int),
    SettingOption("--precision", "PRECISION", "operating point of /v1/grade: a classifier field or grade below the "
                  "threshold at which it reached precision P on validation is unsure (id null + candidates); 'off': "
                  "every field as sure; a request's ?precision= overrides it (docs/grading.md)", "0.9", "P|off",
                  _precision_text),
    SettingOption("--keep-uncertain", "KEEP_UNCERTAIN", "unsure fields of /v1/grade keep their best guess (still "
                  "marked uncertain); a request's ?keep_uncertain= overrides it", "no: unsure fields have id null",
                  switch=True, to_env=lambda _v: "1"),
)

ENV_PREFIX = "FASHIONLENS_"


class ServeHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default, once: a setting's default and its variable (``(default: 8; env
    FASHIONLENS_QUEUE)``), else argparse's default (``--port``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        shown = getattr(action, "shown_default", None)
        if shown is not None:
            env = getattr(action, "env", None)
            return f"{action.help} (default: {shown}" + (f"; env {env}" if env else "") + ")"
        return super()._get_help_string(action)


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Any:
    """The :class:`~fashionlens.service.settings.ServiceSettings` of ``serve``'s options: each option
    given overrides its ``FASHIONLENS_*`` variable of ``environ`` (default ``os.environ``); the
    others come from the variables or the defaults. Validated here, before any worker starts."""
    from fashionlens.service.settings import ServiceSettings

    env = dict(os.environ if environ is None else environ)
    for opt in SETTING_OPTIONS:
        value = getattr(args, opt.dest, None)
        if value is None:
            continue
        env[ENV_PREFIX + opt.env] = opt.repeat.join(value) if opt.repeat else opt.to_env(value)
    request_var = ENV_PREFIX + "MAX_REQUEST_BYTES"
    if args.max_upload_mb is not None and not (env.get(request_var) or "").strip():
        # the body must hold at least one photo: a larger photo limit raises an unset request limit
        env[request_var] = str(max(ServiceSettings().max_request_bytes, int(args.max_upload_mb * _MIB)))
    return ServiceSettings.from_env(env)


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)  # validates everything before a worker starts
    if args.write_openapi:
        from fashionlens.service.openapi import write_openapi

        write_openapi(args.write_openapi)
        print(f"fashionlens: wrote {args.write_openapi}", file=sys.stderr)
        return 0
    os.environ.update(settings.to_env())
    import uvicorn

    def opt_path(p: Any) -> str | None:
        return str(p) if p else None

    print(json.dumps({"serving": f"http://{args.host}:{args.port}", "workers": args.workers,
                      "auth": settings.auth_enabled, "index": opt_path(settings.index_dir),
                      "trends": sorted(settings.trends), "storage": opt_path(settings.storage_dir),
                      "corrections_db": opt_path(settings.corrections_db),
                      "review_db": opt_path(settings.review_db),
                      "grade_precision": "off" if settings.precision is None else settings.precision,
                      "keep_uncertain": settings.keep_uncertain}), file=sys.stderr)
    uvicorn.run("fashionlens.service.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info" if args.verbose_access else "warning",
                access_log=args.verbose_access, timeout_graceful_shutdown=10)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the top-level sub-commands ``sub`` (its ``--help`` shows each default once)."""
    s = sub.add_parser("serve", help="run the HTTP API (tag, grade, search, trends) and the web pages",
                       formatter_class=ServeHelpFormatter,
                       description="Run the HTTP API and the web pages. Each setting option overrides its "
                       "FASHIONLENS_* environment variable; an option not given falls back to the variable, then "
                       "to the default shown. API keys: FASHIONLENS_API_KEYS or --api-keys-file, never an option.")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on")
    s.add_argument("--workers", type=int, default=1, help="worker processes (each loads the models once)")
    for opt in SETTING_OPTIONS:
        if opt.switch:
            action = s.add_argument(opt.flag, default=None, action="store_const", const=True, help=opt.help)
        else:
            action = s.add_argument(opt.flag, default=None, type=opt.type, metavar=opt.metavar, help=opt.help,
                                    action="append" if opt.repeat else "store")
        action.shown_default = opt.default  # type: ignore[attr-defined]
        action.env = ENV_PREFIX + opt.env  # type: ignore[attr-defined]
    s.add_argument("--access-log", dest="verbose_access", action="store_true", help="log every request")
    write = s.add_argument("--write-openapi", default=None, metavar="OUT.json",
                           help="write the OpenAPI schema to this file and exit")
    write.shown_default = "none: serve"  # type: ignore[attr-defined]
    s.set_defaults(func=_cmd_serve)
