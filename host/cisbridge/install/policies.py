"""The enterprise policies of the Chromium-family browsers that can stop the
host: read where each browser reads them, with where each value came from.

Doctor turns them into checks (``doctor.check_policies``).  Only the policies
that decide whether the extension may reach ``org.cisbridge.host`` are read:

* ``NativeMessagingBlocklist`` / ``NativeMessagingAllowlist`` — a blocked host
  gets "Access to the specified native messaging host is forbidden.";
* ``NativeMessagingUserLevelHosts`` — false: per-user registrations are not
  read ("Specified native messaging host not found.");
* ``ExtensionInstallBlocklist`` / ``ExtensionInstallAllowlist`` /
  ``ExtensionInstallForcelist`` / ``ExtensionSettings`` — whether the extension
  may be installed at all.

The names before Chrome 86 (``…Blacklist``, ``…Whitelist``) are read too and
count only where the new name is not set, as Chrome's deprecated-policy
handling does.  None of these policies can be "recommended", so only the
mandatory level is read.

Where each browser reads them, and what was checked
---------------------------------------------------

Linux: every regular file (not only ``*.json``) in ``<base>/managed/``, taken
in lexicographic order of the file name; for each policy the *last* file that
sets it wins, the whole value (lists are not merged).  A file that is not a
JSON object is skipped with a warning in the browser's log.  Chrome's reader
accepts trailing commas and comments, so doctor does too.  Source: Chromium
``components/policy/core/common/config_dir_policy_loader.cc``
(``ConfigDirPolicyLoader::LoadFromPath``: "gives priority to the last file in
lexicographic order"); the base directories are ``/etc/opt/chrome/policies``
(Google Chrome) and ``/etc/chromium/policies`` (Chromium) per Chromium's
``docs/enterprise/policies.md`` and Google's "Chrome Browser quick start
(Linux)" (support.google.com/chrome/a/answer/9027408); ``/etc/brave/policies``
per brave-core ``app/brave_main_delegate.cc`` (it overrides
``chrome::DIR_POLICY_FILES``).  *Not confirmed from the vendor:* Edge's
``/etc/opt/edge/policies`` (used widely by administrators' scripts; no
Microsoft page found) and Vivaldi's ``/etc/vivaldi/policies`` (third-party
scripts only; one uses ``/etc/opt/vivaldi/policies``, which is not read here).

macOS: the managed preferences of the browser's bundle id —
``/Library/Managed Preferences/<bundle id>.plist`` (whole machine) and
``/Library/Managed Preferences/<user>/<bundle id>.plist`` (that user), as a
configuration profile writes them; Chrome reads them through CFPreferences and
takes forced values only (``policy_loader_mac.mm``).  Bundle ids:
com.google.Chrome, org.chromium.Chromium, com.microsoft.Edge (Microsoft Learn,
"Mac information and settings" of each policy), com.brave.Browser,
com.vivaldi.Vivaldi (vendors' and administrators' pages).  *Not confirmed:*
which file wins when both set a policy; doctor takes the user's file
(CFPreferences searches the more specific source first, as older
managed-preferences documentation describes), and names both in ``detail``.

Windows: ``HKLM`` and ``HKCU\\<key>``, the machine's value winning for each
policy (Chromium ``policy_loader_win.cc`` loads both scopes; a machine-scope
policy has priority over a user-scope one).  Keys: ``SOFTWARE\\Policies\\Google\\Chrome``,
``…\\Chromium`` (chromium.org policy list), ``…\\Microsoft\\Edge``
(Microsoft Learn), ``…\\BraveSoftware\\Brave`` (Brave's Group Policy help and
its ADMX), ``…\\Vivaldi`` (*third-party only*).  As ``registry_dict.cc``
reads them: a list policy is a subkey whose values with numerical names
("1", "2", …) are the items (or one REG_SZ holding a JSON list); a boolean is
a REG_DWORD (or a string holding a number); ``ExtensionSettings`` is a REG_SZ
holding JSON.  Policy names are case-sensitive.

Not read, so doctor cannot see them: cloud policies (Chrome Browser Cloud
Management, the Edge management service, a managed account signed in to the
browser), which can override or add to these; and on Windows and macOS
machines that are not domain-joined or MDM-managed, Chrome ignores some
"sensitive" policies (e.g. force-installing from outside the Web Store),
which doctor does not model.  ``chrome://policy`` (``edge://policy``, …) shows
what the browser itself loaded.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from cisbridge import HOST_NAME
from cisbridge.install.system import System

#: the policies doctor reads, and the JSON type each must have
POLICIES: dict[str, type] = {
    "NativeMessagingBlocklist": list,
    "NativeMessagingAllowlist": list,
    "NativeMessagingUserLevelHosts": bool,
    "ExtensionInstallBlocklist": list,
    "ExtensionInstallAllowlist": list,
    "ExtensionInstallForcelist": list,
    "ExtensionSettings": dict,
}
#: names before Chrome 86, honoured when the new one is not set
LEGACY = {
    "NativeMessagingBlacklist": "NativeMessagingBlocklist",
    "NativeMessagingWhitelist": "NativeMessagingAllowlist",
    "ExtensionInstallBlacklist": "ExtensionInstallBlocklist",
    "ExtensionInstallWhitelist": "ExtensionInstallAllowlist",
}

LINUX_DIRS = {
    "chrome": "/etc/opt/chrome/policies/managed",
    "chromium": "/etc/chromium/policies/managed",
    "edge": "/etc/opt/edge/policies/managed",
    "brave": "/etc/brave/policies/managed",
    "vivaldi": "/etc/vivaldi/policies/managed",
}
BUNDLE_IDS = {
    "chrome": "com.google.Chrome",
    "chromium": "org.chromium.Chromium",
    "edge": "com.microsoft.Edge",
    "brave": "com.brave.Browser",
    "vivaldi": "com.vivaldi.Vivaldi",
}
REGISTRY_KEYS = {
    "chrome": "SOFTWARE\\Policies\\Google\\Chrome",
    "chromium": "SOFTWARE\\Policies\\Chromium",
    "edge": "SOFTWARE\\Policies\\Microsoft\\Edge",
    "brave": "SOFTWARE\\Policies\\BraveSoftware\\Brave",
    "vivaldi": "SOFTWARE\\Policies\\Vivaldi",
}
#: the page of each browser that shows the policies it loaded
POLICY_PAGES = {
    "chrome": "chrome://policy",
    "chromium": "chrome://policy",
    "edge": "edge://policy",
    "brave": "brave://policy",
    "vivaldi": "vivaldi://policy",
}


@dataclass
class Setting:
    """One policy's effective value and where it came from."""
    name: str
    value: Any
    #: a file, or ``HIVE\\key\\Policy`` on Windows
    source: str
    #: other sources that set the same policy and lost
    overridden: list[str] = field(default_factory=list)
    #: the name actually used when it was a pre-86 name
    legacy_name: str | None = None

    @property
    def shown_name(self) -> str:
        return self.legacy_name or self.name


