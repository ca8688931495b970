"""``cisbridge card create|list|delete``: test smartcards on SoftHSM2."""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Cards live in the SoftHSM store named by --softhsm-conf, else $SOFTHSM2_CONF, else "
        "cisbridge's own store in the user data dir. Point the host at them with "
        "[pkcs11] module = <SoftHSM's libsofthsm2.so> and the same SOFTHSM2_CONF."
    )
    sub = parser.add_subparsers(dest="card_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="make a test card (token, RSA-2048 key, NHS-shaped certificate)")
    create.add_argument("--label", help="token label (default: 'cisbridge test <uuid>')")
    create.add_argument("--pin", help="the card holder's passcode (default: 6 random digits)")
    create.add_argument("--so-pin", help="the security officer PIN (default: random)")
    create.add_argument("--uuid", help="12-digit card holder UUID, the certificate's CN (default: random)")
    create.add_argument("--name", help="the card holder's display name, for the test CA")
    create.add_argument("--locked", action="store_true",
                        help="make the user passcode report locked (CKF_USER_PIN_LOCKED), for tests")
    create.add_argument("--json", action="store_true", help="print the card as JSON")

    listing = sub.add_parser("list", help="list the test cards in the store")
    listing.add_argument("--json", action="store_true")

    delete = sub.add_parser("delete", help="remove a test card")
    delete.add_argument("label", help="the token label (see `cisbridge card list`)")

    for p in (create, listing, delete):
        p.add_argument("--softhsm-conf", metavar="FILE", help="SoftHSM2 config file of the store to use")


def run(args: argparse.Namespace) -> int:
    from cisbridge.card import softhsm_module, testcard

    if args.card_command == "create":
        try:
            card = testcard.create(
                label=args.label, pin=args.pin, so_pin=args.so_pin, uuid=args.uuid,
                display_name=args.name, softhsm_conf=args.softhsm_conf, locked=args.locked,
            )
        except (ValueError, RuntimeError) as exc:
            print(f"cisbridge card create: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps({
                "label": card.label, "uuid": card.uuid, "pin": card.pin, "soPin": card.so_pin,
                "serial": card.serial, "softhsmConf": card.softhsm_conf, "module": softhsm_module(),
            }))
        else:
            print(f"Test card {card.label!r} made.")
            print(f"  UUID:     {card.uuid}")
            print(f"  passcode: {card.pin}")
            print(f"  SO PIN:   {card.so_pin}")
            if args.locked:
                print("  (its passcode reports locked)")
            print(f"  store:    SOFTHSM2_CONF={card.softhsm_conf}")
            print(f"  module:   {softhsm_module()}")
        return 0

    if args.card_command == "list":
        cards = testcard.list_cards(args.softhsm_conf)
        if args.json:
            print(json.dumps(cards))
        elif not cards:
            print("No test cards in this store.")
        else:
            for c in cards:
                state = " (locked)" if c["locked"] else ""
                print(f"{c['label']!r}  uuid {c['uuid'] or '-'}  serial {c['serial']}{state}")
        return 0

    if args.card_command == "delete":
        try:
            testcard.delete(args.label, args.softhsm_conf)
        except RuntimeError as exc:
            print(f"cisbridge card delete: {exc}", file=sys.stderr)
            return 1
        print(f"Test card {args.label!r} deleted.")
        return 0
    return 2
