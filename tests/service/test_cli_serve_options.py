"""``fashionlens serve`` options (issue 27, item 6): every ``FASHIONLENS_*`` setting has an option
(``--corrections-db`` among them), options override the variables, variables still work, and
``--help`` shows each option's default exactly once — the defaults of ``ServiceSettings``."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import pytest

from fashionlens.cli.serve import (
    ENV_PREFIX,
    SETTING_OPTIONS,
    register,
    settings_from_args,
)
from fashionlens.service import settings as settings_module
from fashionlens.service.settings import ServiceSettings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionlens")
    sub = p.add_subparsers(dest="command", required=True)
    register(sub)
    return sub.choices["serve"]


def _settings(argv: list[str], env: dict[str, str] | None = None) -> ServiceSettings:
    return settings_from_args(_parser().parse_args(argv), env or {})


#: option → (a value on the command line, the ServiceSettings field, the value it gives there)
CLI_VALUES: dict[str, tuple[list[str], str, Any]] = {
    "--index": (["idx"], "index_dir", Path("idx")),
    "--trends": (["a=x.csv", "--trends", "b=y.jsonl,p.csv"], "trends",
                 {"a": (Path("x.csv"),), "b": (Path("y.jsonl"), Path("p.csv"))}),
    "--corrections-db": (["c.sqlite"], "corrections_db", Path("c.sqlite")),
    "--review-db": (["r.sqlite"], "review_db", Path("r.sqlite")),
    "--storage": (["keep"], "storage_dir", Path("keep")),
    "--static": (["www"], "static_dir", Path("www")),
    "--cors-origin": (["http://a.example", "--cors-origin", "http://b.example"], "cors_origins",
                      ("http://a.example", "http://b.example")),
    "--classifier": (["my-classifier.pt"], "classifier_weights", "my-classifier.pt"),
    "--detector": (["my-detector.pt"], "detector_weights", "my-detector.pt"),
    "--concurrency": (["3"], "concurrency", 3),
    "--queue": (["0"], "queue_size", 0),
    "--timeout": (["2.5"], "request_timeout_s", 2.5),
    "--retry-after": (["7"], "retry_after_s", 7),
    "--threads": (["4"], "threads", 4),
    "--max-upload-mb": (["2"], "max_upload_bytes", 2 * 2**20),
    "--max-request-mb": (["64"], "max_request_bytes", 64 * 2**20),
    "--max-pixels": (["1000000"], "max_pixels", 1_000_000),
    "--max-files": (["3"], "max_files", 3),
    "--precision": (["off"], "precision", None),
    "--keep-uncertain": ([], "keep_uncertain", True),
}

#: variable → (its text in the environment, the ServiceSettings field, the value it gives there)
ENV_VALUES: dict[str, tuple[str, str, Any]] = {
    "INDEX": ("env-idx", "index_dir", Path("env-idx")),
    "TRENDS": ("e=z.csv", "trends", {"e": (Path("z.csv"),)}),
    "CORRECTIONS_DB": ("env.sqlite", "corrections_db", Path("env.sqlite")),
    "REVIEW_DB": ("env-review.sqlite", "review_db", Path("env-review.sqlite")),
    "STORAGE": ("env-keep", "storage_dir", Path("env-keep")),
    "STATIC_DIR": ("env-www", "static_dir", Path("env-www")),
    "CORS_ORIGINS": ("http://e.example", "cors_origins", ("http://e.example",)),
    "CLASSIFIER": ("env-classifier.pt", "classifier_weights", "env-classifier.pt"),
    "DETECTOR": ("env-detector.pt", "detector_weights", "env-detector.pt"),
    "CONCURRENCY": ("5", "concurrency", 5),
    "QUEUE": ("9", "queue_size", 9),
    "TIMEOUT": ("11", "request_timeout_s", 11.0),
    "RETRY_AFTER": ("3", "retry_after_s", 3),
    "THREADS": ("2", "threads", 2),
    "MAX_UPLOAD_BYTES": ("1000", "max_upload_bytes", 1000),
    "MAX_REQUEST_BYTES": ("20000000", "max_request_bytes", 20_000_000),
    "MAX_PIXELS": ("123456", "max_pixels", 123_456),
    "MAX_FILES": ("4", "max_files", 4),
    "PRECISION": ("0.8", "precision", 0.8),
    "KEEP_UNCERTAIN": ("true", "keep_uncertain", True),
}


def test_every_environment_setting_has_an_option() -> None:
    """Every FASHIONLENS_* variable the settings read (their ``to_env`` and the module's table) has a
    ``serve`` option — except the API keys, which never go on the command line."""
    variables = {k.removeprefix(ENV_PREFIX) for k in ServiceSettings().to_env()}
    documented = set(re.findall(r"``FASHIONLENS_([A-Z_]+)``", settings_module.__doc__ or ""))
    options = {opt.env for opt in SETTING_OPTIONS}
    assert variables <= documented, variables - documented  # the settings' table lists every variable
    assert documented - {"API_KEYS"} == options, (documented - options, options - documented)
    assert {opt.flag for opt in SETTING_OPTIONS} == set(CLI_VALUES) | {"--api-keys-file"}
    assert set(ENV_VALUES) == options - {"API_KEYS_FILE"}


def test_no_option_and_no_variable_gives_the_default_settings() -> None:
    assert _settings([]) == ServiceSettings()


@pytest.mark.parametrize("flag", sorted(CLI_VALUES))
def test_each_option_sets_its_setting_and_overrides_the_variable(flag: str) -> None:
    argv, attr, expected = CLI_VALUES[flag]
    opt = next(o for o in SETTING_OPTIONS if o.flag == flag)
    env_text, env_attr, env_expected = ENV_VALUES[opt.env]
    assert env_attr == attr
    env = {ENV_PREFIX + opt.env: env_text}
    if opt.env == "MAX_UPLOAD_BYTES":
        env[ENV_PREFIX + "MAX_REQUEST_BYTES"] = str(64 * 2**20)
    assert getattr(_settings([flag, *argv]), attr) == expected          # the option alone
    assert getattr(_settings([], env), attr) == env_expected             # the variable still works
    assert getattr(_settings([flag, *argv], env), attr) == expected     # the option wins


def test_corrections_db_option_reaches_the_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    calls: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    db = tmp_path / "corrections.sqlite"
    with monkeypatch.context() as m:
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env[ENV_PREFIX + "CORRECTIONS_DB"] = str(tmp_path / "other.sqlite")  # the option overrides it
        m.setattr(os, "environ", env)
        args = _parser().parse_args(["--corrections-db", str(db), "--max-files", "3"])
        assert args.func(args) == 0
        worker = ServiceSettings.from_env()  # what each worker builds (create_app_from_env)
    assert calls and worker.corrections_db == db and worker.max_files == 3


def test_a_larger_photo_limit_raises_an_unset_request_limit() -> None:
    assert _settings(["--max-upload-mb", "50"]).max_request_bytes == 50 * 2**20
    assert _settings(["--max-upload-mb", "5"]).max_request_bytes == ServiceSettings().max_request_bytes
    with pytest.raises(ValueError, match="max_request_bytes"):  # set explicitly: never silently changed
        _settings(["--max-upload-mb", "50"], {ENV_PREFIX + "MAX_REQUEST_BYTES": str(40 * 2**20)})


def _defaults_in_help(text: str) -> list[str]:
    return re.findall(r"\(default: ([^;)]*)", " ".join(text.split()))


def test_help_shows_each_default_exactly_once_and_it_is_the_settings_default() -> None:
    parser = _parser()
    text = parser.format_help()
    flat = " ".join(text.split())
    formatter = parser._get_formatter()
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    for action in options:
        help_text = (formatter._get_help_string(action) or "") % {"default": action.default}
        assert help_text.count("default") == 1, (action.option_strings, help_text)  # once, and only once
        assert flat.count(" ".join(help_text.split())) == 1
    assert len(_defaults_in_help(text)) == len(options)
    defaults = ServiceSettings()
    shown = {opt.flag: opt.default for opt in SETTING_OPTIONS}
    numeric = {"--concurrency": defaults.concurrency, "--queue": defaults.queue_size,
               "--timeout": defaults.request_timeout_s, "--retry-after": defaults.retry_after_s,
               "--threads": defaults.threads, "--max-upload-mb": defaults.max_upload_bytes / 2**20,
               "--max-request-mb": defaults.max_request_bytes / 2**20, "--max-pixels": defaults.max_pixels,
               "--max-files": defaults.max_files}
    for flag, value in numeric.items():
        assert float(shown[flag]) == value, flag
    assert float(shown["--precision"]) == defaults.precision
    assert shown["--keep-uncertain"].startswith("no") and defaults.keep_uncertain is False
    for flag in set(shown) - set(numeric) - {"--precision", "--keep-uncertain"}:  # unset paths and weights
        assert shown[flag].startswith(("none", "the shipped")), flag
    for opt in SETTING_OPTIONS:
        assert f"env {ENV_PREFIX}{opt.env})" in flat, opt.flag
    assert "FASHIONLENS_API_KEYS" in flat and "--api-keys " not in flat
