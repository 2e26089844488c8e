"""Settings: precedence (command line > environment > profile > the job's stored settings >
defaults), parsing with the source named, and what a job stores, table by table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulkimport.errors import ConfigError
from bulkimport.protocol import DupWay, UserType
from bulkimport.settings import (
    PASSWORD_ENV,
    SPECS,
    Method,
    Settings,
    build,
    load_profile,
    merge,
    resolve,
)

TARGET = {"url": "http://cc.example/asterccinterfaces", "org": "o", "user": "u", "campaign": "1"}

# (setting, command line, environment, profile, stored, expected): None means "not given".
PRECEDENCE: list[tuple[str, Any, str | None, Any, Any, Any]] = [
    ("rate", "7", "8", 9, 10, 7.0),
    ("rate", None, "8", 9, 10, 8.0),
    ("rate", None, None, 9, 10, 9.0),
    ("rate", None, None, None, 10, 10.0),
    ("rate", None, None, None, None, 20.0),
    ("method", "POST", "get", "get", "get", "post"),
    ("method", None, None, "post", "get", "post"),
    ("dupway", None, "update", "skip", None, "update"),
    ("campaign", None, None, None, "3", "3"),
    # A flag left off on the command line is "not given": the others may still turn it on.
    ("skip_unchanged", False, "yes", None, None, True),
    ("skip_unchanged", None, None, True, None, True),
    ("skip_unchanged", None, None, None, True, True),
    ("insecure", True, "no", False, False, True),
    # An empty environment variable is "not given" either.
    ("org", None, "", "from-profile", None, "from-profile"),
    # Repeatable settings come from the command line, the profile or the job, never the
    # environment (one variable cannot hold a list).
    ("map", ("A=a",), "B=b", ["C=c"], ["D=d"], ("A=a",)),
    ("map", (), "B=b", ["C=c"], ["D=d"], ("C=c",)),
    ("map", (), None, None, ["D=d"], ("D=d",)),
]


@pytest.mark.parametrize(("name", "cli", "env", "profile", "stored", "expected"), PRECEDENCE)
def test_precedence(
    name: str, cli: Any, env: str | None, profile: Any, stored: Any, expected: Any
) -> None:
    spec = next(spec for spec in SPECS if spec.name == name)
    values = merge(
        {name: cli},
        {} if env is None else {spec.env: env},
        {} if profile is None else {name: profile},
        {} if stored is None else {name: stored},
    )
    assert values[name] == expected


@pytest.mark.parametrize(
    ("source", "arguments", "message"),
    [
        ("command line", ({"rate": "fast"}, {}, {}), r"--rate \(command line\)"),
        (
            "environment",
            ({}, {"BULKIMPORT_CONCURRENCY": "0"}, {}),
            r"--concurrency \(BULKIMPORT_CONCURRENCY\): must be at least 1",
        ),
        (
            "profile",
            ({}, {}, {"dupway": "merge"}),
            r"--dupway \(profile\): 'merge' is not one of update, skip",
        ),
        (
            "url",
            ({"url": "ftp://x"}, {}, {}),
            r"--url \(command line\): 'ftp://x' is not an http\(s\) URL",
        ),
    ],
)
def test_a_bad_value_names_its_setting_and_source(
    source: str, arguments: tuple[dict[str, Any], dict[str, str], dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(*arguments, need_target=False)


def test_a_missing_target_names_every_missing_option() -> None:
    with pytest.raises(ConfigError, match="missing --org, --campaign"):
        resolve({"url": "http://x/asterccinterfaces", "user": "u"}, {}, {})
    assert resolve({}, {}, {}, need_target=False).target.missing == (
        "url",
        "org",
        "user",
        "campaign",
    )


def test_typed_settings() -> None:
    settings = resolve(
        {**TARGET, "method": "post", "usertype": "AGENT", "map": ("A=", "B=b")}, {}, {}
    )
    assert settings.send.method is Method.POST
    assert settings.target.usertype is UserType.AGENT
    assert settings.target.options.dupway is DupWay.SKIP
    assert settings.read.rename == (("A", None), ("B", "b"))
    assert settings.password_env == PASSWORD_ENV


@pytest.mark.parametrize(
    "cli",
    [
        TARGET,
        {
            **TARGET,
            "rate": "0",
            "insecure": True,
            "map": ("Mobile=phone1", "Notes="),
            "set": ("src=web",),
            "window": "20:00-07:00",
        },
        {
            **TARGET,
            "method": "post",
            "dupway": "update",
            "emptyagent": "yes",
            "password_env": "CC_PW",
            "encoding": "gb18030",
            "delimiter": ";",
            "skip_rows": "2",
            "report": "r.csv",
            "log": "l.log",
            "log_format": "json",
            "source": "ftp",
            "exetime": "2025-01-31 02:00:00",
            "delrow": "0",
        },
    ],
)
def test_stored_settings_resolve_back_to_the_same_settings(cli: dict[str, Any]) -> None:
    settings = resolve(cli, {}, {})
    assert resolve({}, {}, {}, settings.stored()) == settings
    assert build(merge({}, {}, {}, settings.stored())) == settings


def test_stored_settings_never_hold_the_password() -> None:
    settings = resolve(TARGET, {}, {})
    with_password = Settings(target=settings.target.with_password("s3cret"))
    assert "s3cret" not in repr(with_password)
    assert "s3cret" not in repr(with_password.stored())
    assert with_password.target == settings.target  # the password is not part of equality


def test_a_profile_names_the_password_variable_but_cannot_hold_the_password(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "nightly.toml"
    profile.write_text('password_env = "CC_PW"\n[map]\nMobile = "phone1"\nNotes = ""\n')
    profile.chmod(0o600)
    loaded = load_profile(profile)
    assert loaded == {"password_env": "CC_PW", "map": ("Mobile=phone1", "Notes=")}
    assert resolve({}, {}, loaded, need_target=False).read.rename == (
        ("Mobile", "phone1"),
        ("Notes", None),
    )
    profile.write_text('password = "x"\n')
    with pytest.raises(ConfigError, match="must not hold the password"):
        load_profile(profile)
    profile.write_text("ratte = 5\n")
    with pytest.raises(ConfigError, match="unknown setting 'ratte'"):
        load_profile(profile)


def test_every_setting_lands_in_a_field_of_settings() -> None:
    # The path of each setting exists, so that what a job stores is complete.
    stored = Settings().stored()
    assert set(stored) == {spec.name for spec in SPECS}
