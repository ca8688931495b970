"""What the demo needs from the machine and the checkout, and how it installs the host.

The demo runs from a cisbridge checkout: the extension is loaded unpacked from
``extension/dist`` (built by ``scripts/setup``), and the DevTools-protocol
client and the private pcscd + virtual card come from the test support code
(``tests/browser/cdp.py``, ``tests/support/pcsc.py``) so the demo drives the
browser and the reader exactly as the test suite does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from types import ModuleType

EXTENSION_ID = "ekiaedepebiljeejbccahljdhmdiocpb"
HOST_NAME = "org.cisbridge.host"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")


class Missing(Exception):
    """A part the demo needs is not there; the message says how to get it."""


def repo_root() -> Path:
    """The checkout this package runs from (an editable install: host/cisbridge/…)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "extension" / "manifest.json").is_file() or (parent / "scripts" / "setup").is_file():
            return parent
    raise Missing(
        "cisbridge demo runs from a cisbridge source checkout (it loads the extension from "
        "extension/dist); clone the repository and run scripts/demo there"
    )


def extension_dir(root: Path) -> Path:
    dist = root / "extension" / "dist"
    if not (dist / "manifest.json").is_file():
        raise Missing(f"the extension is not built ({dist} is missing): run scripts/setup")
    return dist


def chromium() -> str:
    override = os.environ.get("CISBRIDGE_CHROMIUM")
    for name in ((override,) if override else CHROMIUM_CANDIDATES):
        found = shutil.which(name)
        if found:
            return found
    raise Missing("Chromium is not installed: run scripts/setup (or apt-get install chromium)")


def softhsm() -> str:
    from cisbridge.card import softhsm_module

    module = softhsm_module()
    if not module or not os.path.exists(module) or shutil.which("softhsm2-util") is None:
        raise Missing("SoftHSM2 is not installed: run scripts/setup (or apt-get install softhsm2)")
    return module


def websockets_available() -> None:
    if importlib.util.find_spec("websockets") is None:
        raise Missing("the Python package websockets is missing from this environment: run scripts/setup")


def load_support(root: Path, relative: str, name: str) -> ModuleType:
    """Import one of the test support modules by its path (without putting tests/ on sys.path)."""
    path = root / relative
    if not path.is_file():
        raise Missing(f"{path} is missing from the checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and the like look modules up by name
    spec.loader.exec_module(module)
    return module


def pcsc_support(root: Path) -> tuple[ModuleType | None, str | None]:
    """The private pcscd + vpcd helpers, or None and why the demo goes without a reader."""
    try:
        module = load_support(root, "tests/support/pcsc.py", "cisbridge_demo_pcsc")
    except Missing as exc:
        return None, str(exc)
    why = module.available()
    if why:
        return None, why
    try:
        import smartcard  # noqa: F401  (the host's reader monitor needs pyscard)
    except ImportError:
        return None, "pyscard is not installed: run scripts/setup"
    try:
        import cisbridge.card.pcsc  # noqa: F401
    except ImportError:
        return None, "this cisbridge has no reader monitor (cisbridge.card.pcsc)"
    return module, None


def install_host(profile_dir: Path, workdir: Path, env: dict[str, str]) -> Path:
    """Register the host with one Chromium profile only: a launcher in ``workdir``
    that sets ``env`` and runs this interpreter's ``cisbridge host``, and the
    per-profile manifest ``<profile>/NativeMessagingHosts/org.cisbridge.host.json``.
    Nothing outside ``workdir`` and ``profile_dir`` is touched."""
    from cisbridge.install.installer import launcher_argv
    from cisbridge.install.manifests import dumps, host_manifest

    launcher = workdir / "cisbridge-host"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    launcher.write_text(
        "#!/bin/sh\n"
        "# Written by `cisbridge demo`: the host for the demo's private browser profile.\n"
        f"echo $$ >> {shlex.quote(str(workdir / 'host.pids'))}\n"
        f"{exports}"
        f'exec {shlex.join(launcher_argv(sys.executable))} "$@"\n'
    )
    launcher.chmod(0o755)
    manifests = profile_dir / "NativeMessagingHosts"
    manifests.mkdir(parents=True, exist_ok=True)
    manifest = manifests / f"{HOST_NAME}.json"
    manifest.write_text(dumps(host_manifest("chromium", str(launcher), [EXTENSION_ID])))
    return manifest


def host_config(origin: str, spine_url: str, ca_file: str | None, module: str, token_label: str) -> str:
    """The host's config.toml for the demo (CONTRACT.md §5)."""
    lines = [
        f"allowed_origins = [{json.dumps(origin)}]",
        "",
        "[agent]",
        'kind = "gas"',
        f"url = {json.dumps(spine_url)}",
    ]
    if ca_file:
        lines.append(f"ca_file = {json.dumps(str(ca_file))}")
    lines += [
        "",
        "[pkcs11]",
        f"module = {json.dumps(module)}",
        f"token_label = {json.dumps(token_label)}",
        "",
        "[logging]",
        'level = "info"',
        "",
    ]
    return "\n".join(lines)
