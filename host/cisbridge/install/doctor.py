"""``cisbridge doctor``: check the installation end to end and say how to fix it.

One line per check: ✓ (fine), ! (worth knowing, not a fault), ✗ (broken; the
fix follows) or - (not checked here).  ``--json`` prints the same for a
support ticket.  The exit status is 1 when any check failed.

Every check is bounded (at most two seconds), so a hung smartcard library or
an unreachable agent shows up as a failure instead of a hang.  The last check
starts the installed host exactly as the browser would — the manifest's
``path`` with the caller argument(s) — and exchanges ``ready`` and
``getStatus`` with it.  The fixes printed here are the ones
``docs/troubleshooting.md`` gives for each browser error message.

Browser policies that block the host or the extension are read by
``policies`` (where each browser reads them, with sources) and reported as
"<Browser> policy" checks, only for policies that are set.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from cisbridge import HOST_NAME, __version__
from cisbridge.install import locations as loc
from cisbridge.install import manifests, policies
from cisbridge.install.policies import BrowserPolicies, Setting
from cisbridge.install.system import PLATFORMS, System, current_platform

TIMEOUT = 2.0
MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
#: Chrome's rule for host names
NAME_RULE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
_FORBIDDEN = {
    "chromium": "Access to the specified native messaging host is forbidden.",
    "firefox": f"This extension does not have permission to use native application {HOST_NAME}",
}
#: what each browser family says when it finds no manifest (docs/troubleshooting.md)
_NOT_FOUND = {
    "chrome": "Specified native messaging host not found.",
    "firefox": "No such native application org.cisbridge.host",
}
_REINSTALL = "run `cisbridge install` again (it rewrites the manifests and the launcher)"


@dataclass
class Check:
    check: str
    status: str  # ok | warn | fail | skip
    message: str
    fix: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        text = f"{MARKS[self.status]} {self.check}: {self.message}"
        if self.fix and self.status in ("fail", "warn"):
            text += f"\n    fix: {self.fix}"
        return text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the results as JSON (for support tickets)")
    parser.add_argument("--browser", action="append", choices=[*loc.BROWSERS, "all"], metavar="BROWSER",
                        help="check only this browser (default: installed browsers and what install recorded)")
    parser.add_argument("--profile-dir", metavar="DIR", help="also check this Chromium profile's NativeMessagingHosts/")
    parser.add_argument("--no-self-test", action="store_true", help="do not start the host")
    parser.add_argument("--root", metavar="DIR", help="check an install staged under DIR (see install --root)")
    parser.add_argument("--platform", choices=PLATFORMS, help="the OS of the staged install (needs --root)")


def run(args) -> int:
    checks = diagnose(args)
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print(json.dumps({
            "cisbridge": __version__,
            "platform": args.platform or current_platform(),
            "python": sys.executable,
            "ok": not failed,
            "checks": [asdict(c) for c in checks],
        }, indent=2, ensure_ascii=False))
    else:
        out = sys.stdout
        print(f"cisbridge doctor {__version__} ({args.platform or current_platform()}, Python {sys.version.split()[0]})")
        for c in checks:
            print(c.line(), file=out)
        fails = sum(c.status == "fail" for c in checks)
        print(f"{fails} problem{'s' if fails != 1 else ''} found" if fails else "everything checked is fine")
    return 1 if failed else 0


# ------------------------------------------------------------------ helpers

def bounded(fn: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Run fn in a daemon thread; TimeoutError when it takes longer than timeout."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def diagnose(args) -> list[Check]:
    root = args.root
    platform = args.platform or current_platform()
    if platform != current_platform() and not root:
        return [Check("doctor", "fail", f"--platform {platform} needs --root")]
    systems = {scope: System(platform=platform, scope=scope, root=root) for scope in ("user", "system")}
    checks: list[Check] = []
    config_checks, config = check_config()
    checks += config_checks
    manifest_checks, found, registered = check_manifests(systems, args, config)
    checks += manifest_checks
    checks += check_policies(systems["user"], registered, config)
    checks += check_sandboxes(systems["user"])
    checks.append(check_pkcs11(config))
    checks.append(check_pcsc())
    checks.append(check_agent(config))
    if args.no_self_test:
        checks.append(Check("self-test", "skip", "not run (--no-self-test)"))
    elif root:
        checks.append(Check("self-test", "skip", "not run under --root (the launcher is not on this machine's paths)"))
    else:
        checks += self_test(found, config)
    return checks


# ------------------------------------------------------------------ config

def check_config():
    from cisbridge import config as cfg

    files = [str(p) for p in cfg.config_files()]
    try:
        loaded = cfg.load()
    except cfg.ConfigError as exc:
        where = exc.file or "the configuration"
        key = f", key {exc.key}" if exc.key else ""
        return [Check("config", "fail", f"{where}{key}: {exc.problem}",
                      f"edit {where}{key} (see docs/configuration.md); the host refuses every request until then",
                      {"file": exc.file, "key": exc.key})], None
    config = loaded.config
    out = [Check("config", "ok", f"valid ({', '.join(loaded.files) or 'no file: built-in defaults'})",
                 detail={"files": loaded.files})]
    for warning in loaded.warnings:
        out.append(Check("config", "warn", warning, "remove the ignored key from the user configuration"))
    target = loaded.files[-1] if loaded.files else files[-1]
    if not config.allowed_origins:
        out.append(Check("allowed origins", "fail", "allowed_origins is empty: no page may use the smartcard",
                         f'add your clinical system\'s origin to {target}, e.g. allowed_origins = ["https://ehr.example.nhs.uk"]'))
    else:
        plain = [o for o in config.allowed_origins if o.startswith("http://")]
        out.append(Check("allowed origins", "ok", ", ".join(config.allowed_origins)))
        if plain:
            out.append(Check("allowed origins", "warn", f"plain http (loopback only) allowed: {', '.join(plain)}",
                             "use https origins in production; http://localhost is for testing"))
    if not config.allowed_extensions:
        out.append(Check("allowed extensions", "fail", "allowed_extensions is empty: the host refuses every extension",
                         f"remove allowed_extensions from {target} (defaults to the project's extensions) or list yours"))
    return out, config


def configured_ids(config) -> list[str]:
    if config is None:
        from cisbridge.install.installer import default_ids

        return default_ids()
    return list(config.allowed_extensions)


# ------------------------------------------------------------------ manifests

@dataclass
class Found:
    """A readable manifest the browser would use, for the self-test."""
    browser: str
    family: str
    manifest: str
    launcher: str
    ids: list[str]


def check_manifests(systems: dict[str, System], args, config) -> tuple[list[Check], list[Found], dict[str, set[str]]]:
    """Checks of each browser's manifests; the usable ones (for the self-test);
    and, per browser checked, the scopes ("user", "system") in which a
    registration exists, usable or not (for the policy checks)."""
    from cisbridge.install.installer import InstallError, State

    checks: list[Check] = []
    found: list[Found] = []
    wanted = None if not args.browser or "all" in args.browser else list(dict.fromkeys(args.browser))
    recorded: set[str] = set()
    for system in systems.values():
        try:
            state = State.load(system)
        except InstallError as exc:
            checks.append(Check("install record", "fail", str(exc), _REINSTALL))
            continue
        if state is None:
            continue
        recorded |= state.browsers()
        again = _REINSTALL + (" --system" if system.scope == "system" else "")
        for logical in state.files:
            if not system.real(logical).exists():
                checks.append(Check("install record", "fail", f"{logical} was installed but is gone", again))
        for name, entry in state.registry.items():
            assert system.registry is not None
            now = system.registry.get(entry["hive"], entry["key"])
            if now != entry["value"]:
                what = "is gone" if now is None else f"now points at {now}"
                checks.append(Check("install record", "fail", f"registry key {name} {what}", again))
    user = systems["user"]
    if wanted is None:
        browsers = sorted(set(loc.detect_browsers(user)) | (recorded & set(loc.BROWSERS)), key=loc.BROWSERS.index)
    else:
        browsers = wanted
    if not browsers and not args.profile_dir:
        checks.append(Check("browsers", "fail", "no supported browser found and nothing installed",
                            "install Chrome, Edge, Chromium, Brave, Vivaldi or Firefox, then run `cisbridge install`"))
    ids = configured_ids(config)
    seen: set[str] = set()
    registered: dict[str, set[str]] = {}
    for browser in browsers:
        label = loc.LABELS[browser]
        fam = loc.family(browser)
        candidates: list[tuple[str, str]] = []  # (scope, manifest path), in the browser's search order
        for scope in ("user", "system"):
            system = systems[scope]
            if system.windows:
                for reg in loc.registry_locations(system, browser):
                    assert system.registry is not None
                    value = system.registry.get(reg.hive, reg.key)
                    if value:
                        candidates.append((scope, value))
                    elif not reg.also:
                        candidates.append((scope, f"?{reg.name}"))
            else:
                for location in loc.file_locations(system, browser):
                    candidates.append((scope, location.manifest))
        present = [(s, m) for s, m in candidates if not m.startswith("?") and systems[s].real(m).exists()]
        registered[browser] = {s for s, _m in present}
        if not present:
            where = [m.lstrip("?") for s, m in candidates if not _is_also(systems[s], browser, m)]
            checks.append(Check(f"{label} manifest", "fail",
                                f"not found: {label} would say \"{_NOT_FOUND.get(browser, _NOT_FOUND['chrome'])}\" "
                                f"(looked in {', '.join(where[:4])}{' …' if len(where) > 4 else ''})",
                                f"run `cisbridge install --browser {browser}` (or `--system` for every user)",
                                {"looked": where}))
            continue
        for scope, manifest in present:
            key = manifest
            results, item = validate_manifest(systems[scope], manifest, fam, ids, browser)
            if key not in seen:
                checks += [Check(f"{label} manifest ({scope})", c.status, c.message, c.fix, c.detail) for c in results]
                seen.add(key)
            else:
                checks.append(Check(f"{label} manifest ({scope})", results[0].status if len(results) == 1 else "fail",
                                    f"{manifest} (shared; see above)"))
            if item is not None and all(f.launcher != item.launcher or f.family != fam for f in found):
                found.append(item)
    if args.profile_dir:
        system = systems["user"]
        manifest = loc.profile_location(system, args.profile_dir).manifest
        if not system.real(manifest).exists():
            checks.append(Check("profile manifest", "fail", f"{manifest} not found",
                                f"run `cisbridge install --browser chromium --profile-dir {args.profile_dir}`"))
        else:
            results, item = validate_manifest(system, manifest, "chromium", ids, "chromium")
            checks += [Check("profile manifest", c.status, c.message, c.fix, c.detail) for c in results]
            if item is not None:
                found.append(item)
    return checks, found, registered


def _is_also(system: System, browser: str, manifest: str) -> bool:
    for location in loc.file_locations(system, browser):
        if location.manifest == manifest:
            return location.also
    return False


def validate_manifest(system: System, manifest: str, fam: str, ids: list[str], browser: str):
    """Checks of one manifest file; and what the self-test needs when usable."""
    fails: list[Check] = []
    name = "manifest"

    def fail(message: str, fix: str = _REINSTALL, **detail) -> None:
        fails.append(Check(name, "fail", f"{manifest}: {message}", fix, {"manifest": manifest, **detail}))

    real = system.real(manifest)
    try:
        text = real.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot be read ({exc})")
        return fails, None
    try:
        data = json.loads(text)
    except ValueError as exc:
        fail(f"not valid JSON ({exc}); the browser ignores it and says the host is not found")
        return fails, None
    if not isinstance(data, dict):
        fail("not a JSON object")
        return fails, None
    host_name = data.get("name")
    if host_name != HOST_NAME or not NAME_RULE.match(str(host_name)):
        fail(f"name is {host_name!r}, not {HOST_NAME!r}")
    if not system.windows and real.name != f"{HOST_NAME}.json":
        fail(f"file name must be {HOST_NAME}.json")
    if data.get("type") != "stdio":
        fail(f"type is {data.get('type')!r}, not 'stdio'")
    path = data.get("path")
    launcher_ok = False
    isolated: bool | None = None
    if not isinstance(path, str) or not path:
        fail("no path to the host")
    elif not system.pure(path).is_absolute():
        fail(f"path {path!r} is relative; browsers need an absolute path on Linux and macOS "
             "(\"Specified native messaging host not found.\")")
    else:
        launcher = system.real(path)
        if not launcher.is_file():
            fail(f"the host {path} does not exist (\"Specified native messaging host not found.\")")
        elif not system.windows and not os.access(launcher, os.X_OK):
            fail(f"the host {path} is not executable (\"Native host has exited.\")",
                 f"chmod 755 '{path}', or {_REINSTALL}")
        else:
            launcher_ok = True
            python, isolated = _read_launcher(launcher)
            if python and not system.fake and not os.path.exists(python):
                launcher_ok = False
                fail(f"the launcher runs {python}, which no longer exists (Python moved or upgraded; "
                     "\"Native host has exited.\")",
                     "run `cisbridge install` again with the Python that has cisbridge installed")
    key = "allowed_extensions" if fam == "firefox" else "allowed_origins"
    listed = data.get(key)
    allowed: list[str] = []
    if not isinstance(listed, list) or not listed:
        fail(f"no {key} list ({'Firefox' if fam == 'firefox' else 'Chromium-family browsers'} need it)")
    else:
        for entry in listed:
            if fam == "chromium":
                m = re.fullmatch(r"chrome-extension://([a-p]{32})/", str(entry))
                if not m:
                    fail(f"{entry!r} is not chrome-extension://<32-letter id>/ (wildcards and missing '/' "
                         "are refused by the browser)")
                    continue
                allowed.append(m.group(1))
            else:
                allowed.append(str(entry))
    family_ids = [i for i in ids if manifests.is_chromium_id(i) == (fam == "chromium")]
    if allowed:
        strangers = [i for i in allowed if i not in ids]
        if not set(allowed) & set(family_ids):
            fail(f"allows {', '.join(allowed)} but the host allows {', '.join(family_ids) or 'none of this browser'}: "
                 f"the extension gets \"{_FORBIDDEN[fam]}\"",
                 f"{_REINSTALL} (it writes the configured allowed_extensions), or add the extension id with "
                 "`cisbridge install --extension-id ID`", allowed=allowed, configured=family_ids)
        elif strangers:
            fail(f"allows {', '.join(strangers)}, which the host's allowed_extensions does not list: the browser "
                 "starts the host for it and the host refuses every request",
                 f"add {', '.join(strangers)} to allowed_extensions, or {_REINSTALL}", allowed=allowed)
    if fails:
        return fails, None
    ok = Check(name, "ok", f"{manifest}: valid, host {path}, allows {', '.join(allowed)}", detail={"manifest": manifest})
    item = Found(browser, fam, manifest, path, allowed) if launcher_ok else None
    if isolated is False:
        return [ok, Check(name, "warn", f"{path} runs Python without -I (written by an earlier cisbridge): "
                          "a module in the browser's working directory or on PYTHONPATH could be loaded "
                          "into the host", _REINSTALL, {"manifest": manifest})], item
    return [ok], item


def _read_launcher(launcher) -> tuple[str | None, bool | None]:
    """The interpreter our launcher runs and whether it runs it isolated
    (None, None: not a launcher cisbridge install wrote)."""
    from cisbridge.install.installer import read_launcher

    try:
        head = launcher.read_bytes()[:4096]
    except OSError:
        return None, None
    if b"cisbridge install" not in head:
        return None, None  # not our launcher: nothing to say about its insides
    return read_launcher(head.decode("utf-8", "replace")) or (None, None)


# ------------------------------------------------------------------ policies

def check_policies(system: System, registered: dict[str, set[str]], config) -> list[Check]:
    """The Chromium-family browsers' enterprise policies that stop the host or
    the extension; nothing for a browser whose policies do not touch cisbridge."""
    ids = [i for i in configured_ids(config) if manifests.is_chromium_id(i)]
    checks: list[Check] = []
    for browser, found in policies.read(system, registered).items():
        name = f"{loc.LABELS[browser]} policy"
        for problem in found.problems:
            checks.append(Check(name, "warn", f"{problem.source} {problem.message}",
                                f"correct it, then look at {policies.POLICY_PAGES[browser]} for what the browser loaded",
                                {"browser": browser, "source": problem.source}))
        # the helpers name their checks "policy"; here they get the browser's name
        checks += [Check(name, c.status, c.message, c.fix, {"browser": browser, **c.detail})
                   for c in (*_native_messaging_policy(found), *_user_level_policy(found, registered[browser]),
                             *_extension_policy(found, ids))]
    return checks


def _origin(setting: Setting) -> dict[str, Any]:
    """A policy's value and source, for ``detail``."""
    return {"policy": setting.shown_name, "value": setting.value, "source": setting.source,
            **({"overrides": setting.overridden} if setting.overridden else {})}


