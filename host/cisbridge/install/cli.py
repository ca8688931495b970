"""``cisbridge install``: register the host with the browsers (CONTRACT.md §4).

Writes a launcher, then a host manifest in every place each chosen browser
reads them (Windows: the manifest file plus a registry key per browser), and
records it all for ``uninstall``.  Safe to re-run: it rewrites what changed,
so running it again after upgrading or moving Python repairs the paths.
"""

from __future__ import annotations

import argparse
import sys

from cisbridge.install import locations as loc
from cisbridge.install.system import PLATFORMS, System, current_platform


def add_common(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--browser", action="append", choices=[*loc.BROWSERS, "all"], metavar="BROWSER",
        help=f"{'/'.join(loc.BROWSERS)} or all (default: all); may be repeated",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--user", dest="scope", action="store_const", const="user",
                       help=f"{verb} for the current user (default)")
    scope.add_argument("--system", dest="scope", action="store_const", const="system",
                       help=f"{verb} for every user of this computer (needs administrator rights)")
    parser.add_argument("--profile-dir", metavar="DIR",
                        help="only this Chromium profile (--user-data-dir): its NativeMessagingHosts/ directory")
    parser.add_argument("--root", metavar="DIR",
                        help="write under DIR as if it were / (staging a package; tests). Windows registry "
                             "keys then go to DIR/registry.json")
    parser.add_argument("--platform", choices=PLATFORMS,
                        help="lay out files for this OS instead of this machine's (needs --root)")
    parser.set_defaults(scope="user")


def configure(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "install")
    parser.add_argument("--extension-id", action="extend", nargs="+", default=[], metavar="ID",
                        help="also allow this extension (Chromium id or Firefox add-on id); "
                             "added to allowed_extensions in the configuration")
    parser.add_argument("--python", metavar="PATH", default=sys.executable,
                        help="the interpreter the launcher runs (default: this one)")


def chosen_browsers(args) -> list[str] | None:
    """The --browser choices, None for all."""
    if not args.browser or "all" in args.browser:
        return None
    return list(dict.fromkeys(args.browser))


def make_system(args) -> System:
    if args.platform and not args.root and args.platform != current_platform():
        raise SystemExit(f"cisbridge: --platform {args.platform} needs --root")
    return System.from_args(args)


def run(args) -> int:
    from cisbridge.install import installer
    from cisbridge.install.config_ids import ensure_allowed
    from cisbridge.origins import OriginError, canonical_extension_id

    system = make_system(args)
    browsers = chosen_browsers(args)
    if args.profile_dir:
        if browsers and any(loc.family(b) != "chromium" for b in browsers):
            print("cisbridge install: --profile-dir is for Chromium-family browsers only "
                  "(Firefox has no per-profile host manifests)", file=sys.stderr)
            return 2
        browsers = []
    elif browsers is None:
        browsers = list(loc.BROWSERS)
    try:
        extra = [canonical_extension_id(e) for e in args.extension_id]
    except OriginError as exc:
        print(f"cisbridge install: --extension-id: {exc}", file=sys.stderr)
        return 2

    code, ids = ensure_allowed(system, extra)
    try:
        installer.install(system, installer.Plan(browsers=browsers, ids=ids, python=args.python,
                                                 profile_dir=args.profile_dir))
    except (installer.InstallError, ValueError) as exc:
        print(f"cisbridge install: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        hint = "run it as an administrator" if system.scope == "system" else "check the directory's owner"
        print(f"cisbridge install: cannot write {exc.filename}: permission denied; {hint}", file=sys.stderr)
        return 1
    print("done: restart the browser if it was running; `cisbridge doctor` checks the result")
    return code
