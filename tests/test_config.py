"""Finding store.toml and choosing the store URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from casstore.config import load_config, parse_size
from casstore.errors import ConfigError, NotAStore
from casstore.store.open import init_store, open_store


def write_config(folder: Path, text: str) -> Path:
    path = folder / "store.toml"
    path.write_text(text)
    return path


def test_found_in_a_parent_and_embedded_store_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "[store]\ncompression_level = 5\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    store = open_store()
    assert store.url == str(tmp_path / ".cas")
    assert store.compression_level == 5
    assert (tmp_path / ".cas" / "casstore.json").is_file()


def test_relative_url_is_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, '[store]\nurl = "stores/main"\n')
    init_store(str(tmp_path / "stores" / "main"))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert open_store().url == str(tmp_path / "stores" / "main")


def test_configured_url_must_already_be_a_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, '[store]\nurl = "elsewhere"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotAStore):
        open_store()
    assert not (tmp_path / "elsewhere").exists()


def test_precedence_argument_then_env_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "[store]\ncompression_level = 7\n")
    monkeypatch.chdir(tmp_path)
    env_store, _ = init_store(str(tmp_path / "env"))
    arg_store, _ = init_store(str(tmp_path / "arg"))
    monkeypatch.setenv("CAS_STORE", env_store.url)
    assert open_store().url == env_store.url
    chosen = open_store(arg_store.url)
    assert chosen.url == arg_store.url
    # The file's settings apply however the URL was chosen.
    assert chosen.compression_level == 7


def test_no_configuration_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no store configured"):
        open_store()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[store\n", "not valid TOML"),
        ("[store]\ncompresion_level = 3\n", "compresion_level"),
        ('[store]\ncompression_level = "high"\n', "compression_level"),
        ("[store]\ncompression_level = 99\n", "between"),
        ("[remotes.team]\nurll = 'x'\n", "url"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_s3_section_becomes_storage_options(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[s3]\nendpoint_url = "http://127.0.0.1:9000"\nregion = "eu-west-1"\nanon = true\n'
        "read_timeout = 30\nretries = 5\n"
        '[remotes.team]\nurl = "s3://bucket/runs"\n',
    )
    config = load_config(path)
    assert config.storage_options("s3://bucket/x") == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
        "anon": True,
        "config_kwargs": {
            "connect_timeout": 5,
            "read_timeout": 30,
            "retries": {"total_max_attempts": 6, "mode": "standard"},
        },
    }
    assert config.storage_options(str(tmp_path)) == {}
    assert config.remote_url("team") == "s3://bucket/runs"
    with pytest.raises(ConfigError, match="no remote named 'nope'"):
        config.remote_url("nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10GiB", 10 << 30), ("512 MiB", 512 << 20), ("1.5kB", 1500), ("42", 42), ("3 MB", 3_000_000)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_rejects_junk() -> None:
    with pytest.raises(ConfigError):
        parse_size("lots")
