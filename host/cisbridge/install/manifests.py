"""The one source of every manifest and policy template cisbridge ships.

The Firefox host manifest is derived from the Chromium one (same name, path,
type; ``allowed_extensions`` instead of ``allowed_origins``).  The files in
the repository's ``manifests/`` directory are rendered from here by
``manifests/generate.py`` and a test checks they have not drifted.

Managed configuration: the extension reads its enterprise allowlist from
managed storage under :data:`MANAGED_ORIGINS_KEY` (its ``managed_schema.json``).
"""

from __future__ import annotations

import json
import plistlib
import uuid
from typing import Any

from cisbridge import DEV_CHROME_EXTENSION_ID, FIREFOX_EXTENSION_ID, HOST_NAME
from cisbridge.origins import OriginError, canonical_extension_id

DESCRIPTION = "cisbridge: NHS smartcards for web-based clinical systems"
#: The key of the origin list in the extension's managed storage schema.
MANAGED_ORIGINS_KEY = "allowedOrigins"
CHROME_WEB_STORE_UPDATE_URL = "https://clients2.google.com/service/update2/crx"
EDGE_ADDONS_UPDATE_URL = "https://edge.microsoft.com/extensionwebstorebase/v1/crx"
#: Placeholders in the shipped templates, replaced by ``manifests/generate.py`` options.
EXAMPLE_ORIGIN = "https://ehr.example.nhs.uk"
EXAMPLE_UPDATE_URL = "https://cisbridge.example.nhs.uk/chromium/updates.xml"
EXAMPLE_XPI_URL = "https://cisbridge.example.nhs.uk/firefox/cisbridge.xpi"
LAUNCHER_PLACEHOLDER = "/ABSOLUTE/PATH/TO/cisbridge-host"


def is_chromium_id(ext: str) -> bool:
    return len(ext) == 32 and set(ext) <= set("abcdefghijklmnop")


def split_ids(ids: list[str]) -> tuple[list[str], list[str]]:
    """(Chromium ids, Firefox ids), canonical, de-duplicated, order kept."""
    chromium: list[str] = []
    firefox: list[str] = []
    for ext in ids:
        ext = canonical_extension_id(ext)
        bucket = chromium if is_chromium_id(ext) else firefox
        if ext not in bucket:
            bucket.append(ext)
    return chromium, firefox


def host_manifest(browser_family: str, launcher: str, ids: list[str]) -> dict[str, Any]:
    """The host manifest for a browser family ("chromium" or "firefox")."""
    chromium_ids, firefox_ids = split_ids(ids)
    manifest: dict[str, Any] = {
        "name": HOST_NAME,
        "description": DESCRIPTION,
        "path": launcher,
        "type": "stdio",
        "allowed_origins": [f"chrome-extension://{ext}/" for ext in chromium_ids],
    }
    if browser_family == "firefox":
        del manifest["allowed_origins"]
        manifest["allowed_extensions"] = firefox_ids
    return manifest


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def manifest_ids(manifest: dict[str, Any]) -> list[str]:
    """The extension ids a host manifest lets in (either family's form)."""
    ids = []
    for origin in manifest.get("allowed_origins") or []:
        try:
            ids.append(canonical_extension_id(str(origin)))
        except OriginError:
            ids.append(str(origin))
    ids += [str(e) for e in manifest.get("allowed_extensions") or []]
    return ids


# ------------------------------------------------------------ enterprise policy

def _managed(origins: list[str]) -> dict[str, Any]:
    return {MANAGED_ORIGINS_KEY: list(origins)}


def chromium_policy(ext: str, update_url: str, origins: list[str]) -> dict[str, Any]:
    """Chrome or Edge policy JSON (Linux: /etc/opt/chrome/policies/managed/,
    /etc/opt/edge/policies/managed/): force-install plus managed configuration."""
    return {
        "ExtensionInstallForcelist": [f"{ext};{update_url}"],
        "ExtensionSettings": {
            ext: {"installation_mode": "force_installed", "update_url": update_url}
        },
        "3rdparty": {"extensions": {ext: _managed(origins)}},
    }


def firefox_policies(ext: str, xpi_url: str, origins: list[str]) -> dict[str, Any]:
    """Firefox ``policies.json`` (the ``distribution/`` directory of the install)."""
    return {
        "policies": {
            "ExtensionSettings": {ext: {"installation_mode": "force_installed", "install_url": xpi_url}},
            "3rdparty": {"Extensions": {ext: _managed(origins)}},
        }
    }


