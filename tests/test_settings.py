"""Settings: precedence (command line > environment > profile > the job's stored settings >
defaults), parsing with the source named, and what a job stores, table by table."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import trustme

from bulkimport import settings as settings_module
from bulkimport.errors import ConfigError
from bulkimport.protocol import DupWay, UserType
from bulkimport.settings import (
    DERIVED,
    NOT_SETTINGS,
    PASSWORD_ENV,
    REQUIRED_FOR_SENDING,
    SETTING_PATHS,
    SPECS,
    Method,
    Settings,
    Target,
    build,
    load_profile,
    mask_url,
    merge,
    path_of,
    resolve,
    server_key,
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
    ("method", None, None, None, "get", "get"),  # a job keeps its method
    ("method", None, None, None, None, "post"),  # POST by default: no password in URLs
    ("dupway", None, "update", "skip", None, "update"),
    ("campaign", None, None, None, "3", "3"),
    # A flag left off on the command line is "not given": the others may still turn it on.
    ("skip_unchanged", False, "yes", None, None, True),
    ("skip_unchanged", None, None, True, None, True),
    ("skip_unchanged", None, None, None, True, True),
    ("insecure", True, "no", False, False, True),
    # --insecure is never the job's (an earlier version stored it): a resume verifies again.
    ("insecure", None, None, None, True, False),
    ("insecure", None, "yes", None, None, True),
    # An empty environment variable is "not given" either.
    ("org", None, "", "from-profile", None, "from-profile"),
    # Repeatable settings come from the command line, the profile or the job, never the
    # environment (one variable cannot hold a list).
    ("map", ("A=a",), "B=b", ["C=c"], ["D=d"], ("A=a",)),
    ("map", (), "B=b", ["C=c"], ["D=d"], ("C=c",)),
    ("map", (), None, None, ["D=d"], ("D=d",)),
    # The proxy: the option, BULKIMPORT_PROXY, the profile (never the job: it is not stored).
    ("proxy", "http://a:1", "http://b:2", "http://c:3", None, "http://a:1"),
    ("proxy", None, "b:2", "http://c:3", None, "http://b:2"),
    ("proxy", None, None, "http://c:3", None, "http://c:3"),
    ("proxy", "DIRECT", None, "http://c:3", None, "direct"),
    ("system_trust", None, "yes", None, None, True),
    ("server_rate", "30", "40", 50, 60, 30.0),
    ("server_rate", None, None, None, 60, 60.0),  # a job keeps its server's budget
    ("server_rate", None, None, None, None, 0.0),  # none: nothing shared, nothing asked
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


def test_insecure_is_not_kept_with_a_job() -> None:
    settings = resolve({**TARGET, "insecure": True}, {}, {})
    assert settings.send.verify_tls is False
    assert "insecure" not in settings.stored()
    assert resolve({}, {}, {}, settings.stored()).send.verify_tls is True
    # A job stored by an earlier version, that kept it: passed over.
    assert resolve({}, {}, {}, {**settings.stored(), "insecure": True}).send.verify_tls is True


def test_post_is_the_default_method() -> None:
    assert resolve(TARGET, {}, {}).send.method is Method.POST
    assert Settings().send.method is Method.POST


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("https://admin:S3cr3t-pw@cc.example.com/asterccinterfaces", "https://***@cc.example.com/"),
        ("htps://admin:S3cr3t-pw@cc.example.com/asterccinterfaces", "htps://***@cc.example.com/"),
        ("https://admin:S3c/r3t-pw@cc.example.com/x", "https://***@cc.example.com/x"),
        ("https://admin:S3c?r3t-pw@cc.example.com/x", "https://***@cc.example.com/x"),
        ("https://admin:S3c@r3t-pw@cc.example.com/x", "https://***@cc.example.com/x"),
    ],
)
def test_a_url_with_credentials_is_refused_and_shown_masked(given: str, shown: str) -> None:
    for source, arguments in (
        ("command line", ({"url": given}, {}, {})),
        ("BULKIMPORT_URL", ({}, {"BULKIMPORT_URL": given}, {})),
        ("profile", ({}, {}, {"url": given})),
        ("job", ({}, {}, {}, {"url": given})),
    ):
        with pytest.raises(ConfigError) as raised:
            resolve(*arguments, need_target=False)  # type: ignore[arg-type]
        message = str(raised.value)
        assert message.startswith(f"--url ({source}): '{shown}"), message
        assert "S3c" not in message and "r3t" not in message and "admin" not in message
    # A Target made by a program refuses it as well, shown the same way.
    with pytest.raises(ConfigError) as raised:
        Target(url=given)
    assert str(raised.value).startswith(shown) and "S3c" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h/x", "https://***@h/x"),
        ("https://u@h/x", "https://***@h/x"),
        ("http://u:p@proxy:3128", "http://***@proxy:3128"),
        ("u:p@proxy:3128", "***@proxy:3128"),
        ("https://h/x@y", "https://h/x@y"),  # an @ in the path is no login
        ("https://h:8443/x?mail=a@b", "https://h:8443/x?mail=a@b"),
        ("http://[::1]:8765/a@b", "http://[::1]:8765/a@b"),
        ("https://h/asterccinterfaces", "https://h/asterccinterfaces"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


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
    # The path of each setting exists, so that what a job stores is complete: every setting
    # but the proxy (it may hold the proxy's password, and belongs to the network a command
    # runs in) and --insecure (given for one run, not for every resume).
    stored = Settings().stored()
    assert set(stored) == {spec.name for spec in SPECS} - {"proxy", "insecure"}
    assert {spec.name for spec in SPECS if not spec.stored} == {"proxy", "insecure"}
    assert Settings().send.proxy is None


def test_the_proxy_is_never_stored_and_its_password_never_shown(tmp_path: Path) -> None:
    proxy = "http://office-user:Pr0xy-pw%40x@proxy.office:3128"
    settings = resolve({**TARGET, "proxy": proxy}, {}, {})
    assert settings.send.proxy == proxy
    assert "proxy" not in settings.stored()
    assert "Pr0xy" not in repr(settings) and "office-user" not in repr(settings)
    # Resumed, the job sends through the proxy of that run (here: none given).
    assert resolve({}, {}, {}, settings.stored()).send.proxy is None
    for bad in ("socks5://office-user:Pr0xy-pw@proxy:1080", "http://office-user:Pr0xy-pw@p:x"):
        with pytest.raises(ConfigError) as raised:
            resolve({"proxy": bad}, {}, {}, need_target=False)
        message = str(raised.value)
        assert message.startswith("--proxy (command line): '") and "://***@p" in message
        assert "Pr0xy" not in message and "office-user" not in message


def test_a_ca_file_is_checked_when_the_settings_are_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=r"--ca-file \(profile\): .*missing\.pem: no such file"):
        resolve({}, {}, {"ca_file": str(missing)}, need_target=False)
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82\x01\x0a")
    with pytest.raises(ConfigError, match="no CA certificate in it"):
        resolve({}, {"BULKIMPORT_CA_FILE": str(not_pem)}, {}, need_target=False)
    with pytest.raises(ConfigError, match="is a directory"):
        resolve({"ca_file": str(tmp_path)}, {}, {}, need_target=False)


@pytest.mark.parametrize("bits_mean_privacy", [True, False])
def test_the_profile_permission_warning_only_where_permission_bits_mean_privacy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bits_mean_privacy: bool
) -> None:
    # Windows has no permission bits (every file shows as readable by all): no warning there.
    monkeypatch.setattr(settings_module, "permission_bits_mean_privacy", lambda: bits_mean_privacy)
    profile = tmp_path / "nightly.toml"
    warnings: list[str] = []
    for text in ('password_env = "CC_PW"\n', 'proxy = "http://u:pw@proxy.office:3128"\n'):
        profile.write_text(text)
        profile.chmod(0o644)
        load_profile(profile, warn=warnings.append)
        profile.chmod(0o600)
        load_profile(profile, warn=warnings.append)
    if bits_mean_privacy:
        assert len(warnings) == 2, warnings
        assert "names the password's variable" in warnings[0]
        assert "holds the proxy's password" in warnings[1]
        assert all(f"chmod 600 {profile}" in warning for warning in warnings)
        assert "pw@" not in warnings[1]
    else:
        assert warnings == []


def test_permission_bits_mean_privacy_on_posix_only() -> None:
    assert settings_module.permission_bits_mean_privacy() is (os.name == "posix")


@pytest.fixture
def given(tmp_path: Path) -> dict[str, Any]:
    """A value for every setting, as the command line gives it, none of them the default."""
    ca_file = tmp_path / "office-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    return {
        **TARGET,
        "usertype": "agent",
        "pwdtype": "md5",
        "password_env": "CC_PW",
        "phone_field": "mobile",
        "priority_field": "prio",
        "dialtime_field": "dial_at",
        "dupway": "update",
        "dupdiallist": "ignoreSuccess",
        "changepackage": "reassignToCurrent",
        "emptyagent": "yes",
        "resetstatus": "yes",
        "method": "get",
        "max_get_bytes": "8192",
        "rate": "auto",
        "max_rate": "50",
        "server_rate": "40",
        "concurrency": "3",
        "max_outage": "1h30m",
        "window": "20:00-07:00",
        "max_rejects": "20%",
        "max_attempts": "2",
        "timeout": "5",
        "skip_unchanged": True,
        "customer_key": "crm_id",
        "proxy": "http://proxy.office:3128",
        "ca_file": str(ca_file),
        "system_trust": True,
        "insecure": True,
        "encoding": "gb18030",
        "delimiter": ";",
        "skip_rows": "2",
        "sheet": "Leads",
        "map": ("Mobile=phone1", "Notes="),
        "set": ("src=web",),
        "keep_empty": True,
        "keep_spaces": True,
        "no_repair": True,
        "allow": "short-phones,totals-rows",
        "max_record_lines": "7",
        "report": "r.csv",
        "log": "l.log",
        "log_format": "json",
        "log_interval": "2.5",
        "prune": "30d",
        "source": "ftp",
        "source_user": "ftp-user",
        "exetime": "2025-01-31 02:00:00",
        "delrow": "0",
    }


def leaf_fields(cls: Any, where: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every field of ``Settings`` that holds a value, by its path: the fields of the
    dataclasses it is made of (a setting's own value may be a dataclass: ``RejectBudget``)."""
    leaves = set()
    hints = get_type_hints(cls)
    for item in dataclasses.fields(cls):
        path = (*where, item.name)
        kind = hints[item.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind) and path not in PATHS:
            leaves |= leaf_fields(kind, path)
        else:
            leaves.add(path)
    return leaves


