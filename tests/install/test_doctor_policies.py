"""cisbridge doctor reads the browsers' enterprise policies that stop the host.

Each test lays policy down where the browser reads it — a JSON file (Linux),
a managed-preferences plist (macOS), the registry (Windows, through the fake
registry under ``--root``) — installs, and runs the real ``cisbridge doctor``.
The paths are written out here, not taken from the code under test.
"""

from __future__ import annotations

import json
import plistlib

import pytest
from installenv import CHROME_ID, HOST

from cisbridge.install.system import System

PLATFORMS = ["linux", "darwin", "win32"]
BROWSERS = ["chrome", "chromium", "edge", "brave", "vivaldi"]
LABELS = {"chrome": "Google Chrome", "chromium": "Chromium", "edge": "Microsoft Edge", "brave": "Brave",
          "vivaldi": "Vivaldi"}
LINUX_DIRS = {
    "chrome": "etc/opt/chrome/policies/managed",
    "chromium": "etc/chromium/policies/managed",
    "edge": "etc/opt/edge/policies/managed",
    "brave": "etc/brave/policies/managed",
    "vivaldi": "etc/vivaldi/policies/managed",
}
BUNDLES = {"chrome": "com.google.Chrome", "chromium": "org.chromium.Chromium", "edge": "com.microsoft.Edge",
           "brave": "com.brave.Browser", "vivaldi": "com.vivaldi.Vivaldi"}
KEYS = {
    "chrome": "SOFTWARE\\Policies\\Google\\Chrome",
    "chromium": "SOFTWARE\\Policies\\Chromium",
    "edge": "SOFTWARE\\Policies\\Microsoft\\Edge",
    "brave": "SOFTWARE\\Policies\\BraveSoftware\\Brave",
    "vivaldi": "SOFTWARE\\Policies\\Vivaldi",
}
FORBIDDEN = "Access to the specified native messaging host is forbidden."
NOT_FOUND = "Specified native messaging host not found."


class Machine:
    """A fake root for one platform: install into it, set policies, run doctor."""

    def __init__(self, env, tmp_path, platform):
        self.env = env
        self.platform = platform
        self.root = tmp_path / "root"
        self.root.mkdir()

    def install(self, browser, system=False):
        self.env.run("install", "--platform", self.platform, "--root", str(self.root), "--browser", browser,
                     *(["--system"] if system else []))

    def doctor(self, browser):
        return self.env.doctor("--platform", self.platform, "--root", str(self.root), "--browser", browser)

    def policy(self, browser, policies, *, file="cisbridge-test.json", user=False, hive="HKLM"):
        """Set policies the way an administrator's tools write them; returns
        the source doctor should name."""
        if self.platform == "linux":
            path = self.root / LINUX_DIRS[browser] / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(policies))
            return f"/{LINUX_DIRS[browser]}/{file}"
        if self.platform == "darwin":
            name = System("darwin", "user", root=self.root).user_name()
            folder = f"Library/Managed Preferences/{name}" if user else "Library/Managed Preferences"
            path = self.root / folder / f"{BUNDLES[browser]}.plist"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(plistlib.dumps(policies))
            return f"/{folder}/{BUNDLES[browser]}.plist"
        registry = self.root / "registry.json"
        data = json.loads(registry.read_text()) if registry.exists() else {}
        base = f"{hive}\\{KEYS[browser]}"
        for name, value in policies.items():
            if isinstance(value, list):  # a subkey of numbered REG_SZ values, as Group Policy writes lists
                data[f"{base}\\{name}"] = {str(i): item for i, item in enumerate(value, 1)}
            elif isinstance(value, bool):  # REG_DWORD
                data.setdefault(base, {})[name] = int(value)
            else:  # dictionaries: one REG_SZ of JSON
                data.setdefault(base, {})[name] = json.dumps(value)
        registry.write_text(json.dumps(data))
        return base


@pytest.fixture(params=PLATFORMS)
def machine(request, env, tmp_path):
    return Machine(env, tmp_path, request.param)


def policy_checks(checks, browser):
    return [c for c in checks if c["check"] == f"{LABELS[browser]} policy"]


def only(checks, browser, status):
    found = [c for c in policy_checks(checks, browser) if c["status"] == status]
    assert len(found) == 1, json.dumps(policy_checks(checks, browser), indent=1)
    return found[0]


# ------------------------------------------------------------------ nothing set

def test_no_policy_no_policy_checks(machine):
    machine.install("chrome")
    code, checks = machine.doctor("chrome")
    assert policy_checks(checks, "chrome") == []


