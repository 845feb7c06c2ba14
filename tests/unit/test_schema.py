"""The configuration's defaults are the engine's: stated once, in the engine."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from sla_monitor.config import policy_set
from sla_monitor.engine import Policy, PolicySet, StatusMap
from sla_monitor.schema import PolicySettings, Settings, StatusSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SLA_MONITOR_"):
            monkeypatch.delenv(name)


def test_policy_defaults_are_the_engines() -> None:
    settings, engine = PolicySettings(), Policy()
    assert settings.first_response == engine.first_response_seconds
    assert settings.resolution == engine.resolution_seconds
    assert settings.update_interval == engine.update_interval_seconds
    assert settings.at_risk_ratio == engine.at_risk_ratio
    assert settings.overdue_ratio == engine.overdue_ratio
    built = policy_set(Settings()).default
    assert replace(built, calendar=engine.calendar) == engine


def test_status_and_priority_defaults_are_the_engines_in_todays_order() -> None:
    settings = Settings()
    built = policy_set(settings)
    assert built.statuses == StatusMap()
    assert built.priorities == PolicySet().priorities
    # The order is part of the contract: the first open status is a new ticket's status.
    assert settings.priorities == ["urgent", "high", "normal", "low"]
    assert StatusSettings().model_dump() == {
        "open": ["new", "open"],
        "paused": ["pending", "waiting"],
        "resolved": ["resolved", "closed"],
    }


def test_policy_criteria_become_the_engines_rules_in_file_order() -> None:
    settings = Settings(
        policies={
            "gold": {"match": {"plan": ["gold", "platinum"], "type": "incident"}},
            "acme": {"organizations": ["Acme"], "customers": ["ceo@acme.example"]},
            "default": {},
        }
    )
    gold, acme = policy_set(settings).rules
    assert gold.policy.name == "gold"
    assert gold.match == {"plan": frozenset({"gold", "platinum"}), "type": frozenset({"incident"})}
    assert gold.organizations is None and gold.customers is None and gold.priorities is None
    assert acme.organizations == frozenset({"Acme"})
    assert acme.customers == frozenset({"ceo@acme.example"})
    assert acme.match is None
    policies = policy_set(settings)
    chosen = policies.policy_for(
        "normal", "support", None, None, {"plan": "gold", "type": "incident"}
    )
    assert chosen.name == "gold"