def _reg_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def windows_reg(ext: str, chrome_update_url: str, edge_update_url: str, origins: list[str]) -> str:
    """A ``.reg`` file for Chrome and Edge (HKLM policies, as Group Policy writes them).
    Lists are subkeys with values "1", "2", …; ExtensionSettings is a JSON string."""
    lines = ["Windows Registry Editor Version 5.00", ""]
    for vendor, update_url in (("Google\\Chrome", chrome_update_url), ("Microsoft\\Edge", edge_update_url)):
        base = f"HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\{vendor}"
        settings = json.dumps(
            {ext: {"installation_mode": "force_installed", "update_url": update_url}},
            separators=(",", ":"),
        )
        lines += [
            f"[{base}\\ExtensionInstallForcelist]",
            f'"1"={_reg_string(f"{ext};{update_url}")}',
            "",
            f"[{base}]",
            f'"ExtensionSettings"={_reg_string(settings)}',
            "",
            f"[{base}\\3rdparty\\extensions\\{ext}\\policy\\{MANAGED_ORIGINS_KEY}]",
            *(f'"{i}"={_reg_string(origin)}' for i, origin in enumerate(origins, 1)),
            "",
        ]
    return "\r\n".join(lines)


def _payload(payload_type: str, identifier: str, content: dict[str, Any], display: str) -> dict[str, Any]:
    return {
        "PayloadType": payload_type,
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cisbridge:{identifier}")).upper(),
        "PayloadDisplayName": display,
        **content,
    }


def macos_mobileconfig(ext: str, chrome_update_url: str, edge_update_url: str, origins: list[str]) -> bytes:
    """A configuration profile for Chrome and Edge on macOS.  Extension managed
    configuration lives in its own preference domain,
    ``com.google.Chrome.extensions.<id>`` (Edge: ``com.microsoft.Edge.extensions.<id>``)."""
    payloads = []
    for domain, update_url, name in (
        ("com.google.Chrome", chrome_update_url, "Google Chrome"),
        ("com.microsoft.Edge", edge_update_url, "Microsoft Edge"),
    ):
        payloads.append(_payload(domain, f"org.cisbridge.policy.{domain}", {
            "ExtensionInstallForcelist": [f"{ext};{update_url}"],
            "ExtensionSettings": {
                ext: {"installation_mode": "force_installed", "update_url": update_url}
            },
        }, f"cisbridge: install the extension in {name}"))
        payloads.append(_payload(f"{domain}.extensions.{ext}", f"org.cisbridge.policy.{domain}.extension", {
            MANAGED_ORIGINS_KEY: list(origins),
        }, f"cisbridge: sites allowed in {name}"))
    profile = _payload("Configuration", "org.cisbridge.policy", {
        "PayloadContent": payloads,
        "PayloadScope": "System",
        "PayloadDescription": "Installs the cisbridge extension and sets the sites allowed to use NHS smartcards.",
        "PayloadOrganization": "cisbridge",
    }, "cisbridge")
    return plistlib.dumps(profile, sort_keys=True)


def templates(
    chrome_id: str = DEV_CHROME_EXTENSION_ID,
    firefox_id: str = FIREFOX_EXTENSION_ID,
    origins: list[str] | None = None,
    update_url: str = EXAMPLE_UPDATE_URL,
    edge_update_url: str | None = None,
    xpi_url: str = EXAMPLE_XPI_URL,
    launcher: str = LAUNCHER_PLACEHOLDER,
) -> dict[str, bytes]:
    """Every file of ``manifests/``: relative name -> content."""
    origins = list(origins or [EXAMPLE_ORIGIN])
    edge_update_url = edge_update_url or update_url
    return {
        "host/org.cisbridge.host.chromium.json": dumps(host_manifest("chromium", launcher, [chrome_id])).encode(),
        "host/org.cisbridge.host.firefox.json": dumps(host_manifest("firefox", launcher, [firefox_id])).encode(),
        "policy/linux/chrome/cisbridge.json": dumps(chromium_policy(chrome_id, update_url, origins)).encode(),
        "policy/linux/edge/cisbridge.json": dumps(chromium_policy(chrome_id, edge_update_url, origins)).encode(),
        # regedit's own format: UTF-16 LE with a byte order mark
        "policy/windows/cisbridge-chrome-edge.reg": (
            b"\xff\xfe" + windows_reg(chrome_id, update_url, edge_update_url, origins).encode("utf-16-le")
        ),
        "policy/macos/cisbridge.mobileconfig": macos_mobileconfig(chrome_id, update_url, edge_update_url, origins),
        "policy/firefox/policies.json": dumps(firefox_policies(firefox_id, xpi_url, origins)).encode(),
    }