def _shown(setting: Setting) -> str:
    return f"{setting.shown_name} {json.dumps(setting.value)} in {setting.source}"


def _restart(found: BrowserPolicies) -> str:
    return f"restart {loc.LABELS[found.browser]} ({policies.POLICY_PAGES[found.browser]} shows what it loaded)"


def _native_messaging_policy(found: BrowserPolicies) -> list[Check]:
    block = found.get("NativeMessagingBlocklist")
    if block is None or not ({"*", HOST_NAME} & set(block.value)):
        return []
    allow = found.get("NativeMessagingAllowlist")
    detail = {"blocklist": _origin(block), **({"allowlist": _origin(allow)} if allow else {})}
    if not policies.host_blocked(found):
        assert allow is not None
        return [Check("policy", "ok", f"{_shown(block)} blocks native messaging hosts, but "
                      f"{allow.shown_name} in {allow.source} lists {HOST_NAME}", detail=detail)]
    unlisted = f"{allow.shown_name} in {allow.source} does not list it" if allow else "no NativeMessagingAllowlist lists it"
    return [Check("policy", "fail",
                  f"{_shown(block)} blocks {HOST_NAME}, and {unlisted}: the extension gets "
                  f"\"{_FORBIDDEN['chromium']}\"",
                  f"{policies.how_to_add(found, 'NativeMessagingAllowlist', HOST_NAME, block)}; then {_restart(found)}",
                  detail)]


