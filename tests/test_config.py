"""Configuration: schema, merging system and user files, what a user cannot widen."""

from __future__ import annotations

import pytest

from cisbridge import config as cfg


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def dirs(tmp_path):
    env = {"XDG_CONFIG_DIRS": str(tmp_path / "system"), "XDG_CONFIG_HOME": str(tmp_path / "user")}
    return tmp_path / "system" / "cisbridge" / "config.toml", tmp_path / "user" / "cisbridge" / "config.toml", env


@pytest.fixture(autouse=True)
def xdg(monkeypatch, dirs):
    for key, value in dirs[2].items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CISBRIDGE_CONFIG", raising=False)


def test_defaults_allow_no_origin_and_the_projects_own_extensions():
    loaded = cfg.load()
    assert loaded.files == []
    assert loaded.config.allowed_origins == []
    assert loaded.config.allowed_extensions == ["ekiaedepebiljeejbccahljdhmdiocpb", "cisbridge@cisbridge.org"]
    assert loaded.config.agent.kind == "none"
    assert loaded.config.host.max_request_bytes == 4 * 1024 * 1024
    assert loaded.config.host.max_outstanding == 64
    assert loaded.config.pkcs11.reuse_login is False


def test_user_config_alone_is_used(dirs):
    _, user, _ = dirs
    write(user, 'allowed_origins = ["https://EHR.example.nhs.uk:443/"]\n[logging]\nlevel = "debug"\n')
    loaded = cfg.load()
    assert loaded.files == [str(user)]
    assert loaded.config.allowed_origins == ["https://ehr.example.nhs.uk"]
    assert loaded.config.logging.level == "debug"


def test_user_config_can_narrow_but_not_widen_the_administrators_lists(dirs):
    system, user, _ = dirs
    write(system, 'allowed_origins = ["https://a.example", "https://b.example"]\n')
    write(user, 'allowed_origins = ["https://b.example", "https://evil.example"]\n')
    loaded = cfg.load()
    assert loaded.config.allowed_origins == ["https://b.example"]
    assert any("evil.example" in w for w in loaded.warnings)


def test_user_config_cannot_change_what_the_administrator_set(dirs):
    system, user, _ = dirs
    write(system, '[agent]\nkind = "gas"\nurl = "https://gas.example"\nca_file = "/etc/nhs-ca.pem"\n[logging]\nlevel = "info"\n')
    write(user, '[agent]\nca_file = "/home/u/my-ca.pem"\ntimeout = 5\n[logging]\nlevel = "debug"\n')
    loaded = cfg.load()
    assert loaded.config.agent.ca_file == "/etc/nhs-ca.pem"  # no weaker TLS
    assert loaded.config.agent.timeout == 5  # not set by the administrator
    assert loaded.config.logging.level == "debug"
    assert any("agent.ca_file" in w for w in loaded.warnings)


def test_user_config_may_set_lists_the_administrator_left_open(dirs):
    system, user, _ = dirs
    write(system, '[logging]\nlevel = "warning"\n')
    write(user, 'allowed_origins = ["https://c.example"]\n')
    assert cfg.load().config.allowed_origins == ["https://c.example"]


def test_cisbridge_config_names_one_file_instead(dirs, tmp_path, monkeypatch):
    system, user, _ = dirs
    write(system, 'allowed_origins = ["https://a.example"]\n')
    named = write(tmp_path / "only.toml", 'allowed_origins = ["https://z.example"]\n')
    monkeypatch.setenv("CISBRIDGE_CONFIG", str(named))
    assert cfg.load().config.allowed_origins == ["https://z.example"]


@pytest.mark.parametrize(
    "text, key, words",
    [
        ('[agent]\nkind = "gas"\nurl = "http://gas.example"\n', "agent.url", "https"),
        ('[agent]\ntimeout = -1\n', "agent.timeout", ">"),
        ('[logging]\nlevel = "loud"\n', "logging.level", "Invalid enum value"),
        ('allowed_origins = ["https://a.example/path"]\n', "allowed_origins[0]", "path"),
        ('allowed_origins = ["ftp://a.example"]\n', "allowed_origins[0]", "scheme"),
        ("[host]\nprompt_timeout = \"soon\"\n", "host.prompt_timeout", "Expected `float`"),
    ],
)
def test_errors_name_the_file_and_key(dirs, text, key, words):
    _, user, _ = dirs
    write(user, text)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load()
    assert info.value.file == str(user)
    assert info.value.key == key
    assert words in str(info.value)


def test_error_in_the_system_file_names_the_system_file(dirs):
    system, user, _ = dirs
    write(system, "allowed_origins = 3\n")
    write(user, 'allowed_origins = ["https://a.example"]\n')
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load()
    assert info.value.file == str(system)


def test_http_on_loopback_is_allowed_when_listed():
    config = cfg.parse('allowed_origins = ["http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:9000"]\n')
    assert config.allowed_origins == ["http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:9000"]