PATHS = set(SETTING_PATHS.values())


def test_every_setting_has_one_field_and_every_field_one_setting() -> None:
    derived = {path_of(field) for field, _ in DERIVED}
    not_settings = {path_of(field) for field in NOT_SETTINGS}
    assert len(PATHS) == len(SPECS), "two settings land in the same field"
    assert not PATHS & derived and not PATHS & not_settings and not derived & not_settings
    assert PATHS | derived | not_settings == leaf_fields(Settings)


def test_the_settings_a_target_needs_are_the_target_s_own() -> None:
    # A missing one is named by its option (require_target): each is the spec of that field.
    for name in REQUIRED_FOR_SENDING:
        assert SETTING_PATHS[name] == ("target", name)


def test_a_field_that_is_not_there_fails_when_its_path_is_taken() -> None:
    typo = r"Settings\.target\.options has no field 'phone_feild'"
    with pytest.raises(AttributeError, match=typo):
        path_of(lambda s: s.target.options.phone_feild)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"Settings\.send has no field 'auto'"):
        path_of(lambda s: s.send.auto)  # a property, made from fields: not one itself
    with pytest.raises(TypeError, match="reads no field"):
        path_of(lambda s: s)
    assert path_of(lambda s: s.send.rate_per_s) == ("send", "rate_per_s")


