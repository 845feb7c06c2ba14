"""`sla-monitor import-rt-sla`: RT's %ServiceAgreements and %ServiceBusinessHours, read by
perl, as calendars and policies that load and judge tickets as RT's levels say."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sla_monitor.cli import main
from sla_monitor.config import load_settings, policy_set
from sla_monitor.engine import Ticket, evaluate_ticket
from sla_monitor.rt_sla import RtConfigError, read_rt_config, rt_sla_toml

FIXTURES = Path(__file__).parents[1] / "fixtures" / "rt_sla"
SITE_CONFIG = FIXTURES / "RT_SiteConfig.pm"
YEARS = range(2026, 2028)

pytestmark = pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")


def imported(tmp_path: Path, text: str) -> Path:
    """The imported TOML behind the minimal header it needs, as a configuration file."""
    path = tmp_path / "sla-monitor.toml"
    path.write_text('[source]\nkind = "rt"\n\n' + text)
    return path


def test_the_sample_site_config_becomes_the_expected_toml() -> None:
    config = read_rt_config([SITE_CONFIG])
    assert (
        rt_sla_toml(config, YEARS, "RT_SiteConfig.pm") == (FIXTURES / "expected.toml").read_text()
    )


def test_the_imported_toml_loads_and_measures_as_rt_levels_say(tmp_path: Path) -> None:
    text = rt_sla_toml(read_rt_config([SITE_CONFIG]), YEARS)
    settings = load_settings(imported(tmp_path, text))
    policies = settings.policies
    assert list(policies) == ["rt_24_7", "rt_night", "rt_standard", "default"]
    assert policies["rt_24_7"].match == {"sla": "24/7"}
    assert policies["rt_24_7"].calendar == "24x7"
    # Response is due after creation and after every customer message.
    assert policies["rt_24_7"].first_response == policies["rt_24_7"].next_reply == 1800
    assert policies["rt_24_7"].update_interval == 7200
    # RT's deadlines run on in stalled unless the level ignores it there.
    assert policies["rt_24_7"].pause["resolution"] == []
    assert policies["rt_standard"].pause["resolution"] == ["stalled"]
    assert policies["rt_standard"].update_interval is None  # no KeepInLoop
    assert policies["default"].first_response is None
    assert policies["default"].resolution is None
    calendar = settings.calendars["default"]
    assert calendar.mon == ["09:00-12:00", "13:00-17:00"]  # the lunch break
    assert calendar.timezone == "Europe/Berlin"
    night = settings.calendars["night_shift"]
    assert night.timezone == "Asia/Tokyo"  # the level's own Timezone
    assert night.sun == ["22:00-24:00"] and night.mon == ["00:00-06:00"]  # past midnight

    # A 'standard' ticket opened Monday 2026-11-23 11:30 Berlin: 2 business hours are
    # 11:30-12:00 and 13:00-14:30, as RT's Business::Hours counts them.
    ticket = Ticket(
        "1",
        datetime(2026, 11, 23, 10, 30, tzinfo=UTC),
        "General",
        "new",
        "low",
        attributes={"sla": "standard"},
    )
    evaluation = evaluate_ticket(
        ticket, policy_set(settings), datetime(2026, 11, 23, 11, tzinfo=UTC)
    )
    assert evaluation.policy == "rt_standard"
    deadline = evaluation.clocks["first_response"].deadline  # type: ignore[index]
    assert deadline == datetime(2026, 11, 23, 13, 30, tzinfo=UTC)


def test_the_command_prints_toml_that_check_config_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import-rt-sla", str(SITE_CONFIG)]) == 0
    text = capsys.readouterr().out
    assert "[policies.rt_standard]" in text
    config = imported(tmp_path, text)
    assert main(["--config", str(config), "check-config"]) == 0
    assert "configuration OK: 4 policies" in capsys.readouterr().out


def test_later_files_win_as_in_rt_site_config_d(tmp_path: Path) -> None:
    zone = tmp_path / "40-timezone.pm"
    zone.write_text("Set($Timezone, 'America/New_York');\n1;\n")
    levels = tmp_path / "90-sla.pm"
    levels.write_text(
        "Set(%ServiceAgreements, Levels => { gold => { Resolve => '240' } });\n"
        "Set($Timezone, 'Asia/Tokyo');\n1;\n"
    )
    config = read_rt_config([zone, levels])
    assert config["Timezone"] == "Asia/Tokyo"
    text = rt_sla_toml(config, YEARS)
    # A plain number (even a string of digits) is business minutes, in Business::Hours' own
    # week when %ServiceBusinessHours has no Default.
    assert 'resolution = "4h"  # Resolve' in text
    assert 'calendar = "default"' in text
    assert "Business::Hours' own week" in text
    settings = load_settings(imported(tmp_path, text))
    assert settings.calendars["default"].fri == ["09:00-18:00"]
    assert settings.calendars["default"].timezone == "Asia/Tokyo"


def test_without_timezone_utc_is_assumed_and_said(tmp_path: Path) -> None:
    text = rt_sla_toml(
        {
            "ServiceAgreements": {"Levels": {"x": {"Response": 60}}},
            "ServiceBusinessHours": {"Default": {"1": {"Start": "8:00", "End": "12:00"}}},
        },
        YEARS,
    )
    assert "$Timezone is not set" in text
    assert 'timezone = "UTC"' in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Set(%ServiceAgreements, Levels => { x => { Resolve => 60 } }\n1;\n", "syntax error"),
        ("1;\n", "no Levels"),
        ("Set(%ServiceAgreements, Levels => { x => { Resolve => 'soon' } });\n1;\n", "soon"),
        (
            "Set(%ServiceAgreements, Levels => { x => { Resolve => 60, BusinessHours => 'ops' } "
            "});\n1;\n",
            "'ops'",
        ),
    ],
)
def test_a_malformed_file_exits_78_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "RT_SiteConfig.pm"
    path.write_text(content)
    assert main(["import-rt-sla", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.startswith("sla-monitor: import-rt-sla: ") and message in err


def test_an_unreadable_file_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-rt-sla", str(tmp_path / "missing.pm")]) == 78
    assert "missing.pm: not a readable file" in capsys.readouterr().err


def test_without_perl_the_command_exits_69(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no perl on the PATH
    assert main(["import-rt-sla", str(SITE_CONFIG)]) == 69
    assert "perl is not installed" in capsys.readouterr().err


def test_holidays_every_year_are_listed_for_the_years_asked() -> None:
    text = rt_sla_toml(
        {
            "ServiceAgreements": {"Levels": {"x": {"Resolve": 60}}},
            "ServiceBusinessHours": {
                "Default": {"1": {"Start": "9:00", "End": "17:00"}, "holidays": ["01-01"]}
            },
            "Timezone": "UTC",
        },
        range(2030, 2033),
    )
    assert "holidays = [2030-01-01, 2031-01-01, 2032-01-01]" in text
    assert "listed for 2030-2032" in text


def test_a_bad_business_hours_day_is_refused() -> None:
    with pytest.raises(RtConfigError, match="unknown day 'monday'"):
        rt_sla_toml(
            {
                "ServiceAgreements": {"Levels": {"x": {"Resolve": 60}}},
                "ServiceBusinessHours": {"Default": {"monday": {"Start": "9:00"}}},
            },
            YEARS,
        )