@dataclass
class Problem:
    """A policy source the browser cannot use, in whole or in part."""
    source: str
    message: str


@dataclass
class BrowserPolicies:
    browser: str
    platform: str
    settings: dict[str, Setting] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: where this browser's policies were looked for, lowest priority first
    sources: list[str] = field(default_factory=list)

    def get(self, name: str) -> Setting | None:
        return self.settings.get(name)

    def items(self, name: str) -> list[str]:
        """A list policy's string items ([] when unset)."""
        setting = self.settings.get(name)
        return [str(v) for v in setting.value] if setting else []


def read(system: System, browsers: Iterable[str]) -> dict[str, BrowserPolicies]:
    """Each Chromium-family browser's effective policies (those in :data:`POLICIES`),
    with their sources; browsers outside the family are left out."""
    out = {}
    for browser in browsers:
        if browser not in LINUX_DIRS:
            continue
        found = BrowserPolicies(browser, system.platform)
        layers: list[tuple[str, dict[str, Any]]] = []  # (source, raw policies), lowest priority first
        if system.platform == "linux":
            layers = _linux_layers(system, LINUX_DIRS[browser], found)
        elif system.platform == "darwin":
            layers = _mac_layers(system, BUNDLE_IDS[browser], found)
        else:
            layers = _windows_layers(system, REGISTRY_KEYS[browser], found)
        _merge(layers, found)
        out[browser] = found
    return out


