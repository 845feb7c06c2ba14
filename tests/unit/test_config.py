"""Configuration checks that must fail at load: durations, ratios, DSNs, and error messages
that never quote a secret."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from sla_monitor.cli import main
from sla_monitor.config import (
    EX_CONFIG,
    ConfigError,
    Settings,
    dsn_problem,
    load_settings,
    parse_duration,
    policy_set,
)
from sla_monitor.engine import Clock, Ticket, evaluate_ticket

SECRET = "Zq7-planted-secret-41"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SLA_MONITOR_"):
            monkeypatch.delenv(name)


def load_error(tmp_path: Path, toml: str = "") -> str:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    return str(error.value)


def load(tmp_path: Path, toml: str = "") -> Settings:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    return load_settings(config)


# Durations


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "1000000w", "366d"])
def test_non_finite_and_absurd_durations_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="expected a"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "seconds"), [(0, 0.0), ("0s", 0.0), ("365d", 365 * 86400.0)])
def test_zero_and_one_year_are_still_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[daemon]\npoll_interval = nan\n", "daemon.poll_interval: expected a finite duration"),
        ("[daemon]\npoll_interval = inf\n", "daemon.poll_interval: expected a finite duration"),
        (
            "[source]\nwatermark_lag = -inf\n",
            "source.watermark_lag: expected a finite duration",
        ),
        (
            '[policies.default]\nresolution = "1000000w"\n',
            "policies.default.resolution: expected a duration of at most one year (365d)",
        ),
        ("[escalation]\nretry_max = 1e12\n", "escalation.retry_max: expected a duration"),
        ("[policies.default]\nat_risk_ratio = nan\n", "policies.default.at_risk_ratio: "),
        ("[policies.default]\noverdue_ratio = inf\n", "policies.default.overdue_ratio: "),
    ],
)
def test_toml_values_that_would_crash_evaluation_fail_the_load(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert expected in load_error(tmp_path, toml)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SLA_MONITOR_DAEMON__POLL_INTERVAL", "nan", "daemon.poll_interval: expected a"),
        ("SLA_MONITOR_DAEMON__POLL_INTERVAL", "1000000w", "at most one year"),
        ("SLA_MONITOR_POLICIES__DEFAULT__OVERDUE_RATIO", "inf", "finite number"),
        ("SLA_MONITOR_POLICIES__DEFAULT__AT_RISK_RATIO", "nan", "finite number"),
    ],
)
def test_environment_values_that_would_crash_evaluation_fail_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert expected in load_error(tmp_path)


# Secrets in error messages


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        (f'[source]\nrt_pasword = "{SECRET}"\n', "source.rt_pasword"),
        (f'[source]\nrt_tokn = "{SECRET}"\n', "source.rt_tokn"),
        (f'[database]\nurl = "postgresql://u:{SECRET}@h/db"\n', "database.url"),
        (f'[source]\ndns = "postgresql://u:{SECRET}@h/db"\n', "source.dns"),
        (f'[daemon]\nlisten_prot = "{SECRET}"\n', "daemon.listen_prot"),
        (f'[escalation.channels.slack]\nwebhook_url = 7\nhook = "{SECRET}"\n', "slack.hook"),
        (f'[daemon]\nlisten_port = "postgresql://u:{SECRET}@h/db"\n', "daemon.listen_port"),
        (f'[daemon]\npoll_interval = "postgresql://u:{SECRET}@h/db"\n', "daemon.poll_interval"),
        (f'[source]\nrt_password = ["{SECRET}"]\n', "source.rt_password"),
        (f'[source]\nrt_token = {{ value = "{SECRET}" }}\n', "source.rt_token"),
        (f'[updates]\nwebhook_secret = 1\nwebhook_secrett = "{SECRET}"\n', "updates.webhook"),
    ],
)
def test_config_file_errors_never_quote_a_secret(tmp_path: Path, toml: str, field: str) -> None:
    message = load_error(tmp_path, toml)
    assert field in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("SLA_MONITOR_SOURCE__RT_TOKN", SECRET, "source.rt_tokn"),
        ("SLA_MONITOR_SOURCE__RT_PASWORD", SECRET, "source.rt_pasword"),
        ("SLA_MONITOR_DATABASE__DNS", f"postgresql://u:{SECRET}@h/db", "database.dns"),
        ("SLA_MONITOR_DATABASE__URL", f"postgres://u:{SECRET}@h/db", "database.url"),
        ("SLA_MONITOR_DAEMON__LISTEN_HOSTT", SECRET, "daemon.listen_hostt"),
    ],
)
def test_environment_errors_never_quote_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    message = load_error(tmp_path)
    assert field in message
    assert SECRET not in message


def test_an_unknown_key_names_the_settings_expected_there(tmp_path: Path) -> None:
    message = load_error(tmp_path, f'[source]\nrt_pasword = "{SECRET}"\n')
    assert "source.rt_pasword: Extra inputs are not permitted" in message
    assert "rt_password" in message.split("source.rt_pasword", 1)[1]


def test_harmless_values_are_still_quoted(tmp_path: Path) -> None:
    assert "(got 'loud')" in load_error(tmp_path, '[daemon]\nlog_level = "loud"\n')
    assert "got 'soon'" in load_error(tmp_path, '[policies.default]\nresolution = "soon"\n')


# DSNs

MALFORMED_DSNS = [
    f"postgresql://app:pa/ss#w{SECRET}@127.0.0.1:5432/db",  # '/' and '#' unescaped
    f"postgresql://app:{SECRET}#x@127.0.0.1:5432/db",
    f"postgresql://app:{SECRET}/x@127.0.0.1:5432/db",
    f"postgresql://app:1234/{SECRET}@127.0.0.1:5432/db",  # reads as port 1234, a path
    f"postgresql://app:{SECRET}?x@127.0.0.1/db",
    f"postgresql://app:p@{SECRET}@127.0.0.1/db",
    f"postgresql://app:{SECRET}@127.0.0.1:54x2/db",
    f"host=127.0.0.1 user=app password={SECRET} dbname=db",
    f"mysql://app:{SECRET}@127.0.0.1/db",
    f"postgresql://app:{SECRET}@[::1/db",
]


@pytest.mark.parametrize("dsn", MALFORMED_DSNS)
def test_malformed_dsns_are_recognised_without_quoting_them(dsn: str) -> None:
    problem = dsn_problem(dsn)
    assert problem is not None
    assert SECRET not in problem


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgres://app:pa%2Fss%23w%40x@db.example:6432/helpdesk?sslmode=require",
        "postgresql://postgres:@/postgres?host=/var/run/postgresql",  # pgserver's form
        "postgresql:///helpdesk",
        "postgresql://app:secret@[::1]:5432,10.0.0.2:5433/db?target_session_attrs=read-write",
    ],
)
def test_well_formed_dsns_are_accepted(dsn: str) -> None:
    assert dsn_problem(dsn) is None


@pytest.mark.parametrize("field", ["DATABASE__DSN", "SOURCE__DSN"])
@pytest.mark.parametrize("dsn", MALFORMED_DSNS[:3])
def test_a_malformed_dsn_fails_the_load_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, dsn: str
) -> None:
    monkeypatch.setenv(f"SLA_MONITOR_{field}", dsn)
    message = load_error(tmp_path)
    assert field.lower().replace("__", ".") in message
    assert "percent-encode special characters in the password" in message
    assert SECRET not in message


def test_a_malformed_dsn_in_the_file_fails_the_load(tmp_path: Path) -> None:
    message = load_error(tmp_path, f'[database]\ndsn = "{MALFORMED_DSNS[0]}"\n')
    assert "database.dsn: the DSN cannot be parsed" in message
    assert SECRET not in message


def test_a_malformed_dsn_file_fails_the_load_naming_the_file(tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(MALFORMED_DSNS[0] + "\n")
    message = load_error(tmp_path, f'[database]\ndsn_file = "{dsn_file}"\n')
    assert f"dsn_file {dsn_file} cannot be parsed" in message
    assert "percent-encode" in message
    assert SECRET not in message


def test_a_well_formed_dsn_file_is_read(tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text("postgresql://app:pa%2Fss@127.0.0.1/db\n")
    settings = load(tmp_path, f'[database]\ndsn_file = "{dsn_file}"\n')
    assert settings.database.dsn is not None
    assert settings.database.dsn.get_secret_value() == "postgresql://app:pa%2Fss@127.0.0.1/db"


async def test_a_dsn_set_after_loading_is_checked_before_connecting(tmp_path: Path) -> None:
    """`demo` and embedding code set DSNs on loaded settings; asyncpg's parser would fail with
    a traceback quoting the password."""
    from sla_monitor.app import open_pools

    settings = load(tmp_path)
    settings.source.dsn = SecretStr(MALFORMED_DSNS[0])
    settings.database.dsn = SecretStr("postgresql://u@127.0.0.1:1/db")
    with pytest.raises(ConfigError) as error:
        async with open_pools(settings):
            pass
    assert "source.dsn: the DSN cannot be parsed" in str(error.value)
    assert SECRET not in str(error.value)


# The board's public address (http.public_url)


@pytest.mark.parametrize(
    "url",
    [
        "/board",  # relative
        "sla.example.com",  # no scheme
        "ftp://sla.example.com/",
        "https://",  # no host
        "https://sla.example.com:port/",
        f"https://ops:{SECRET}@sla.example.com/",  # sent to every channel
        "https://sla.example.com/?token=x",  # paths are appended to it
    ],
)
def test_a_public_url_not_absolute_http_fails_the_load_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[http]\npublic_url = "{url}"\n')
    expected = "http.public_url: expected an absolute http:// or https:// URL"
    with pytest.raises(ConfigError, match=r"http\.public_url"):
        load_settings(config)
    assert main(["--config", str(config), "check-config"]) == EX_CONFIG
    message = capsys.readouterr().err
    assert expected in message and SECRET not in message


def test_a_public_url_from_the_environment_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLA_MONITOR_HTTP__PUBLIC_URL", "sla.example.com/board")
    assert "http.public_url: expected an absolute" in load_error(tmp_path)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://sla.example.com", "https://sla.example.com/"),
        ("http://ops.example:8080/sla", "http://ops.example:8080/sla/"),
        ("https://sla.example.com/sla/", "https://sla.example.com/sla/"),
    ],
)
def test_a_public_url_is_kept_ending_in_a_slash(tmp_path: Path, url: str, kept: str) -> None:
    assert load(tmp_path, f'[http]\npublic_url = "{url}"\n').http.public_url == kept
    assert load(tmp_path).http.public_url is None


# Contracts: what a policy matches on


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[policies.gold]\nmatch = { plan = { name = "gold" } }\n',
            "policies.gold.match: attribute 'plan': expected a string, number or boolean, "
            "or a list of them, got a table",
        ),
        (
            "[policies.gold]\nmatch = { plan = [[1, 2]] }\n",
            "policies.gold.match: attribute 'plan': expected a string, number or boolean, "
            "or a list of them, got a list inside the list",
        ),
        (
            "[policies.gold]\nmatch = { plan = [] }\n",
            "policies.gold.match: attribute 'plan': an empty list matches nothing",
        ),
        (
            "[policies.gold]\nmatch = { since = 2026-01-01 }\n",
            "policies.gold.match: attribute 'since': expected a string, number or boolean, "
            "or a list of them, got a date",
        ),
        ('[policies.gold]\nmatch = "gold"\n', "policies.gold.match: Input should be a valid"),
        ("[policies.acme]\norganizations = [1, 2]\n", "policies.acme.organizations.0:"),
        ("[policies.acme]\ncustomers = []\n", "policies.acme.customers: List should have"),
        ('[policies.acme]\ncustomers = "a@b.example"\n', "policies.acme.customers:"),
    ],
)
def test_a_match_of_the_wrong_type_fails_naming_policy_and_field(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert expected in load_error(tmp_path, toml)


def test_a_policy_after_a_catch_all_is_shadowed(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        '[policies.everyone]\nfirst_response = "2h"\n'
        '[policies.gold]\nmatch = { plan = "gold" }\nfirst_response = "30m"\n'
        "[policies.default]\n",
    )
    assert "policies.gold: can never match: shadowed by policies.everyone" in error


def test_a_catch_all_last_and_a_default_anywhere_are_fine(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[policies.default]\nfirst_response = "1h"\n'
        '[policies.gold]\nmatch = { plan = ["gold", "platinum"], seats = 10, vip = true }\n'
        '[policies.acme]\norganizations = ["Acme"]\ncustomers = ["ceo@acme.example"]\n'
        '[policies.everyone]\nfirst_response = "2h"\n',
    )
    assert list(settings.policies) == ["default", "gold", "acme", "everyone"]
    assert settings.policies["gold"].match == {
        "plan": ["gold", "platinum"],
        "seats": 10,
        "vip": True,
    }


def test_an_unknown_attribute_in_a_match_is_no_error(tmp_path: Path) -> None:
    settings = load(
        tmp_path, '[policies.gold]\nmatch = { no_such_field = "x" }\n[policies.default]\n'
    )
    assert settings.policies["gold"].match == {"no_such_field": "x"}


def test_the_readme_contracts_example_gives_each_customer_their_hours(tmp_path: Path) -> None:
    """The README's example, as written there: a standard ticket created Monday 09:00 UTC is
    due 11:00 Berlin, Acme Japan KK's Tuesday 10:00 Tokyo, a gold one 09:30 UTC."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Contracts") :]
    example = section[section.index("```toml") + len("```toml") : section.index("```\n\n")]
    policies = policy_set(load(tmp_path, example))
    created = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday

    def due(**fields: Any) -> datetime | None:
        ticket = Ticket("1", created, "support", "new", "normal", **fields)
        evaluation = evaluate_ticket(ticket, policies, created + timedelta(minutes=1))
        return evaluation.clocks[Clock.FIRST_RESPONSE].deadline

    assert due() == datetime(2026, 3, 2, 11, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert due(organization="Acme Japan KK") == datetime(
        2026, 3, 3, 10, tzinfo=ZoneInfo("Asia/Tokyo")
    )
    assert due(attributes={"plan": "platinum"}) == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
