"""Command line for the HTTP service (issue 7): ``fashionlens serve``. Parses arguments, starts uvicorn.

The options become ``FASHIONLENS_*`` environment variables (see
:mod:`fashionlens.service.settings`) so that every uvicorn worker process builds the same settings
through ``fashionlens.service.app:create_app_from_env``. API keys are never taken on the command
line (it is visible to other users): set ``FASHIONLENS_API_KEYS`` or pass ``--api-keys-file``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def _cmd_serve(args: argparse.Namespace) -> int:
    from fashionlens.service.settings import ServiceSettings, parse_trends

    overrides: dict[str, Any] = {"concurrency": args.concurrency, "queue_size": args.queue,
                                 "request_timeout_s": args.timeout, "threads": args.threads,
                                 "max_pixels": args.max_pixels, "max_upload_bytes": int(args.max_upload_mb * 2**20)}
    overrides["max_request_bytes"] = max(int(args.max_request_mb * 2**20), overrides["max_upload_bytes"])
    if args.index:
        overrides["index_dir"] = Path(args.index)
    if args.trends:
        overrides["trends"] = parse_trends(";".join(args.trends))
    if args.storage:
        overrides["storage_dir"] = Path(args.storage)
    if args.cors_origin:
        overrides["cors_origins"] = tuple(args.cors_origin)
    if args.static:
        overrides["static_dir"] = Path(args.static)
    env = dict(os.environ)
    if args.api_keys_file:
        env["FASHIONLENS_API_KEYS_FILE"] = args.api_keys_file
    settings = ServiceSettings.from_env(env, **overrides)  # validates everything before a worker starts
    if args.write_openapi:
        from fashionlens.service.openapi import write_openapi

        write_openapi(args.write_openapi)
        print(f"fashionlens: wrote {args.write_openapi}", file=sys.stderr)
        return 0
    os.environ.update(settings.to_env())
    import uvicorn

    print(json.dumps({"serving": f"http://{args.host}:{args.port}", "workers": args.workers,
                      "auth": settings.auth_enabled, "index": str(settings.index_dir) if settings.index_dir else None,
                      "trends": sorted(settings.trends), "storage": str(settings.storage_dir) if settings.storage_dir
                      else None}), file=sys.stderr)
    uvicorn.run("fashionlens.service.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info" if args.verbose_access else "warning",
                access_log=args.verbose_access, timeout_graceful_shutdown=10)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the top-level sub-commands ``sub`` (its ``--help`` shows the defaults)."""
    s = sub.add_parser("serve", help="run the HTTP API (tag, grade, search, trends)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="worker processes (each loads the models once)")
    s.add_argument("--index", default=None, metavar="DIR", help="garment index for /v1/search")
    s.add_argument("--trends", action="append", default=None, metavar="NAME=PATH[,PATH]",
                   help="a trends dataset (StreetStyle CSVs, or tag JSONL + post metadata); repeatable")
    s.add_argument("--storage", default=None, metavar="DIR", help="keep uploaded photos here (default: not kept)")
    s.add_argument("--api-keys-file", default=None, help="API keys, one per line (or set FASHIONLENS_API_KEYS)")
    s.add_argument("--cors-origin", action="append", default=None, help="allow this browser origin (default: none)")
    s.add_argument("--static", default=None, metavar="DIR", help="serve these files at /app")
    s.add_argument("--concurrency", type=int, default=2, help="model calls running at once per worker")
    s.add_argument("--queue", type=int, default=8, help="requests waiting for a model slot before 503")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds a request may wait + run before 504")
    s.add_argument("--threads", type=int, default=1, help="inference threads per model call")
    s.add_argument("--max-upload-mb", type=float, default=15.0, help="largest photo")
    s.add_argument("--max-request-mb", type=float, default=40.0, help="largest request body")
    s.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger photos (decompression bombs)")
    s.add_argument("--access-log", dest="verbose_access", action="store_true", help="log every request")
    s.add_argument("--write-openapi", default=None, metavar="OUT.json", help="write the OpenAPI schema and exit")
    s.set_defaults(func=_cmd_serve)