def test_policies_that_do_not_concern_cisbridge_say_nothing(machine):
    machine.install("chrome")
    machine.policy("chrome", {"NativeMessagingBlocklist": ["com.other.host"], "HomepageLocation": "https://nhs.uk",
                              "ExtensionInstallBlocklist": ["a" * 32]})
    code, checks = machine.doctor("chrome")
    assert policy_checks(checks, "chrome") == []


# ------------------------------------------------------------------ NativeMessagingBlocklist

@pytest.mark.parametrize("browser", BROWSERS)
def test_blocklist_star_fails_naming_the_source(machine, browser):
    machine.install(browser)
    source = machine.policy(browser, {"NativeMessagingBlocklist": ["*"]})
    code, checks = machine.doctor(browser)
    assert code == 1
    check = only(checks, browser, "fail")
    assert FORBIDDEN in check["message"]
    assert "NativeMessagingAllowlist" in check["fix"] and HOST in check["fix"]
    where = source + ("\\NativeMessagingBlocklist" if machine.platform == "win32" else "")
    assert where in check["message"] and check["detail"]["blocklist"]["source"] == where
    assert check["detail"]["blocklist"]["value"] == ["*"] and check["detail"]["browser"] == browser


def test_blocklist_naming_the_host_fails(machine):
    machine.install("edge")
    machine.policy("edge", {"NativeMessagingBlocklist": ["com.other.host", HOST]})
    code, checks = machine.doctor("edge")
    assert FORBIDDEN in only(checks, "edge", "fail")["message"]


def test_allowlist_exception_is_ok(machine):
    machine.install("chrome")
    source = machine.policy("chrome", {"NativeMessagingBlocklist": ["*"], "NativeMessagingAllowlist": [HOST]})
    code, checks = machine.doctor("chrome")
    check = only(checks, "chrome", "ok")
    assert HOST in check["message"] and source in check["detail"]["allowlist"]["source"]
    assert not [c for c in policy_checks(checks, "chrome") if c["status"] == "fail"]


def test_allowlist_of_other_hosts_does_not_help(machine):
    machine.install("chrome")
    machine.policy("chrome", {"NativeMessagingBlocklist": ["*"], "NativeMessagingAllowlist": ["com.other.host"]})
    code, checks = machine.doctor("chrome")
    check = only(checks, "chrome", "fail")
    assert "does not list it" in check["message"] and "NativeMessagingAllowlist" in check["fix"]


def test_names_before_chrome_86_count(machine):
    machine.install("chrome")
    machine.policy("chrome", {"NativeMessagingBlacklist": ["*"]})
    code, checks = machine.doctor("chrome")
    assert "NativeMessagingBlacklist" in only(checks, "chrome", "fail")["message"]


def test_text_output_names_the_policy_and_the_fix(env, tmp_path):
    m = Machine(env, tmp_path, "linux")
    m.install("chrome")
    m.policy("chrome", {"NativeMessagingBlocklist": ["*"]}, file="lockdown.json")
    proc = env.run("doctor", "--root", str(m.root), "--browser", "chrome", check=False)
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("✗ Google Chrome policy: NativeMessagingBlocklist"))
    assert "/etc/opt/chrome/policies/managed/lockdown.json" in lines[at] and FORBIDDEN in lines[at]
    assert lines[at + 1].strip() == (
        'fix: add "NativeMessagingAllowlist": ["org.cisbridge.host"] to '
        "/etc/opt/chrome/policies/managed/lockdown.json; then restart Google Chrome "
        "(chrome://policy shows what it loaded)")


# ------------------------------------------------------------------ NativeMessagingUserLevelHosts

@pytest.mark.parametrize("browser", ["chrome", "edge"])
def test_user_level_hosts_off_with_only_a_user_registration_fails(machine, browser):
    machine.install(browser)
    source = machine.policy(browser, {"NativeMessagingUserLevelHosts": False})
    code, checks = machine.doctor(browser)
    check = only(checks, browser, "fail")
    assert NOT_FOUND in check["message"] and source in check["message"]
    assert f"cisbridge install --system --browser {browser}" in check["fix"]
    assert check["detail"]["registered"] == ["user"]


def test_user_level_hosts_off_with_a_system_registration_is_ok(machine):
    machine.install("chrome")
    machine.install("chrome", system=True)
    machine.policy("chrome", {"NativeMessagingUserLevelHosts": False})
    code, checks = machine.doctor("chrome")
    check = only(checks, "chrome", "ok")
    assert "per-user one is not used" in check["message"]
    assert check["detail"]["registered"] == ["system", "user"]


def test_user_level_hosts_off_and_nothing_installed_says_to_use_system(machine):
    machine.policy("chrome", {"NativeMessagingUserLevelHosts": False})
    code, checks = machine.doctor("chrome")
    assert "--system" in only(checks, "chrome", "warn")["fix"]


