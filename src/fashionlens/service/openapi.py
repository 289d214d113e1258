"""The committed OpenAPI document (``docs/openapi.json``): how it is produced, so a test can compare."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fashionlens.service.app import create_app
from fashionlens.service.settings import ServiceSettings

__all__ = ["openapi_schema", "openapi_text", "write_openapi"]


def openapi_schema() -> dict[str, Any]:
    """The schema of the app with default settings (it does not depend on data or keys)."""
    return create_app(ServiceSettings(preload=False)).openapi()


def openapi_text() -> str:
    return json.dumps(openapi_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_openapi(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(openapi_text(), "utf-8")
    return out