def _user_level_policy(found: BrowserPolicies, scopes: set[str]) -> list[Check]:
    setting = found.get("NativeMessagingUserLevelHosts")
    if setting is None or setting.value is not False:
        return []
    label = loc.LABELS[found.browser]
    shown = f"NativeMessagingUserLevelHosts is false in {setting.source}: {label} reads only system-wide registrations"
    detail = {"userLevelHosts": _origin(setting), "registered": sorted(scopes)}
    system_fix = (f"run `cisbridge install --system --browser {found.browser}` as "
                  f"{'an administrator' if found.platform == 'win32' else 'root'}")
    if "system" in scopes:
        also = "; the per-user one is not used" if "user" in scopes else ""
        return [Check("policy", "ok", f"{shown}, and cisbridge has one{also}", detail=detail)]
    if "user" in scopes:
        return [Check("policy", "fail",
                      f"{shown}, and cisbridge is registered only for this user: the extension gets "
                      f"\"{_NOT_FOUND['chrome']}\"", system_fix, detail)]
    return [Check("policy", "warn", f"{shown}: install with --system (see the manifest line above)", system_fix, detail)]


def _extension_policy(found: BrowserPolicies, ids: list[str]) -> list[Check]:
    if not ids or not (found.get("ExtensionInstallBlocklist") or found.get("ExtensionSettings")):
        return []
    verdicts = [policies.extension_verdict(found, ext) for ext in ids]
    if not any(v.blocked or v.default_block for v in verdicts):
        return []  # the policies set do not concern cisbridge's extension
    detail = {"extensions": {v.extension: {"blocked": v.blocked, **({"by": _origin(v.by)} if v.by else {})}
                             for v in verdicts}}
    label = loc.LABELS[found.browser]
    if all(v.blocked for v in verdicts):
        first = verdicts[0]
        assert first.by is not None
        unless = (", and neither ExtensionInstallAllowlist, ExtensionInstallForcelist nor ExtensionSettings allows it"
                  if first.by is first.default_block else "")
        return [Check("policy", "warn",
                      f"{_shown(first.by)} blocks the cisbridge extension {', '.join(ids)}{unless}: "
                      f"{label} will not install it, and turns it off if it is installed",
                      f"{policies.how_to_allow_extension(found, first)} (or force-install it with the templates "
                      f"of docs/deployment.md §4); then {_restart(found)}", detail)]
    restricting = next(v.default_block or v.by for v in verdicts if v.default_block or v.blocked)
    parts = [f"{v.extension} {'blocked' if v.blocked else 'allowed'}"
             + (f" by {v.by.shown_name} in {v.by.source}" if v.by is not None and v.by is not v.default_block else "")
             for v in verdicts]
    return [Check("policy", "ok", f"{_shown(restricting)} restricts extensions: {'; '.join(parts)}", detail=detail)]