def test_user_level_hosts_on_says_nothing(machine):
    machine.install("chrome")
    machine.policy("chrome", {"NativeMessagingUserLevelHosts": True})
    code, checks = machine.doctor("chrome")
    assert policy_checks(checks, "chrome") == []


# ------------------------------------------------------------------ extension install policies

def test_extension_blocklist_star_warns(machine):
    machine.install("chrome")
    source = machine.policy("chrome", {"ExtensionInstallBlocklist": ["*"]})
    code, checks = machine.doctor("chrome")
    check = only(checks, "chrome", "warn")
    assert CHROME_ID in check["message"] and "will not install it" in check["message"]
    assert "ExtensionInstallAllowlist" in check["fix"] and CHROME_ID in check["fix"]
    assert source in check["detail"]["extensions"][CHROME_ID]["by"]["source"]
    # a warning, not a failure: the host itself would run
    assert not [c for c in policy_checks(checks, "chrome") if c["status"] == "fail"]


@pytest.mark.parametrize("exception", [
    {"ExtensionInstallAllowlist": [CHROME_ID]},
    {"ExtensionInstallForcelist": [f"{CHROME_ID};https://example.nhs.uk/updates.xml"]},
    {"ExtensionSettings": {CHROME_ID: {"installation_mode": "force_installed",
                                       "update_url": "https://example.nhs.uk/updates.xml"}}},
    {"ExtensionSettings": {f"{'b' * 32}, {CHROME_ID}": {"installation_mode": "allowed"}}},
], ids=["allowlist", "forcelist", "settings-force", "settings-several-ids"])
def test_extension_exceptions_are_ok(machine, exception):
    machine.install("chrome")
    machine.policy("chrome", {"ExtensionInstallBlocklist": ["*"], **exception})
    code, checks = machine.doctor("chrome")
    check = only(checks, "chrome", "ok")
    assert f"{CHROME_ID} allowed by {next(iter(exception))}" in check["message"]


def test_extension_settings_wildcard_blocks(machine):
    machine.install("chrome")
    machine.policy("chrome", {"ExtensionSettings": {"*": {"installation_mode": "blocked"}}})
    code, checks = machine.doctor("chrome")
    check = only(checks, "chrome", "warn")
    assert "ExtensionSettings" in check["message"] and f'"{CHROME_ID}"' in check["fix"]


def test_extension_blocked_by_id_beats_the_allowlist(machine):
    machine.install("chrome")
    machine.policy("chrome", {"ExtensionInstallBlocklist": [CHROME_ID], "ExtensionInstallAllowlist": [CHROME_ID]})
    code, checks = machine.doctor("chrome")
    assert f"remove {CHROME_ID} from ExtensionInstallBlocklist" in only(checks, "chrome", "warn")["fix"]


# ------------------------------------------------------------------ where values come from

def test_invalid_json_file_is_reported_and_ignored(env, tmp_path):
    m = Machine(env, tmp_path, "linux")
    m.install("chrome")
    m.policy("chrome", {"NativeMessagingBlocklist": ["*"]}, file="a.json")
    broken = m.root / LINUX_DIRS["chrome"] / "b.json"
    broken.write_text('{"NativeMessagingAllowlist": ["org.cisbridge.host"]')  # the allowlist, unreadable
    code, checks = m.doctor("chrome")
    warning = only(checks, "chrome", "warn")
    assert "/etc/opt/chrome/policies/managed/b.json" in warning["message"] and "not valid JSON" in warning["message"]
    assert FORBIDDEN in only(checks, "chrome", "fail")["message"]


def test_trailing_commas_and_comments_are_read_as_chrome_reads_them(env, tmp_path):
    m = Machine(env, tmp_path, "linux")
    m.install("chrome")
    path = m.root / LINUX_DIRS["chrome"] / "lockdown.json"
    path.parent.mkdir(parents=True)
    path.write_text('{\n  // all hosts off\n  "NativeMessagingBlocklist": ["*",],\n}\n')
    code, checks = m.doctor("chrome")
    assert FORBIDDEN in only(checks, "chrome", "fail")["message"]
    assert not [c for c in policy_checks(checks, "chrome") if c["status"] == "warn"]


