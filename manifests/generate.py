#!/usr/bin/env python3
"""Render the host manifest and enterprise policy templates in this directory.

The content comes from one place, ``cisbridge.install.manifests``; the files
here are its output with example values (the development extension id, an
example EHR origin and update URL).  A trust renders its own copy with:

    python manifests/generate.py --out DIR --chrome-id ID --origin https://ehr.trust.nhs.uk \\
        --update-url https://…/updates.xml --xpi-url https://…/cisbridge.xpi

``tests/install/test_templates.py`` checks the committed files match.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "host"))

from cisbridge.install import manifests  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into (default: this one)")
    parser.add_argument("--chrome-id", default=manifests.DEV_CHROME_EXTENSION_ID, help="Chromium-family extension id")
    parser.add_argument("--firefox-id", default=manifests.FIREFOX_EXTENSION_ID, help="Firefox add-on id")
    parser.add_argument("--origin", action="append", help="allowed origin (repeat); default: the example origin")
    parser.add_argument("--update-url", default=manifests.EXAMPLE_UPDATE_URL,
                        help=f"Chrome update URL (Chrome Web Store: {manifests.CHROME_WEB_STORE_UPDATE_URL})")
    parser.add_argument("--edge-update-url", help=f"Edge update URL (Edge Add-ons: {manifests.EDGE_ADDONS_UPDATE_URL})")
    parser.add_argument("--xpi-url", default=manifests.EXAMPLE_XPI_URL, help="where Firefox downloads the signed .xpi")
    parser.add_argument("--launcher", default=manifests.LAUNCHER_PLACEHOLDER, help="host path for the host manifests")
    args = parser.parse_args(argv)
    files = manifests.templates(args.chrome_id, args.firefox_id, args.origin, args.update_url,
                                args.edge_update_url, args.xpi_url, args.launcher)
    for name, content in files.items():
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
