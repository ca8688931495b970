"""The config parse cache: a file is served from it only when its exact bytes
are known, only from a cache file the user alone can have written, and only
when it holds plain TOML values; anything else and the file is parsed."""

from __future__ import annotations

import marshal
import math
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cisbridge import configfiles
from cisbridge.configcache import MAGIC, MAX_FILES, ParseCache, _framed, trusted

TEXT = 'allowed_origins = ["https://ehr.example.nhs.uk"]\n[logging]\nlevel = "debug"\n'
PARSED = {"allowed_origins": ["https://ehr.example.nhs.uk"], "logging": {"level": "debug"}}


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A named config file and where its cache goes."""
    config = tmp_path / "config.toml"
    config.write_text(TEXT)
    monkeypatch.setenv("CISBRIDGE_CONFIG", str(config))
    return config, tmp_path / "cache" / "config-cache"


def read(cache_file) -> tuple[dict, ParseCache]:
    cache = ParseCache(str(cache_file))
    raw = configfiles.read(cache=cache)
    cache.save()
    return raw.merged, cache


def write_cache(cache_file, entries, magic=MAGIC, mode=0o600) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_bytes(magic + _framed(marshal.dumps(entries))[len(MAGIC) :])
    cache_file.chmod(mode)


def as_the_user_would(config, cache_file) -> None:
    """A cache that says something the file does not: only its owner could
    write it, and it shows the cache was used."""
    write_cache(cache_file, {str(config): [config.read_bytes(), {"allowed_origins": ["https://cached.example"]}]})


# ------------------------------------------------------------------ served

def test_the_first_start_parses_and_writes_the_cache(files):
    config, cache_file = files
    merged, _ = read(cache_file)
    assert merged == PARSED
    info = cache_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and stat.S_IMODE(cache_file.parent.stat().st_mode) == 0o700
    assert ParseCache(str(cache_file)).entries == {str(config): [TEXT.encode(), PARSED]}
    assert os.listdir(cache_file.parent) == ["config-cache"]  # no temporary file left


def test_a_file_with_the_same_bytes_is_served_from_the_cache(files):
    config, cache_file = files
    as_the_user_would(config, cache_file)
    merged, cache = read(cache_file)
    assert merged == {"allowed_origins": ["https://cached.example"]}
    assert not cache.changed


@pytest.mark.parametrize("edit", [lambda b: b + b"\n", lambda b: b.replace(b"debug", b"error"), lambda b: b[:-1], lambda b: b" " + b])
def test_a_changed_file_is_parsed_again_never_served_stale(files, edit):
    config, cache_file = files
    as_the_user_would(config, cache_file)
    config.write_bytes(edit(config.read_bytes()))
    merged, _ = read(cache_file)
    import tomllib

    assert merged == tomllib.loads(config.read_text())
    assert ParseCache(str(cache_file)).get(str(config), config.read_bytes()) == merged  # and the cache now knows it


def test_system_and_user_files_each_have_their_entry(tmp_path, monkeypatch):
    system = tmp_path / "system" / "cisbridge" / "config.toml"
    user = tmp_path / "user" / "cisbridge" / "config.toml"
    for path, text in ((system, 'allowed_origins = ["https://a.example", "https://b.example"]\n'),
                       (user, 'allowed_origins = ["https://b.example"]\n')):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    monkeypatch.delenv("CISBRIDGE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "system"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    cache_file = tmp_path / "config-cache"
    first, _ = read(cache_file)
    again, cache = read(cache_file)
    assert first == again == {"allowed_origins": ["https://b.example"]}
    assert not cache.changed and set(cache.entries) == {str(system), str(user)}


def test_the_cache_keeps_a_few_files_at_most(tmp_path, monkeypatch):
    cache_file = tmp_path / "config-cache"
    for i in range(MAX_FILES + 3):
        named = tmp_path / f"c{i}.toml"
        named.write_text(f"[logging]\nlevel = \"info\"\n# {i}\n")
        monkeypatch.setenv("CISBRIDGE_CONFIG", str(named))
        read(cache_file)
    entries = ParseCache(str(cache_file)).entries
    assert list(entries) == [str(tmp_path / f"c{i}.toml") for i in range(3, MAX_FILES + 3)]


# ------------------------------------------------------------------ not trusted

def ignored(config, cache_file) -> bool:
    merged, _ = read(cache_file)
    return merged == PARSED


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes and owners")
@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_cache_others_could_write_is_ignored(files, mode):
    config, cache_file = files
    as_the_user_would(config, cache_file)
    cache_file.chmod(mode)
    assert ignored(config, cache_file)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to give the file away")
def test_a_cache_owned_by_someone_else_is_ignored(files):
    config, cache_file = files
    as_the_user_would(config, cache_file)
    os.chown(cache_file, 4242, -1)
    assert ignored(config, cache_file)


def test_a_symlinked_cache_is_ignored(files, tmp_path):
    config, cache_file = files
    elsewhere = tmp_path / "elsewhere"
    as_the_user_would(config, elsewhere)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.symlink_to(elsewhere)
    assert ignored(config, cache_file)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs")
def test_a_fifo_in_place_of_the_cache_is_ignored_without_blocking(files):
    config, cache_file = files
    cache_file.parent.mkdir(parents=True)
    os.mkfifo(cache_file, 0o600)
    assert ignored(config, cache_file)


def test_only_a_regular_file_is_trusted(tmp_path):
    regular = tmp_path / "file"
    regular.write_bytes(b"")
    regular.chmod(0o600)
    assert trusted(os.stat(regular))
    assert not trusted(os.stat(tmp_path))
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo", 0o600)
        assert not trusted(os.stat(tmp_path / "fifo"))


BAD_ENTRIES = {
    "not a dict": [1, 2],
    "tuple entry": {"P": (b"B", {"a": 1})},
    "short entry": {"P": [b"B"]},
    "str instead of bytes": {"P": ["B", {"a": 1}]},
    "list instead of table": {"P": [b"B", [1]]},
    "None value": {"P": [b"B", {"a": None}]},
    "bytes value": {"P": [b"B", {"a": b"x"}]},
    "complex value": {"P": [b"B", {"a": 1j}]},
    "set value": {"P": [b"B", {"a": {1}}]},
    "tuple value": {"P": [b"B", {"a": (1,)}]},
    "int key": {"P": [b"B", {1: 1}]},
    "nested bad value": {"P": [b"B", {"a": {"b": [1, [None]]}}]},
    "lone surrogate": {"P": [b"B", {"a": "\ud800"}]},
    "code object": {"P": [b"B", {"a": compile("1", "x", "eval")}]},
    "too many files": {f"P{i}": [b"B", {}] for i in range(MAX_FILES + 1)},
}


@pytest.mark.parametrize("name", BAD_ENTRIES)
def test_a_cache_holding_anything_but_plain_toml_values_is_ignored(files, name):
    config, cache_file = files
    entries = BAD_ENTRIES[name]
    if isinstance(entries, dict) and "P" in entries:  # the entry for this config file, with its bytes
        entry = entries["P"]
        entries = {str(config): type(entry)([config.read_bytes() if type(entry[0]) is bytes else entry[0], *entry[1:]])}
    write_cache(cache_file, entries)
    assert ignored(config, cache_file)


@pytest.mark.parametrize("damage", ["other magic", "truncated", "longer", "a flipped bit", "garbage", "empty"])
def test_a_damaged_cache_is_ignored(files, damage):
    config, cache_file = files
    as_the_user_would(config, cache_file)
    data = cache_file.read_bytes()
    flipped = bytearray(data)
    flipped[-20] ^= 0x04
    cache_file.write_bytes({
        "other magic": data.replace(b"cache 1,", b"cache 0,"),
        "truncated": data[:-5],
        "longer": data + b"\0",
        "a flipped bit": bytes(flipped),
        "garbage": MAGIC + os.urandom(200),
        "empty": b"",
    }[damage])
    assert ignored(config, cache_file)


def test_a_damaged_list_header_is_caught_before_marshal_reads_it(files):
    # "[" then a count of 2**31 - 1: marshal would allocate the list (seconds)
    # before finding that the items are missing.
    config, cache_file = files
    as_the_user_would(config, cache_file)
    data = cache_file.read_bytes()
    at = data.index(b"[", len(MAGIC) + 5)
    cache_file.write_bytes(data[: at + 1] + b"\xff\xff\xff\x7f" + data[at + 5 :])
    assert ignored(config, cache_file)


@given(st.binary(max_size=300), st.integers(0, 400))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_cache_file_whatever_its_bytes_breaks_reading(tmp_path, tail, cut):
    good = _framed(marshal.dumps({"/c.toml": [b"x", {"a": [1, 2.5, "s", True, {"b": 1}]}]}))
    path = tmp_path / "fuzzed-cache"
    path.write_bytes((good[:cut] + tail) if cut < len(good) else good + tail)
    path.chmod(0o600)
    cache = ParseCache(str(path))  # never raises
    for _file, entry in cache.entries.items():
        assert type(entry[0]) is bytes and type(entry[1]) is dict


# ------------------------------------------------------------------ what is not cached

def test_a_toml_date_is_not_cached_and_the_file_is_parsed_every_time(files):
    config, cache_file = files
    config.write_text("when = 2024-01-01\n")
    merged, cache = read(cache_file)
    assert "when" in merged and not cache.changed
    assert not cache_file.exists()


@pytest.mark.parametrize("data, words", [
    (b"allowed_origins = [\n", "not valid TOML: "),
    (b'allowed_origins = ["\xff"]\n', "not valid TOML: not UTF-8"),
    (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
])
def test_a_file_that_is_not_toml_is_named_as_without_a_cache(files, data, words):
    config, cache_file = files
    config.write_bytes(data)
    with pytest.raises(configfiles.ConfigError) as without:
        configfiles.read()
    with pytest.raises(configfiles.ConfigError) as with_cache:
        read(cache_file)
    assert str(with_cache.value) == str(without.value)
    assert with_cache.value.file == str(config) and words in str(with_cache.value)
    assert not cache_file.exists()


def test_an_unwritable_cache_dir_only_means_parsing_next_time(files, tmp_path):
    config, _ = files
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    merged, cache = read(blocker / "config-cache")
    assert merged == PARSED


# ------------------------------------------------------------------ round trip

toml_values = st.recursive(
    st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@given(st.dictionaries(st.text(max_size=8), toml_values, max_size=5), st.binary(max_size=50))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_what_is_cached_comes_back_exactly(tmp_path, parsed, data):
    path = tmp_path / "round-trip-cache"
    path.unlink(missing_ok=True)
    cache = ParseCache(str(path))
    cache.put("/c.toml", data, parsed)
    cache.save()
    again = ParseCache(str(path)).get("/c.toml", data)
    assert again is not None and same(again, parsed)