# ------------------------------------------------------------------ sandboxes

def check_sandboxes(system: System) -> list[Check]:
    if system.platform != "linux":
        return []
    hits = []
    for candidate in loc.sandboxed_candidates(system):
        if any(system.real(p).exists() for p in candidate.evidence):
            hits.append(Check(f"{loc.LABELS[candidate.browser]} ({candidate.packaging})", "warn",
                              f"{candidate.packaging} package found", candidate.workaround))
    return hits or [Check("snap/flatpak", "ok", "no Snap or Flatpak browser found")]


# ------------------------------------------------------------------ card

def pkcs11_module(config) -> str:
    module = config.pkcs11.module if config is not None else None
    if module:
        return module
    from cisbridge.card import default_module

    return default_module()


_FIX_MODULE = ("install the card middleware (OpenSC: `apt install opensc-pkcs11`, or the NHS Identity Agent) "
               "or set [pkcs11] module in the configuration to its PKCS#11 library")


def check_pkcs11(config) -> Check:
    """Load the module and choose the card exactly as the host does (cisbridge.card)."""
    from cisbridge import config as cfg
    from cisbridge.card import make_card
    from cisbridge.protocol import CisError, ErrorCode

    name = "PKCS#11"
    module = pkcs11_module(config)
    detail = {"module": module}
    if os.path.isabs(module) and not os.path.exists(module):
        return Check(name, "fail", f"module {module} not found", _FIX_MODULE, detail)
    card = make_card(config if config is not None else cfg.Config())
    card.module = module
    try:
        status = bounded(card.status)
    except TimeoutError as exc:
        return Check(name, "fail", f"module {module} did not answer ({exc})",
                     "unplug and replug the reader; if it persists, reinstall the card middleware", detail)
    except CisError as exc:
        detail.update(exc.detail or {})
        if exc.code == ErrorCode.AGENT_UNAVAILABLE:
            return Check(name, "fail", f"module {module} could not be loaded: {exc.message}", _FIX_MODULE, detail)
        if exc.code == ErrorCode.NO_CARD and not (config and config.pkcs11.token_label) and "Several" not in exc.message:
            return Check(name, "warn", f"module {module} loaded; no card: {exc.message}",
                         "insert the smartcard; if it is in, check the reader (see the PC/SC line)", detail)
        return Check(name, "fail", f"module {module} loaded; {exc.message}",
                     "use the right card, or set [pkcs11] token_label to choose one", detail)
    except Exception as exc:  # noqa: BLE001 - a module that misbehaves in any way is the finding
        return Check(name, "fail", f"module {module}: {type(exc).__name__}: {exc}", _FIX_MODULE, detail)
    finally:
        try:
            card.close()
        except Exception:  # noqa: BLE001 - closing is best effort here
            pass
    detail["token"] = status.label
    if status.pin_locked:
        return Check(name, "fail", f"card {status.label!r} is locked (too many wrong passcodes)",
                     "ask your Registration Authority to unlock the smartcard", detail)
    flags = " (a wrong passcode was entered since the last right one)" if status.pin_count_low else ""
    return Check(name, "ok", f"module {module} loaded; card {status.label!r} has a certificate and key{flags}",
                 detail=detail)


