"""The simulator's users file: the built-in one covers every case, bad ones are explained."""

from __future__ import annotations

import pytest

from cisbridge.sim.users import UsersFileError, load_users


def test_built_in_users_cover_no_one_and_many_roles_and_training():
    users = load_users()
    counts = sorted(len(u.roles) for u in users.values())
    assert counts[0] == 0 and 1 in counts and counts[-1] >= 2
    assert any(u.training for u in users.values())
    for user in users.values():
        for role in user.roles:
            assert len(role.id) == 12 and role.id.isdigit()
            assert role.job_role.count('":"') == 2  # "Area":"Sub-area":"Job role"
            assert role.gas_text == f"{role.org_name}, {role.job_role}"


@pytest.mark.parametrize("text, words", [
    ('[[users]]\nuuid = "555000000001"\nname = "A"\n[[users]]\nuuid = "555000000001"\nname = "B"\n',
     "appears twice"),
    ('[[users]]\nuuid = "555000000001"\n', r"users\[0\] has no 'name' key"),
    ('[[users]]\nuuid = "555000000001"\nname = "A"\n[[users.roles]]\nid = "1"\n', "role id"),
    ('[[users]]\nuuid = "555000000001"\nname = ""\n', "non-empty"),
    ("users = [", "cannot read"),
])
def test_bad_users_files_are_explained(tmp_path, text, words):
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(UsersFileError, match=words):
        load_users(path)


def test_missing_users_file_is_explained(tmp_path):
    with pytest.raises(UsersFileError, match="cannot read"):
        load_users(tmp_path / "nope.toml")
