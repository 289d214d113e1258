"""Training configs from hostile input (issue 23): read with the bounded YAML loader, every failure
a ConfigError with a short message."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fashionlens.train.config import (
    MAX_CONFIG_BYTES,
    ClassifierTrainConfig,
    ConfigError,
    load_config,
    parse_override,
)

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{k}: &{k} [" + ",".join([f"*{chr(ord(k) - 1)}"] * 9) + "]" for k in "bcdefghi"]
    + ["sources: *i"]) + "\n"


def _write(tmp_path: Path, data: str | bytes) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_alias_bomb_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.yaml:1: YAML anchors are not allowed") as info:
        load_config(_write(tmp_path, BILLION_LAUGHS))
    assert len(str(info.value)) < 400


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"expected at most {MAX_CONFIG_BYTES:,}"):
        load_config(_write(tmp_path, "epochs: 3\n#" + "x" * MAX_CONFIG_BYTES))


def test_config_that_is_not_utf8_or_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.yaml:2: not UTF-8 text"):
        load_config(_write(tmp_path, b"epochs: 3\nmodel_name: caf\xe9\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "epochs: [3\n"))


@pytest.mark.parametrize("text, message", [
    ("device: 5", "device: expected auto, cpu or cuda"),
    ("backbone: [a]", "backbone: expected one of"),
    ("sources: [[rise]]", "sources: unknown"),
    ("head_loss_weights: 3", "head_loss_weights: expected a mapping"),
    ("head_loss_weights: {[a]: 1}", "unhashable key"),
    ("1: 2", r"expected option names as text; got 1 \(int\)"),
    ("epochs: " + "9" * 5000, "a number written with 5,000 characters"),
])
def test_values_of_the_wrong_type_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_long_values_are_cut_in_messages(tmp_path: Path) -> None:
    for text in ("device: " + "d" * 500_000, "k" * 500_000 + ": 1", "sources: [" + "s" * 500_000 + "]"):
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, text))
        assert len(str(info.value)) < 1000


def test_overrides_use_the_bounded_loader() -> None:
    assert parse_override("sources=[rise, ccp]") == ("sources", ["rise", "ccp"])
    with pytest.raises(ConfigError, match="YAML anchors are not allowed"):
        parse_override("sources=&a [rise]")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_override("epochs=[3")
    with pytest.raises(ConfigError, match="expected at most 10,000"):
        parse_override("model_name=" + "x" * 20_000)
    with pytest.raises(ConfigError, match="expected key=value") as info:
        parse_override("x" * 100_000)
    assert len(str(info.value)) < 300


_CONFIG_PIECES = st.sampled_from([
    "epochs: ", "batch_size: ", "sources: ", "device: ", "backbone: ", "head_loss_weights: ", "split_fractions: ",
    "mode: ", "lr: ", "3", "-1", "0.5", "[rise]", "[1, 2, 3]", "{category: 1}", "{x: [1]}", "cuda:0", "true",
    "null", "\n", "&a ", "*a", "[", "{", "'", "\xff", "1e999", "2001-02-30", "!!int ", "- ", ": ",
])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_CONFIG_PIECES, max_size=20))
def test_random_config_text_gives_a_config_or_a_config_error(tmp_path: Path, pieces: list[str]) -> None:
    path = _write(tmp_path, "".join(pieces).encode().replace(b"\xc3\xbf", b"\xff"))
    try:
        assert isinstance(load_config(path), ClassifierTrainConfig)
    except ConfigError:
        pass