def list_readers():
    """(status, [(name, card present)]) from PC/SC, as the host's reader monitor
    sees it; status is "ok" or "unavailable: why"."""
    from cisbridge.card.pcsc import list_readers as one_look

    snap = one_look()
    return snap.status, [(r.name, r.card_present) for r in snap.readers]


def _pcsc_fix() -> str:
    return {
        "linux": "start pcscd: `sudo systemctl enable --now pcscd.socket` (package pcscd)",
        "darwin": "plug in the reader; if it is in, restart the Mac (the smart card service starts on demand)",
        "win32": "plug in the reader and start the Smart Card service (SCardSvr)",
    }[current_platform()]


def check_pcsc() -> Check:
    name = "PC/SC"
    try:
        status, readers = bounded(list_readers)
    except TimeoutError as exc:
        return Check(name, "fail", f"the smart card service did not answer ({exc})", _pcsc_fix())
    except Exception as exc:  # noqa: BLE001
        return Check(name, "fail", f"cannot ask the smart card service: {exc}", _pcsc_fix())
    if status != "ok":
        return Check(name, "fail", f"smart card service {status}", _pcsc_fix())
    if not readers:
        return Check(name, "warn", "the smart card service answers, but no reader is connected",
                     "plug in the smartcard reader")
    shown = ", ".join(f"{n} ({'card' if p else 'empty'})" for n, p in readers)
    return Check(name, "ok", f"readers: {shown}", detail={"readers": [{"name": n, "cardPresent": p} for n, p in readers]})