def test_the_defaults_of_the_settings_are_those_of_the_typed_settings() -> None:
    assert build(merge({}, {}, {})) == Settings()


def test_each_setting_lands_in_its_field_and_in_no_other(given: dict[str, Any]) -> None:
    default = Settings()
    assert set(given) == {spec.name for spec in SPECS}, "give every setting a value here"
    for spec in SPECS:
        settings = resolve({spec.name: given[spec.name]}, {}, {}, need_target=False)
        assert spec.field(settings) != spec.field(default), spec.name
        changed = [other.name for other in SPECS if other.field(settings) != other.field(default)]
        assert changed == [spec.name]
        # A derived field follows its setting: --phone-field is the reader's phone field too.
        for field, source in DERIVED:
            if path_of(source) == SETTING_PATHS[spec.name]:
                assert field(settings) == spec.field(settings) != field(default), spec.name
    settings = resolve({"phone_field": "mobile"}, {}, {}, need_target=False)
    assert settings.read.phone_field == settings.target.options.phone_field == "mobile"


def test_every_stored_setting_resolves_back_to_itself(given: dict[str, Any]) -> None:
    settings = resolve(given, {}, {})
    stored = settings.stored()
    assert all(value not in (None, "", ()) for value in stored.values()), stored
    # Stored as a job keeps them (JSON), read back on resume: the same settings but those
    # a job does not keep (the proxy, --insecure).
    resumed = resolve({}, {}, {}, json.loads(json.dumps(stored)))
    kept = dataclasses.replace(settings.send, proxy=None, verify_tls=True)
    assert resumed == dataclasses.replace(settings, send=kept)
    assert resumed.stored() == stored


