"""``cisbridge uninstall``: remove exactly what ``install`` recorded.

With no ``--browser`` and no ``--profile-dir`` everything recorded goes; with
``--browser`` only those browsers' manifests and keys (a location another
recorded browser also reads stays); with ``--profile-dir`` only that profile's
manifest.  The launcher and the record go with the last manifest.  The
configuration file is left alone.
"""

from __future__ import annotations

import argparse
import sys

from cisbridge.install.cli import add_common, chosen_browsers, make_system


def configure(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "uninstall")


def run(args) -> int:
    from cisbridge.install import installer

    system = make_system(args)
    browsers = chosen_browsers(args)
    if args.profile_dir and not args.browser:
        browsers = []  # only the profile
    try:
        installer.uninstall(system, browsers, args.profile_dir)
    except installer.InstallError as exc:
        print(f"cisbridge uninstall: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"cisbridge uninstall: cannot remove {exc.filename}: permission denied"
              + ("; run it as an administrator" if system.scope == "system" else ""), file=sys.stderr)
        return 1
    return 0