# ------------------------------------------------------------------ agent

def check_agent(config) -> Check:
    name = "agent"
    if config is None:
        return Check(name, "skip", "not checked: the configuration is invalid")
    agent = config.agent
    if agent.kind == "none":
        return Check(name, "ok", "none configured: getTicket is unavailable, signing and certificates work")
    if agent.kind == "ticketapi":
        from cisbridge.agents import ticketapi

        try:
            library = ticketapi.library_from_config(config)
            message = bounded(lambda: ticketapi.probe(library))
        except TimeoutError as exc:
            return Check(name, "fail", f"the NHS Ticket API did not answer ({exc})",
                         "restart the NHS Identity Agent; if it persists, reinstall it")
        except Exception as exc:  # noqa: BLE001 - CisError or a load failure: its message is for people
            text = getattr(exc, "message", None) or str(exc)
            return Check(name, "fail", f"Ticket API: {text}",
                         "install or start the NHS Identity Agent, or set [agent] library to its TicketApiDll.dll")
        return Check(name, "ok", message)
    return check_gas(agent)


def check_gas(agent) -> Check:
    import socket
    import ssl
    from urllib.parse import urlsplit

    name = "agent (GAS)"
    if not agent.url:
        return Check(name, "fail", "[agent] kind is gas but [agent] url is not set", "set [agent] url to the GAS base URL")
    parts = urlsplit(agent.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if agent.ca_file and not os.path.isfile(agent.ca_file):
        return Check(name, "fail", f"[agent] ca_file {agent.ca_file} not found",
                     "set [agent] ca_file to the PEM file of the CA that issues GAS's certificate")

    def connect() -> str:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            if parts.scheme != "https":
                return f"{agent.url} reachable (plain http: loopback test setup)"
            context = ssl.create_default_context(cafile=agent.ca_file or None)
            with context.wrap_socket(sock, server_hostname=host) as tls:
                return f"{agent.url} reachable, TLS {tls.version()} verified against {agent.ca_file or 'the system CAs'}"

    try:
        return Check(name, "ok", bounded(connect, TIMEOUT + 0.2))
    except ssl.SSLCertVerificationError as exc:
        return Check(name, "fail", f"{agent.url}: TLS certificate not trusted ({exc.verify_message})",
                     "set [agent] ca_file to the CA bundle GAS's certificate chains to")
    except (OSError, TimeoutError) as exc:
        return Check(name, "fail", f"{agent.url} unreachable ({exc})",
                     "check the network (HSCN) and the URL; GAS must be reachable from this computer")


# ------------------------------------------------------------------ self-test

_HEADER = struct.Struct("=I")


def self_test(found: list[Found], config) -> list[Check]:
    if not found:
        return [Check("self-test", "skip", "no usable manifest to start the host from")]
    checks = []
    done: set[tuple[str, str]] = set()
    for item in found:
        if (item.launcher, item.family) in done:
            continue
        done.add((item.launcher, item.family))
        checks.append(launch(item, config))
    return checks


def browser_argv(item: Found) -> list[str]:
    """What the browser passes: Chromium the caller origin, Firefox the manifest path and add-on id."""
    if item.family == "firefox":
        return [item.manifest, item.ids[0]]
    return [f"chrome-extension://{item.ids[0]}/"]


def launch(item: Found, config) -> Check:
    name = f"self-test ({loc.LABELS[item.browser]})"
    argv = [item.launcher, *browser_argv(item)]
    if current_platform() == "win32":
        argv = ["cmd.exe", "/d", "/c", *argv]  # as Chrome starts .bat hosts
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return Check(name, "fail", f"cannot start {item.launcher}: {exc} (the browser says \"Native host has exited.\")",
                     _REINSTALL)
    try:
        ready = _read_frame(proc, TIMEOUT)
        if ready is None or ready.get("event") != "ready":
            return Check(name, "fail", f"the host sent no ready message ({_stderr_tail(proc)}); the browser says "
                         "\"Native host has exited.\"", f"{_REINSTALL}; its log is in the cisbridge log directory")
        data = ready.get("data") or {}
        allowed = data.get("allowedOrigins") or []
        origin = allowed[0] if allowed else manifests.EXAMPLE_ORIGIN
        request = json.dumps({"id": "doctor", "method": "getStatus", "origin": origin}).encode()
        proc.stdin.write(_HEADER.pack(len(request)) + request)
        proc.stdin.flush()
        answer = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            frame = _read_frame(proc, deadline - time.monotonic())
            if frame is None:
                break
            if frame.get("id") == "doctor":
                answer = frame
                break
        elapsed = (time.monotonic() - started) * 1000
        if answer is None:
            return Check(name, "fail", f"the host did not answer getStatus ({_stderr_tail(proc)})",
                         "see the host log (cisbridge log directory); then run doctor again")
        if config is not None and config.allowed_origins and not allowed:
            return Check(name, "fail",
                         f"the host started but refuses the caller {item.ids[0]}: it is not in allowed_extensions",
                         f"add {item.ids[0]} to allowed_extensions, or {_REINSTALL}")
        if "error" in answer:
            err = answer["error"]
            status = "warn" if err.get("code") == "ORIGIN_NOT_ALLOWED" and not allowed else "fail"
            return Check(name, status, f"host {data.get('version')} answered getStatus with {err.get('code')}: "
                         f"{err.get('message')}", "see the config line above")
        result = answer["result"]
        return Check(name, "ok", f"host {result.get('host')} (protocol {result.get('protocol')}, agent "
                     f"{result.get('agent')}) answered ready and getStatus in {elapsed:.0f} ms via {item.launcher}",
                     detail={"status": result, "argv": argv})
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()


def _read_frame(proc: subprocess.Popen, timeout: float) -> dict | None:
    def read() -> dict | None:
        head = proc.stdout.read(4)
        if len(head) < 4:
            return None
        (size,) = _HEADER.unpack(head)
        return json.loads(proc.stdout.read(size))

    try:
        return bounded(read, max(timeout, 0.01))
    except (TimeoutError, ValueError):
        return None


def _stderr_tail(proc: subprocess.Popen) -> str:
    try:
        proc.wait(0.5)  # stdout closed: the exit is usually a moment behind
    except subprocess.TimeoutExpired:
        return "it is still running but silent"
    try:
        text = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
    except (OSError, ValueError):
        text = []
    tail = text[-1] if text else ""
    return f"exit status {proc.returncode}" + (f": {tail}" if tail else "")
