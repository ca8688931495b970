"""Where each browser reads native messaging host manifests.

Sources: Chrome's "Native messaging" page (host locations per OS, registry
keys on Windows), Microsoft Edge's native messaging page, MDN's "Native
manifests" page (Firefox), and Chromium's ``chrome_paths.cc`` (per-profile
``NativeMessagingHosts`` on Linux and macOS, which is also what Brave, Vivaldi
and Edge build on).  Rows marked *also read* are directories or keys a browser
has been seen to read besides its own; writing there is harmless (a manifest
nobody reads is inert) and makes the host found whichever build is installed.

On Linux and macOS the file name must be ``<host name>.json``.  On Windows the
browsers look the name up in the registry, whose default value is the full
path of the manifest file, which may be named anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from cisbridge import HOST_NAME
from cisbridge.install.system import System

BROWSERS = ("chrome", "chromium", "edge", "brave", "vivaldi", "firefox")
CHROMIUM_FAMILY = ("chrome", "chromium", "edge", "brave", "vivaldi")
LABELS = {
    "chrome": "Google Chrome",
    "chromium": "Chromium",
    "edge": "Microsoft Edge",
    "brave": "Brave",
    "vivaldi": "Vivaldi",
    "firefox": "Firefox",
}
MANIFEST_FILE = f"{HOST_NAME}.json"


def family(browser: str) -> str:
    return "firefox" if browser == "firefox" else "chromium"


@dataclass(frozen=True)
class FileLocation:
    browser: str
    #: logical directory holding ``org.cisbridge.host.json``
    directory: str
    #: True when this is another browser's location that this one also reads
    also: bool = False

    @property
    def manifest(self) -> str:
        sep = "\\" if ":\\" in self.directory else "/"
        return f"{self.directory}{sep}{MANIFEST_FILE}"


@dataclass(frozen=True)
class RegistryLocation:
    browser: str
    hive: str  # HKCU or HKLM
    key: str  # ...\NativeMessagingHosts\org.cisbridge.host
    also: bool = False

    @property
    def name(self) -> str:
        return f"{self.hive}\\{self.key}"


# Linux, per user: directories under $XDG_CONFIG_HOME (~/.config), one per channel.
_LINUX_USER_CONFIG = {
    "chrome": ["google-chrome", "google-chrome-beta", "google-chrome-unstable"],
    "chromium": ["chromium"],
    "edge": ["microsoft-edge", "microsoft-edge-beta", "microsoft-edge-dev"],
    "brave": ["BraveSoftware/Brave-Browser", "BraveSoftware/Brave-Browser-Beta", "BraveSoftware/Brave-Browser-Nightly"],
    "vivaldi": ["vivaldi", "vivaldi-snapshot"],
}
# Linux, system-wide: (directory, also-read?)
_LINUX_SYSTEM = {
    "chrome": [("/etc/opt/chrome/native-messaging-hosts", False)],
    "chromium": [("/etc/chromium/native-messaging-hosts", False)],
    "edge": [("/etc/opt/edge/native-messaging-hosts", False)],
    "brave": [("/etc/opt/chrome/native-messaging-hosts", True), ("/etc/chromium/native-messaging-hosts", True)],
    "vivaldi": [("/etc/opt/vivaldi/native-messaging-hosts", False), ("/etc/opt/chrome/native-messaging-hosts", True)],
}
# macOS, per user: under ~/Library/Application Support/
_MAC_USER = {
    "chrome": ["Google/Chrome", "Google/Chrome Beta", "Google/Chrome Dev", "Google/Chrome Canary"],
    "chromium": ["Chromium"],
    "edge": ["Microsoft Edge", "Microsoft Edge Beta", "Microsoft Edge Dev"],
    "brave": ["BraveSoftware/Brave-Browser", "BraveSoftware/Brave-Browser-Beta", "BraveSoftware/Brave-Browser-Nightly"],
    "vivaldi": ["Vivaldi"],
}
_MAC_SYSTEM = {
    "chrome": [("/Library/Google/Chrome/NativeMessagingHosts", False)],
    "chromium": [("/Library/Application Support/Chromium/NativeMessagingHosts", False)],
    "edge": [("/Library/Microsoft/Edge/NativeMessagingHosts", False)],
    "brave": [
        ("/Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts", False),
        ("/Library/Google/Chrome/NativeMessagingHosts", True),
    ],
    "vivaldi": [
        ("/Library/Application Support/Vivaldi/NativeMessagingHosts", False),
        ("/Library/Google/Chrome/NativeMessagingHosts", True),
    ],
    "firefox": [("/Library/Application Support/Mozilla/NativeMessagingHosts", False)],
}
# Windows: registry keys (HKCU per user, HKLM system-wide), without the host name.
_WINDOWS_KEYS = {
    "chrome": [("Software\\Google\\Chrome\\NativeMessagingHosts", False)],
    "chromium": [("Software\\Chromium\\NativeMessagingHosts", False)],
    "edge": [("Software\\Microsoft\\Edge\\NativeMessagingHosts", False)],
    "brave": [
        ("Software\\BraveSoftware\\Brave-Browser\\NativeMessagingHosts", False),
        ("Software\\Google\\Chrome\\NativeMessagingHosts", True),
    ],
    "vivaldi": [
        ("Software\\Vivaldi\\NativeMessagingHosts", False),
        ("Software\\Google\\Chrome\\NativeMessagingHosts", True),
    ],
    "firefox": [("Software\\Mozilla\\NativeMessagingHosts", False)],
}


def file_locations(system: System, browser: str) -> list[FileLocation]:
    """Directories (Linux, macOS) where ``browser`` reads manifests in this scope."""
    if system.windows:
        return []
    out: list[FileLocation] = []
    if system.platform == "linux":
        if system.scope == "user":
            if browser == "firefox":
                out.append(FileLocation(browser, str(system.home() / ".mozilla" / "native-messaging-hosts")))
            else:
                config = system.xdg("XDG_CONFIG_HOME", ".config")
                out += [FileLocation(browser, str(config / d / "NativeMessagingHosts")) for d in _LINUX_USER_CONFIG[browser]]
        elif browser == "firefox":
            out.append(FileLocation(browser, "/usr/lib/mozilla/native-messaging-hosts"))
            # 64-bit Fedora/RHEL builds look in lib64 instead.
            if system.real("/usr/lib64").is_dir():
                out.append(FileLocation(browser, "/usr/lib64/mozilla/native-messaging-hosts"))
        else:
            out += [FileLocation(browser, d, also) for d, also in _LINUX_SYSTEM[browser]]
    else:  # darwin
        if system.scope == "user":
            support = system.home() / "Library" / "Application Support"
            if browser == "firefox":
                out.append(FileLocation(browser, str(support / "Mozilla" / "NativeMessagingHosts")))
            else:
                out += [FileLocation(browser, str(support / d / "NativeMessagingHosts")) for d in _MAC_USER[browser]]
        else:
            out += [FileLocation(browser, d, also) for d, also in _MAC_SYSTEM[browser]]
    return out


def registry_locations(system: System, browser: str) -> list[RegistryLocation]:
    if not system.windows:
        return []
    return [RegistryLocation(browser, system.hive(), f"{key}\\{HOST_NAME}", also) for key, also in _WINDOWS_KEYS[browser]]


def windows_manifest(system: System, browser_family: str) -> str:
    """Windows: the manifest file the registry values point at, one per family."""
    return str(system.install_dir() / f"{HOST_NAME}.{browser_family}.json")


def profile_location(system: System, profile_dir: str) -> FileLocation:
    """One Chromium profile (``--user-data-dir``): its own NativeMessagingHosts/."""
    return FileLocation("chromium", str(system.pure(profile_dir) / "NativeMessagingHosts"))


# --------------------------------------------------------------- sandboxes

@dataclass(frozen=True)
class Sandboxed:
    browser: str
    packaging: str  # "snap" | "flatpak"
    #: logical paths whose existence shows it is installed
    evidence: tuple[str, ...]
    workaround: str


_SNAP_FIREFOX = (
    "Firefox from Snap starts native hosts through the WebExtensions portal "
    "(xdg-desktop-portal 1.17 or later), reading the normal ~/.mozilla/native-messaging-hosts: "
    "update xdg-desktop-portal if the host is not found, or install Firefox from Mozilla's APT "
    "repository (docs/troubleshooting.md, 'Snap and Flatpak')."
)
_SNAP_CHROMIUM = (
    "Chromium from Snap cannot start hosts outside its sandbox: install Chromium or Chrome as a "
    ".deb/.rpm package instead (docs/troubleshooting.md, 'Snap and Flatpak')."
)
_FLATPAK = (
    "Flatpak browsers run native hosts inside their sandbox, where cisbridge and the card "
    "middleware are not: use the distribution's package of the browser (docs/troubleshooting.md, "
    "'Snap and Flatpak')."
)
_FLATPAK_IDS = {
    "chrome": "com.google.Chrome",
    "chromium": "org.chromium.Chromium",
    "edge": "com.microsoft.Edge",
    "brave": "com.brave.Browser",
    "vivaldi": "com.vivaldi.Vivaldi",
    "firefox": "org.mozilla.firefox",
}


def sandboxed_candidates(system: System) -> list[Sandboxed]:
    """Snap and Flatpak browsers that could be present (Linux only)."""
    if system.platform != "linux":
        return []
    home = system.home()
    out = [
        Sandboxed("firefox", "snap", ("/snap/bin/firefox", "/var/lib/snapd/snap/bin/firefox"), _SNAP_FIREFOX),
        Sandboxed("chromium", "snap", ("/snap/bin/chromium", "/var/lib/snapd/snap/bin/chromium"), _SNAP_CHROMIUM),
    ]
    for browser, app_id in _FLATPAK_IDS.items():
        out.append(Sandboxed(browser, "flatpak", (
            f"/var/lib/flatpak/app/{app_id}",
            str(home / ".local/share/flatpak/app" / app_id),
        ), _FLATPAK))
    return out


# --------------------------------------------------------------- detection

_LINUX_COMMANDS = {
    "chrome": ("google-chrome", "google-chrome-stable", "google-chrome-beta", "google-chrome-unstable"),
    "chromium": ("chromium", "chromium-browser"),
    "edge": ("microsoft-edge", "microsoft-edge-stable", "microsoft-edge-beta", "microsoft-edge-dev"),
    "brave": ("brave-browser", "brave"),
    "vivaldi": ("vivaldi", "vivaldi-stable"),
    "firefox": ("firefox", "firefox-esr"),
}
_MAC_APPS = {
    "chrome": "Google Chrome.app",
    "chromium": "Chromium.app",
    "edge": "Microsoft Edge.app",
    "brave": "Brave Browser.app",
    "vivaldi": "Vivaldi.app",
    "firefox": "Firefox.app",
}
_WINDOWS_EXES = {
    "chrome": ("Google\\Chrome\\Application\\chrome.exe",),
    "chromium": ("Chromium\\Application\\chrome.exe",),
    "edge": ("Microsoft\\Edge\\Application\\msedge.exe",),
    "brave": ("BraveSoftware\\Brave-Browser\\Application\\brave.exe",),
    "vivaldi": ("Vivaldi\\Application\\vivaldi.exe",),
    "firefox": ("Mozilla Firefox\\firefox.exe",),
}


def detect_browsers(system: System) -> list[str]:
    """Browsers that look installed (executables, app bundles), own packages only."""
    found = []
    for browser in BROWSERS:
        if system.platform == "linux":
            if system.fake:
                hit = any(system.real(f"/usr/bin/{c}").exists() for c in _LINUX_COMMANDS[browser])
            else:
                import shutil

                hit = any(
                    (w := shutil.which(c)) and not w.startswith(("/snap/", "/var/lib/snapd/"))
                    for c in _LINUX_COMMANDS[browser]
                )
        elif system.platform == "darwin":
            app = _MAC_APPS[browser]
            hit = system.real(f"/Applications/{app}").exists() or system.real(str(system.home() / "Applications" / app)).exists()
        else:
            bases = [system.program_files(), system.pure("C:\\Program Files (x86)"), system.local_appdata()]
            hit = any(system.real(str(base / exe)).exists() for base in bases for exe in _WINDOWS_EXES[browser])
        if hit:
            found.append(browser)
    return found
