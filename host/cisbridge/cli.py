"""The ``cisbridge`` command line (CONTRACT.md §4).

Each subcommand lives in its own module exposing ``configure(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
``cisbridge host`` (what the browser launches) pays for nothing else.
"""

from __future__ import annotations

import importlib
import sys

#: command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "host": ("cisbridge.host", "the native messaging host (launched by the browser)"),
    "install": ("cisbridge.install.cli", "write native messaging host manifests"),
    "uninstall": ("cisbridge.install.cli_uninstall", "remove what install wrote"),
    "doctor": ("cisbridge.install.doctor", "check the installation and explain faults"),
    "sim": ("cisbridge.sim.cli", "run the GAS/SSB simulator"),
    "card": ("cisbridge.card.cli", "make and remove test smartcards on SoftHSM2"),
    "demo": ("cisbridge.demo", "see the whole flow on one machine"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "host":
        # Fast path: the browser starts this on every connect; skip argparse.
        from cisbridge.host import main as host_main

        return host_main(argv[1:])

    import argparse

    from cisbridge import __version__

    parser = argparse.ArgumentParser(
        prog="cisbridge",
        description="NHS smartcards for web-based clinical systems.",
    )
    parser.add_argument("--version", action="version", version=f"cisbridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name and name != "host":
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and module_name.startswith(exc.name):
                    print(f"cisbridge {name}: not available in this version", file=sys.stderr)
                    return 2
                raise
            module.configure(p)
            modules[name] = module
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(modules[args.command].run(args) or 0)
