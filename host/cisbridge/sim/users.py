"""The simulator's card holders and their roles (``data/sim_users.toml``)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_UUID = re.compile(r"[0-9]{12}")


class UsersFileError(ValueError):
    """The users file is unreadable or holds a bad entry; the message names it."""


@dataclass(frozen=True)
class Role:
    id: str  # role profile id ("uniqueIdentifier"), 12 digits
    org_code: str
    org_name: str
    job_role: str  # '"Area":"Sub-area":"Job role"'
    job_role_code: str
    business_functions: tuple[str, ...] = ()
    business_function_codes: tuple[str, ...] = ()

    @property
    def gas_text(self) -> str:
        """The ``nhsjobroleN`` text: ``ORG NAME, "Area":"Sub-area":"Job role"``."""
        return f"{self.org_name}, {self.job_role}"


@dataclass(frozen=True)
class User:
    uuid: str
    name: str
    roles: tuple[Role, ...] = ()
    training: bool = False
    ocs_pr_code: str | None = None

    def role(self, role_id: str) -> Role | None:
        return next((r for r in self.roles if r.id == role_id), None)


def load_users(path: Path | str | None = None) -> dict[str, User]:
    """Users by card UUID, from ``path`` or the file shipped with the package."""
    try:
        if path is None:
            text = resources.files("cisbridge").joinpath("data/sim_users.toml").read_text("utf-8")
            where = "the built-in users file"
        else:
            text = Path(path).read_text("utf-8")
            where = str(path)
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsersFileError(f"cannot read the users file {path}: {exc}") from None
    users: dict[str, User] = {}
    for i, entry in enumerate(data.get("users", [])):
        try:
            user = _user(entry)
        except KeyError as exc:
            raise UsersFileError(f"{where}: users[{i}] has no {exc.args[0]!r} key") from None
        except (TypeError, ValueError) as exc:
            raise UsersFileError(f"{where}: users[{i}] is invalid: {exc}") from None
        if user.uuid in users:
            raise UsersFileError(f"{where}: the UUID {user.uuid} appears twice")
        users[user.uuid] = user
    return users


def _user(entry: dict) -> User:
    uuid = str(entry["uuid"])
    if not _UUID.fullmatch(uuid):
        raise ValueError(f"uuid {uuid!r} is not 12 digits")
    roles = tuple(_role(r) for r in entry.get("roles", []))
    if len({r.id for r in roles}) != len(roles):
        raise ValueError("two roles share an id")
    return User(uuid=uuid, name=_text(entry["name"]), roles=roles,
                training=bool(entry.get("training", False)),
                ocs_pr_code=entry.get("ocs_pr_code") or None)


def _role(entry: dict) -> Role:
    role_id = str(entry["id"])
    if not _UUID.fullmatch(role_id):
        raise ValueError(f"role id {role_id!r} is not 12 digits")
    return Role(
        id=role_id,
        org_code=_text(entry["org_code"]),
        org_name=_text(entry["org_name"]),
        job_role=_text(entry["job_role"]),
        job_role_code=_text(entry["job_role_code"]),
        business_functions=tuple(_text(x) for x in entry.get("business_functions", [])),
        business_function_codes=tuple(_text(x) for x in entry.get("business_function_codes", [])),
    )


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected non-empty text, got {value!r}")
    return value