# ------------------------------------------------------------------ merging

def _merge(layers: list[tuple[str, dict[str, Any]]], found: BrowserPolicies) -> None:
    """Later layers win, one policy at a time; values of the wrong type are
    problems (the browser ignores them) and take no part.  A pre-86 name
    counts only when the new name is set nowhere."""
    by_name: dict[str, Setting] = {}
    for source, raw in layers:
        for name, value in raw.items():
            wanted = LEGACY.get(name, name)
            if wanted not in POLICIES:
                continue
            expected = POLICIES[wanted]
            if not isinstance(value, expected) or (expected is list and not all(isinstance(v, str) for v in value)):
                kind = {list: "a list of strings", bool: "true or false", dict: "a JSON object"}[expected]
                found.problems.append(Problem(source, f"{name} is not {kind}: the browser ignores it"))
                continue
            lost = by_name.get(name)
            by_name[name] = Setting(wanted, value, source, [*lost.overridden, lost.source] if lost else [],
                                    name if name != wanted else None)
    for name in POLICIES:
        if name in by_name:
            found.settings[name] = by_name[name]
    for legacy, name in LEGACY.items():
        if name not in found.settings and legacy in by_name:
            found.settings[name] = by_name[legacy]


# ------------------------------------------------------------------ Linux

def _linux_layers(system: System, directory: str, found: BrowserPolicies) -> list[tuple[str, dict[str, Any]]]:
    found.sources.append(directory)
    real = system.real(directory)
    try:
        names = sorted(os.listdir(real))  # code-point order = the byte order Chrome sorts in (UTF-8)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        found.problems.append(Problem(directory, f"cannot be read ({exc.strerror}): doctor cannot check it"))
        return []
    layers = []
    for name in names:
        logical = f"{directory}/{name}"
        path = real / name
        if not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            found.problems.append(Problem(logical, f"cannot be read ({exc}): the browser ignores this file"))
            continue
        try:
            data = loads_like_chrome(text)
        except ValueError as exc:
            found.problems.append(Problem(logical, f"is not valid JSON ({exc}): the browser ignores this whole file"))
            continue
        if not isinstance(data, dict):
            found.problems.append(Problem(logical, "is not a JSON object: the browser ignores this whole file"))
            continue
        layers.append((logical, data))
    return layers


