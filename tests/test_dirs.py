"""cisbridge.dirs gives platformdirs' answers without importing it.

Compared with the installed platformdirs (constraints.txt pins it) under many
environments: on this Linux machine for the Linux rules, and with
platformdirs' own macOS class for the macOS ones.
"""

from __future__ import annotations

import os

import platformdirs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from platformdirs.macos import MacOS

from cisbridge import dirs

VARIABLES = ("HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_CACHE_HOME")
VALUES = [None, "", " ", "\t", "relative", "rel/dir", "~/x", "/abs", "/abs/", "/", "//", " /lead-space", "/trail ",
          "/a:/b", "rel:/b", ":/b", "/a:", "::", "/a b/c", "/\u00e9t\u00e9", "/x/../y", "~"]


def expected(platform: str) -> tuple[str, str, str]:
    if platform == "darwin":
        mac = MacOS("cisbridge", appauthor=False)
        return mac.site_config_dir, mac.user_config_dir, mac.user_cache_dir
    return (platformdirs.site_config_dir("cisbridge", appauthor=False),
            platformdirs.user_config_dir("cisbridge", appauthor=False),
            platformdirs.user_cache_dir("cisbridge", appauthor=False))


def ours(platform: str) -> tuple[str, str, str]:
    return dirs.site_config_dir(platform), dirs.user_config_dir(platform), dirs.user_cache_dir(platform)


def outcome(function, platform):
    try:
        return function(platform)
    except RuntimeError as exc:  # no home directory to be found
        return ("RuntimeError", type(exc).__name__)


def set_env(monkeypatch, env: dict[str, str | None]) -> None:
    for name in (*VARIABLES, "ANDROID_DATA", "ANDROID_ROOT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)


@pytest.mark.skipif(not platformdirs.PlatformDirs.__module__.endswith(".unix"), reason="the Linux rules are compared on Linux")
@pytest.mark.parametrize("platform", ["linux", "darwin"])
@pytest.mark.parametrize("variable", VARIABLES)
@pytest.mark.parametrize("value", VALUES)
def test_one_variable_at_a_time(monkeypatch, platform, variable, value):
    set_env(monkeypatch, {"HOME": "/home/someone", variable: value})
    assert outcome(ours, platform) == outcome(expected, platform)


@pytest.mark.skipif(not platformdirs.PlatformDirs.__module__.endswith(".unix"), reason="the Linux rules are compared on Linux")
@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["linux", "darwin"]), st.fixed_dictionaries({name: st.sampled_from(VALUES) for name in VARIABLES}))
def test_any_mix_of_variables(platform, env):
    saved = {name: os.environ.get(name) for name in VARIABLES}
    try:
        for name, value in env.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
        assert outcome(ours, platform) == outcome(expected, platform)
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def test_xdg_dirs_and_the_defaults_on_linux(monkeypatch):
    set_env(monkeypatch, {"HOME": "/home/u", "XDG_CONFIG_DIRS": "relative:/etc/site-a:/etc/site-b"})
    assert ours("linux") == ("/etc/site-a/cisbridge", "/home/u/.config/cisbridge", "/home/u/.cache/cisbridge")
    set_env(monkeypatch, {"HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg", "XDG_CACHE_HOME": "/cache", "XDG_CONFIG_DIRS": " "})
    assert ours("linux") == ("/etc/xdg/cisbridge", "/cfg/cisbridge", "/cache/cisbridge")


def test_the_macos_defaults(monkeypatch):
    set_env(monkeypatch, {"HOME": "/Users/u"})
    assert ours("darwin") == ("/Library/Application Support/cisbridge", "/Users/u/Library/Application Support/cisbridge",
                              "/Users/u/Library/Caches/cisbridge")


def test_a_homebrew_python_on_macos_is_left_to_platformdirs(monkeypatch):
    set_env(monkeypatch, {"HOME": "/Users/u"})
    monkeypatch.setattr("sys.base_prefix", "/opt/homebrew/opt/python@3.13/Frameworks/Python.framework/Versions/3.13")
    assert ours("darwin") == expected("darwin")
    assert dirs.site_config_dir("darwin") == "/opt/homebrew/share/cisbridge"


def test_other_platforms_are_left_to_platformdirs(monkeypatch):
    set_env(monkeypatch, {"HOME": "/home/u", "ANDROID_DATA": "/data", "ANDROID_ROOT": "/system"})
    assert not dirs._ours("linux")
    assert not dirs._ours("win32") and not dirs._ours("freebsd14")


def test_the_host_finds_its_files_without_importing_platformdirs(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from cisbridge import configfiles; print(configfiles.paths());"
            "print('platformdirs' in sys.modules, 'pathlib' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CISBRIDGE_"))}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.splitlines() == [f"['/etc/xdg/cisbridge/config.toml', '{tmp_path}/.config/cisbridge/config.toml']", "False False"]