@pytest.mark.parametrize("order", ["block-last", "unblock-last"])
def test_the_last_file_in_name_order_wins(env, tmp_path, order):
    m = Machine(env, tmp_path, "linux")
    m.install("chrome")
    first, last = (["com.other.host"], ["*"]) if order == "block-last" else (["*"], ["com.other.host"])
    m.policy("chrome", {"NativeMessagingBlocklist": first}, file="10-site.json")
    m.policy("chrome", {"NativeMessagingBlocklist": last}, file="90-local.json")
    code, checks = m.doctor("chrome")
    failed = [c for c in policy_checks(checks, "chrome") if c["status"] == "fail"]
    if order == "block-last":
        assert len(failed) == 1 and failed[0]["detail"]["blocklist"]["source"].endswith("/90-local.json")
        assert failed[0]["detail"]["blocklist"]["overrides"] == ["/etc/opt/chrome/policies/managed/10-site.json"]
    else:
        assert failed == []


def test_hklm_overrides_hkcu(env, tmp_path):
    m = Machine(env, tmp_path, "win32")
    m.install("chrome")
    m.policy("chrome", {"NativeMessagingBlocklist": ["*"], "NativeMessagingAllowlist": [HOST]}, hive="HKCU")
    m.policy("chrome", {"NativeMessagingAllowlist": ["com.other.host"]}, hive="HKLM")
    code, checks = m.doctor("chrome")
    check = only(checks, "chrome", "fail")  # HKCU's blocklist stands, its allowlist loses to HKLM's
    assert check["detail"]["blocklist"]["source"] == f"HKCU\\{KEYS['chrome']}\\NativeMessagingBlocklist"
    assert check["detail"]["allowlist"]["source"] == f"HKLM\\{KEYS['chrome']}\\NativeMessagingAllowlist"
    assert check["detail"]["allowlist"]["overrides"] == [f"HKCU\\{KEYS['chrome']}\\NativeMessagingAllowlist"]


def test_hklm_boolean_overrides_hkcu(env, tmp_path):
    m = Machine(env, tmp_path, "win32")
    m.install("edge")
    m.policy("edge", {"NativeMessagingUserLevelHosts": False}, hive="HKCU")
    m.policy("edge", {"NativeMessagingUserLevelHosts": True}, hive="HKLM")
    code, checks = m.doctor("edge")
    assert policy_checks(checks, "edge") == []
    m.policy("edge", {"NativeMessagingUserLevelHosts": False}, hive="HKLM")
    code, checks = m.doctor("edge")
    assert only(checks, "edge", "fail")["detail"]["userLevelHosts"]["source"] == (
        f"HKLM\\{KEYS['edge']}\\NativeMessagingUserLevelHosts")


def test_windows_list_written_as_one_json_string(env, tmp_path):
    m = Machine(env, tmp_path, "win32")
    m.install("chrome")
    registry = m.root / "registry.json"
    data = json.loads(registry.read_text())
    data[f"HKLM\\{KEYS['chrome']}"] = {"NativeMessagingBlocklist": '["*"]'}
    registry.write_text(json.dumps(data))
    code, checks = m.doctor("chrome")
    assert FORBIDDEN in only(checks, "chrome", "fail")["message"]


def test_windows_boolean_that_is_not_a_number_is_reported(env, tmp_path):
    m = Machine(env, tmp_path, "win32")
    m.install("chrome")
    registry = m.root / "registry.json"
    data = json.loads(registry.read_text())
    data[f"HKLM\\{KEYS['chrome']}"] = {"NativeMessagingUserLevelHosts": "false"}
    registry.write_text(json.dumps(data))
    code, checks = m.doctor("chrome")
    assert "not a DWORD" in only(checks, "chrome", "warn")["message"]
    assert not [c for c in policy_checks(checks, "chrome") if c["status"] == "fail"]


def test_macos_user_managed_preferences_are_read(env, tmp_path):
    m = Machine(env, tmp_path, "darwin")
    m.install("chrome")
    source = m.policy("chrome", {"NativeMessagingBlocklist": ["*"]}, user=True)
    code, checks = m.doctor("chrome")
    assert only(checks, "chrome", "fail")["detail"]["blocklist"]["source"] == source


def test_damaged_plist_is_reported(env, tmp_path):
    m = Machine(env, tmp_path, "darwin")
    m.install("chrome")
    path = m.root / "Library/Managed Preferences/com.google.Chrome.plist"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<?xml version='1.0'?><plist><dict><key>x</key>")
    code, checks = m.doctor("chrome")
    assert "/Library/Managed Preferences/com.google.Chrome.plist" in only(checks, "chrome", "warn")["message"]


def test_each_browser_reads_only_its_own_policies(env, tmp_path):
    m = Machine(env, tmp_path, "linux")
    m.install("chrome")
    m.install("edge")
    m.policy("edge", {"NativeMessagingBlocklist": ["*"]})
    code, checks = m.env.doctor("--root", str(m.root), "--browser", "chrome", "--browser", "edge")
    assert policy_checks(checks, "chrome") == []
    assert only(checks, "edge", "fail")
