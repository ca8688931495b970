"""Where cisbridge's configuration and cache live: platformdirs' answers,
without importing platformdirs before ``ready`` (~18 ms of a cold start: it
brings pathlib, tempfile, shutil and random).

On Linux and macOS the rules are few, and are followed here as the
platformdirs version in constraints.txt follows them (``appauthor=False``, no
version, nothing created): an XDG variable counts only when it is an absolute
path; ``XDG_CONFIG_DIRS`` gives its first absolute entry; a relative ``HOME``
counts as unset (the password database answers).  tests/test_dirs.py compares
this module with platformdirs under many environments.  Everywhere else
(Windows, Android, the BSDs, ...) and for a Homebrew Python on macOS (whose
site config lives under the Homebrew prefix), platformdirs itself answers.
"""

from __future__ import annotations

import os
import sys

APP = "cisbridge"


def site_config_dir(platform: str = sys.platform) -> str:
    """The administrator's config directory (the first one, as platformdirs gives it)."""
    if not _ours(platform):
        return _platformdirs(platform).site_config_dir
    for entry in os.environ.get("XDG_CONFIG_DIRS", "").split(os.pathsep):
        if entry.startswith("/"):
            return os.path.join(entry, APP)
    return "/etc/xdg/cisbridge" if platform == "linux" else "/Library/Application Support/cisbridge"


def user_config_dir(platform: str = sys.platform) -> str:
    if not _ours(platform):
        return _platformdirs(platform).user_config_dir
    return _user_dir("XDG_CONFIG_HOME", "/.config" if platform == "linux" else "/Library/Application Support")


def user_cache_dir(platform: str = sys.platform) -> str:
    if not _ours(platform):
        return _platformdirs(platform).user_cache_dir
    return _user_dir("XDG_CACHE_HOME", "/.cache" if platform == "linux" else "/Library/Caches")


def _ours(platform: str) -> bool:
    if platform == "linux":
        # platformdirs would take this for an Android app
        android = os.environ.get("ANDROID_DATA") == "/data" and os.environ.get("ANDROID_ROOT") == "/system"
        return not (android or hasattr(sys, "getandroidapilevel"))
    if platform == "darwin":
        # A Homebrew framework Python puts the site dirs under Homebrew's prefix.
        return "/opt/python" not in sys.base_prefix and "/Cellar/python" not in sys.base_prefix
    return False


def _platformdirs(platform: str):
    if platform == "darwin":  # (tests ask for macOS answers on Linux)
        from platformdirs.macos import MacOS as Dirs
    else:
        from platformdirs import PlatformDirs as Dirs
    return Dirs(APP, appauthor=False)


def _user_dir(variable: str, default_under_home: str) -> str:
    value = os.environ.get(variable, "")
    if value.startswith("/"):
        return os.path.join(value, APP)
    return os.path.join(_under_home(default_under_home), APP)


def _under_home(tail: str) -> str:
    """``~`` + tail, as platformdirs expands it: a relative (or empty) HOME
    counts as unset and the password database answers."""
    home = os.environ.get("HOME")
    if home is not None and not home.startswith("/"):
        expanded = "~" + tail
        try:
            import pwd

            expanded = pwd.getpwuid(os.getuid()).pw_dir.rstrip("/") + tail
        except (ImportError, KeyError):
            pass
    else:
        expanded = os.path.expanduser("~" + tail)
    if not expanded.startswith("/"):
        raise RuntimeError(f"could not determine the home directory for '~{tail}', set an absolute HOME or XDG variable")
    return expanded
