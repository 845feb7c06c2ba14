"""The contract options of a policy in the configuration: next_reply, pause, reopen, max_pause,
update_while_paused; bad values fail check-config with exit 78 naming policy and field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sla_monitor.cli import main
from sla_monitor.config import EX_CONFIG, ConfigError, escalation_levels, load_settings, policy_set
from sla_monitor.engine import Clock
from sla_monitor.engine.escalation import Trigger
from sla_monitor.engine.policy import Reopen


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SLA_MONITOR_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, toml: str) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    return config


GOLD = """
[policies.default]
[policies.gold]
queues = ["gold"]
next_reply = "2h"
pause = { resolution = ["pending", "waiting"], update = [], first_response = ["open"] }
reopen = "restart"
max_pause = "72h"
"""


def test_the_options_build_the_engines_policy(tmp_path: Path) -> None:
    gold = policy_set(load_settings(write(tmp_path, GOLD))).rules[0].policy
    assert gold.next_reply_seconds == 7200
    assert gold.pause == {
        Clock.RESOLUTION: frozenset({"pending", "waiting"}),
        Clock.UPDATE: frozenset(),
        Clock.FIRST_RESPONSE: frozenset({"open"}),
    }
    assert gold.reopen is Reopen.RESTART
    assert gold.max_pause_seconds == 72 * 3600


def test_the_defaults_are_todays_behaviour(tmp_path: Path) -> None:
    default = policy_set(load_settings(write(tmp_path, ""))).default
    assert default.next_reply_seconds is None
    assert default.pause == {}
    assert default.reopen is Reopen.RESUME
    assert default.max_pause_seconds is None


def test_update_while_paused_is_an_empty_update_pause(tmp_path: Path) -> None:
    config = write(tmp_path, "[policies.default]\nupdate_while_paused = true\n")
    assert policy_set(load_settings(config)).default.pause == {Clock.UPDATE: frozenset()}


def test_pause_limit_levels_and_next_reply_clocks_are_accepted(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "[escalation]\nenabled = true\n"
        '[[escalation.levels]]\nname = "stuck"\nwhen = "pause_limit"\n'
        'channels = ["alertmanager"]\nclocks = ["resolution", "next_reply"]\n',
    )
    (level,) = escalation_levels(load_settings(config))
    assert level.trigger is Trigger.PAUSE_LIMIT
    assert level.clocks == frozenset({Clock.RESOLUTION, Clock.NEXT_REPLY})


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('pause = { resolutoin = ["pending"] }', "policies.gold.pause.resolutoin"),
        ('pause = { update = ["snoozed"] }', "policies.gold.pause.update: 'snoozed' is not"),
        ('max_pause = "forever"', "policies.gold.max_pause: expected a duration"),
        ('max_pause = "400d"', "policies.gold.max_pause: expected a duration of at most"),
        ('reopen = "reset"', "policies.gold.reopen: Input should be 'resume' or 'restart'"),
        ('next_reply = "soon"', "policies.gold.next_reply: expected a duration"),
        (
            'update_while_paused = true\npause = { update = ["pending"] }',
            "policies.gold: update_while_paused = true contradicts pause.update",
        ),
    ],
)
def test_bad_options_exit_78_naming_policy_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, expected: str
) -> None:
    config = write(tmp_path, f"[policies.default]\n[policies.gold]\n{policy}\n")
    with pytest.raises(ConfigError, match=r"policies\.gold"):
        load_settings(config)
    assert main(["--config", str(config), "check-config"]) == EX_CONFIG
    assert expected in capsys.readouterr().err


def test_an_unknown_trigger_names_the_level(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "[escalation]\nenabled = true\n"
        '[[escalation.levels]]\nname = "x"\nwhen = "paused"\nchannels = ["alertmanager"]\n',
    )
    with pytest.raises(ConfigError, match=r"escalation\.levels\.0\.when"):
        load_settings(config)