# --- the budget per server (--server-rate) ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://cc.example/import", "https://cc.example:443/import"),
        ("HTTPS://CC.Example:443/import/", "https://cc.example:443/import"),
        ("http://cc.example", "http://cc.example:80/asterccinterfaces"),
        ("http://cc.example/", "http://cc.example:80/asterccinterfaces"),
        (
            "http://10.0.0.5:8080/asterccinterfaces?x=1#top",
            "http://10.0.0.5:8080/asterccinterfaces",
        ),
        ("https://u:pw@cc.example/import", "https://cc.example:443/import"),
        ("http://[::1]:8080/import", "http://[::1]:8080/import"),
    ],
)
def test_a_server_is_known_by_its_scheme_host_port_and_path(url: str, key: str) -> None:
    assert server_key(url) == key
    assert "pw" not in server_key(url)


@pytest.mark.parametrize("url", ["ftp://cc.example/x", "cc.example/import", "http://h:port/x"])
def test_a_server_key_needs_an_http_url(url: str) -> None:
    with pytest.raises(ValueError):
        server_key(url)


def test_a_profile_sets_the_budget_of_each_server(tmp_path: Path) -> None:
    profile_path = tmp_path / "nightly.toml"
    profile_path.write_text(
        "server_rate = 10\n"
        '[servers."https://cc.example/import"]\nrate = 50\n'
        '[servers."https://other.example"]\nrate = 5\n'
    )
    profile = load_profile(profile_path)
    target = {**TARGET, "url": "https://CC.example:443/import/"}
    assert resolve(target, {}, profile).send.server_rate_per_s == 50.0
    other = {**TARGET, "url": "https://other.example/asterccinterfaces"}
    assert resolve(other, {}, profile).send.server_rate_per_s == 5.0
    # A server the table does not name: the profile's plain key.
    assert resolve(TARGET, {}, profile).send.server_rate_per_s == 10.0
    # The command line and the environment win over the table.
    assert resolve({**target, "server_rate": "20"}, {}, profile).send.server_rate_per_s == 20.0
    env = {"BULKIMPORT_SERVER_RATE": "30"}
    assert resolve(target, env, profile).send.server_rate_per_s == 30.0
    # And the table over what a resumed job stored.
    assert resolve(target, {}, profile, {"server_rate": 99}).send.server_rate_per_s == 50.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("servers = 5\n", r"servers must be tables"),
        ('[servers."https://cc.example"]\nrat = 5\n', r"must hold rate = N"),
        ('[servers."https://cc.example"]\nrate = -1\n', r"\[servers.'https://cc.example'\]"),
        ('[servers."ftp://cc.example"]\nrate = 5\n', r"is not an http\(s\) URL"),
        ('[servers."https://u:pw@cc.example"]\nrate = "x"\n', r"servers.'https://\*\*\*@cc"),
    ],
)
def test_a_bad_server_table_is_named_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_profile(profile_path)
    assert "pw" not in str(raised.value)
    assert "\n" not in str(raised.value)
