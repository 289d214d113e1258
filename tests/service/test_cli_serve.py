"""``fashionlens serve``: argument parsing into settings, --write-openapi, uvicorn started with the factory."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from fashionlens.cli.serve import register as register_serve
from fashionlens.service.settings import ServiceSettings, SettingsError


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    register_serve(p.add_subparsers(dest="command", required=True))
    return p.parse_args(["serve", *argv])


def test_serve_passes_settings_to_uvicorn_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    for k in list(os.environ):
        if k.startswith("FASHIONLENS_"):
            monkeypatch.delenv(k)
    keys = tmp_path / "keys"
    keys.write_text("a-long-key-123\n")
    args = _parse(["--port", "9123", "--workers", "3", "--index", str(tmp_path), "--trends", "s=a.csv,b.csv",
                   "--api-keys-file", str(keys), "--max-pixels", "5000000", "--queue", "2"])
    with monkeypatch.context() as m:
        m.setattr(os, "environ", dict(os.environ))
        assert args.func(args) == 0
        settings = ServiceSettings.from_env()
    [(app, kw)] = calls
    assert app == "fashionlens.service.app:create_app_from_env" and kw["factory"] is True
    assert kw["workers"] == 3 and kw["port"] == 9123 and kw["host"] == "127.0.0.1"
    assert settings.index_dir == tmp_path and settings.max_pixels == 5_000_000 and settings.queue_size == 2
    assert settings.api_keys == ("a-long-key-123",) and [p.name for p in settings.trends["s"]] == ["a.csv", "b.csv"]


def test_write_openapi(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    args = _parse(["--write-openapi", str(out)])
    assert args.func(args) == 0
    assert "/v1/tag" in json.loads(out.read_text())["paths"]


def test_bad_values_fail_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn must not start"))
    args = _parse(["--queue", "-1"])
    with pytest.raises(SettingsError, match="queue_size"):
        args.func(args)