def loads_like_chrome(text: str) -> Any:
    """``json.loads``, also taking what Chrome's policy reader takes: ``//`` and
    ``/* */`` comments, and a comma before ``]`` or ``}``."""
    try:
        return json.loads(text)
    except ValueError as first:
        try:
            return json.loads(_strip_commas(_strip_comments(text)))
        except ValueError:
            raise first from None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _strip_comments(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        m = _STRING.match(text, i)
        if m:
            out.append(m.group())
            i = m.end()
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("unterminated comment")
            out.append(" ")
            i = end + 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _strip_commas(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        m = _STRING.match(text, i)
        if m:
            out.append(m.group())
            i = m.end()
            continue
        if text[i] == ",":
            j = i + 1
            while j < len(text) and text[j].isspace():
                j += 1
            if j < len(text) and text[j] in "]}":
                i += 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


# ------------------------------------------------------------------ macOS

def _mac_layers(system: System, bundle_id: str, found: BrowserPolicies) -> list[tuple[str, dict[str, Any]]]:
    layers = []
    for logical in (f"/Library/Managed Preferences/{bundle_id}.plist",
                    f"/Library/Managed Preferences/{system.user_name()}/{bundle_id}.plist"):
        found.sources.append(logical)
        path = system.real(logical)
        if not path.is_file():
            continue
        try:
            with open(path, "rb") as handle:
                data = plistlib.load(handle)
        except OSError as exc:
            found.problems.append(Problem(logical, f"cannot be read ({exc.strerror}): doctor cannot check it"))
            continue
        except Exception as exc:  # noqa: BLE001 - plistlib raises several kinds for a damaged file
            found.problems.append(Problem(logical, f"is not a readable property list ({exc}): the browser ignores it"))
            continue
        if not isinstance(data, dict):
            found.problems.append(Problem(logical, "is not a dictionary: the browser ignores it"))
            continue
        layers.append((logical, data))
    return layers


# ------------------------------------------------------------------ Windows

_NUMBER = re.compile(r"[+-]?\d+")


def _windows_layers(system: System, key: str, found: BrowserPolicies) -> list[tuple[str, dict[str, Any]]]:
    registry = system.registry
    assert registry is not None
    layers = []
    for hive in ("HKCU", "HKLM"):  # the machine wins: last
        base = f"{hive}\\{key}"
        found.sources.append(base)
        values = registry.values(hive, key) or {}
        for name, wanted in [(n, n) for n in POLICIES] + list(LEGACY.items()):
            kind = POLICIES[wanted]
            source = f"{base}\\{name}"
            value: Any = None
            if kind is list:
                items = registry.values(hive, f"{key}\\{name}")
                if items is not None:  # a subkey beats a value of the same name
                    numbered = sorted(((int(n), v) for n, v in items.items() if _NUMBER.fullmatch(n)), key=lambda p: p[0])
                    value = [v for _n, v in numbered if isinstance(v, str)]
                    if len(value) < len(numbered):
                        found.problems.append(Problem(source, "has values that are not strings: the browser skips them"))
                elif name in values:
                    value = _registry_json(values[name], list, source, found)
            elif name in values:
                raw = values[name]
                if kind is bool:
                    if isinstance(raw, int):
                        value = raw != 0
                    elif isinstance(raw, str) and _NUMBER.fullmatch(raw.strip()):
                        value = int(raw) != 0
                    else:
                        found.problems.append(Problem(source, f"is {raw!r}, not a DWORD 0 or 1: the browser ignores it"))
                else:
                    value = _registry_json(raw, dict, source, found)
            if value is not None:
                layers.append((source, {name: value}))
    return layers


def _registry_json(raw: str | int, kind: type, source: str, found: BrowserPolicies) -> Any:
    """A list or dictionary policy written as one REG_SZ of JSON."""
    try:
        value = loads_like_chrome(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if not isinstance(value, kind):
        what = "a JSON list" if kind is list else "a JSON object"
        found.problems.append(Problem(source, f"is not {what}: the browser ignores it"))
        return None
    return value


# ------------------------------------------------------------------ decisions

def host_blocked(policies: BrowserPolicies) -> bool:
    """Would the browser refuse to start ``org.cisbridge.host``?  (Chrome: a
    host in the allowlist is allowed; otherwise ``*`` or its name in the
    blocklist blocks it.)"""
    blocked = policies.items("NativeMessagingBlocklist")
    if HOST_NAME in policies.items("NativeMessagingAllowlist"):
        return False
    return "*" in blocked or HOST_NAME in blocked


_MODES = ("blocked", "allowed", "force_installed", "normal_installed", "removed")


@dataclass
class InstallVerdict:
    extension: str
    blocked: bool
    #: the policy that decided (None: nothing set, installing is allowed)
    by: Setting | None
    #: the policy that blocks every extension by default, if any
    default_block: Setting | None


def extension_verdict(policies: BrowserPolicies, extension: str) -> InstallVerdict:
    """May the extension be installed?  Chrome's ``ExtensionManagement::Refresh``,
    kept to what decides installing:

    1. everything is blocked by default when ``ExtensionInstallBlocklist``
       holds ``*``; ``ExtensionSettings["*"]["installation_mode"]`` replaces
       that default when set;
    2. then, for this id: listed in ``ExtensionInstallAllowlist`` → allowed;
       in ``ExtensionInstallBlocklist`` → blocked (it is applied after the
       allowlist); in ``ExtensionInstallForcelist`` → force-installed; an
       ``ExtensionSettings`` entry whose key names it (keys may list several
       ids separated by commas) with an ``installation_mode`` → that mode.

    ``blocked`` and ``removed`` block.  Left out: ``update_url:`` entries of
    ``ExtensionSettings`` (settings by update URL), ``allowed_types`` and
    ``install_sources`` — they do not block an extension installed by policy
    or from the store, and modelling them would grow this into Chrome.
    """
    settings = policies.get("ExtensionSettings")
    table = settings.value if settings else {}
    blocklist = policies.get("ExtensionInstallBlocklist")
    mode, by = "allowed", None
    if blocklist and "*" in blocklist.value:
        mode, by = "blocked", blocklist
    star = table.get("*")
    if isinstance(star, dict) and star.get("installation_mode") in _MODES:
        mode, by = star["installation_mode"], settings
    default_block = by if mode in ("blocked", "removed") else None
    allowlist = policies.get("ExtensionInstallAllowlist")
    forcelist = policies.get("ExtensionInstallForcelist")
    if allowlist and extension in allowlist.value:
        mode, by = "allowed", allowlist
    if blocklist and extension in blocklist.value:
        mode, by = "blocked", blocklist
    if forcelist and extension in [entry.split(";")[0].strip() for entry in forcelist.value]:
        mode, by = "force_installed", forcelist
    for key, entry in table.items():
        if key == "*" or key.startswith("update_url:") or not isinstance(entry, dict):
            continue
        if extension in [k.strip() for k in key.split(",")] and entry.get("installation_mode") in _MODES:
            mode, by = entry["installation_mode"], settings
    return InstallVerdict(extension, mode in ("blocked", "removed"), by, default_block)


# ------------------------------------------------------------------ fixes

def how_to_add(policies: BrowserPolicies, name: str, item: str, near: Setting) -> str:
    """Instructions to add ``item`` to list policy ``name``, in the place the
    browser will take it from (the source already setting ``name``, else the
    source of ``near``, the policy that blocks)."""
    current = policies.get(name)
    if policies.platform == "linux":
        if current:
            return f'add "{item}" to {current.shown_name} in {current.source}'
        return f'add "{name}": ["{item}"] to {near.source}'
    if policies.platform == "darwin":
        target = current or near
        domain = BUNDLE_IDS[policies.browser]
        return (f"add {item} to {name} in the configuration profile (payload {domain}) that writes "
                f"{target.source} — edits to that file itself are undone by the next profile refresh")
    if current:
        return (f"under {current.source}, add a REG_SZ value named with the next free number and data {item} "
                "(or the same entry in the Group Policy object that writes it)")
    hive = near.source.split("\\", 1)[0]
    return (f'create the key {hive}\\{REGISTRY_KEYS[policies.browser]}\\{name} with a value "1" = {item} '
            "(REG_SZ), or set the same policy in your Group Policy object")


def how_to_allow_extension(policies: BrowserPolicies, verdict: InstallVerdict) -> str:
    """Instructions to lift the block ``verdict`` found, where it is set."""
    by, ext = verdict.by, verdict.extension
    assert by is not None
    if by.name == "ExtensionInstallBlocklist" and ext in by.value:
        return f"remove {ext} from {by.shown_name} in {by.source} (it overrides the allowlist)"
    if by.name == "ExtensionSettings":
        where = f"ExtensionSettings in {by.source}"
        if by is not verdict.default_block:
            return f'set "installation_mode" of the {ext} entry to "allowed" or "force_installed" in {where}'
        return f'add "{ext}": {{"installation_mode": "allowed"}} (or force_installed with an update_url) to {where}'
    return how_to_add(policies, "ExtensionInstallAllowlist", ext, by)
