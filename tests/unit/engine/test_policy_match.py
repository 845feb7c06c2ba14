"""Which policy a ticket gets: rules match on priority, queue, organization, customer and
attributes; the first match in file order wins, the default applies when none does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from sla_monitor.engine import (
    Clock,
    ClockState,
    Policy,
    PolicyRule,
    PolicySet,
    Ticket,
    evaluate_ticket,
)
from sla_monitor.engine.business_calendar import BusinessCalendar, parse_hours

GOLD = Policy(name="gold", first_response_seconds=1800)
ACME = Policy(name="acme")
VIP = Policy(name="vip")
URGENT = Policy(name="urgent")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def ticket(**fields: object) -> Ticket:
    base: dict[str, object] = {
        "ticket_id": "1",
        "created_at": T0,
        "queue": "support",
        "initial_status": "new",
        "initial_priority": "normal",
    }
    return Ticket(**(base | fields))  # type: ignore[arg-type]


def chosen(policies: PolicySet, t: Ticket) -> str:
    return policies.policy_for(t.priority, t.queue, t.customer, t.organization, t.attributes).name


def test_the_first_matching_rule_in_file_order_wins() -> None:
    policies = PolicySet(
        rules=(
            PolicyRule(URGENT, priorities=frozenset({"urgent"})),
            PolicyRule(GOLD, match={"plan": frozenset({"gold"})}),
        )
    )
    both = ticket(initial_priority="urgent", attributes={"plan": "gold"})
    assert chosen(policies, both) == "urgent"
    assert chosen(policies, ticket(attributes={"plan": "gold"})) == "gold"
    assert chosen(policies, ticket(attributes={"plan": "standard"})) == "default"


def test_a_list_is_membership_and_every_criterion_must_hold() -> None:
    rule = PolicyRule(
        GOLD,
        priorities=frozenset({"urgent", "high"}),
        match={"plan": frozenset({"gold", "platinum"}), "type": frozenset({"incident"})},
    )
    policies = PolicySet(rules=(rule,))
    incident = {"plan": "platinum", "type": "incident"}
    assert chosen(policies, ticket(initial_priority="high", attributes=incident)) == "gold"
    assert chosen(policies, ticket(initial_priority="normal", attributes=incident)) == "default"
    question = {"plan": "platinum", "type": "question"}
    assert chosen(policies, ticket(initial_priority="high", attributes=question)) == "default"


def test_an_unknown_or_unnameable_attribute_simply_does_not_match() -> None:
    policies = PolicySet(rules=(PolicyRule(GOLD, match={"plan": frozenset({"gold"})}),))
    assert chosen(policies, ticket()) == "default"
    assert chosen(policies, ticket(attributes={"tier": "gold"})) == "default"
    assert chosen(policies, ticket(attributes={"plan": None})) == "default"
    assert chosen(policies, ticket(attributes={"plan": ["gold"]})) == "default"
    assert chosen(policies, ticket(attributes={"plan": {"name": "gold"}})) == "default"


def test_booleans_and_numbers_match_by_json_type() -> None:
    policies = PolicySet(
        rules=(
            PolicyRule(VIP, match={"vip": frozenset({True})}),
            PolicyRule(GOLD, match={"tier": frozenset({2})}),
        )
    )
    assert chosen(policies, ticket(attributes={"vip": True})) == "vip"
    assert chosen(policies, ticket(attributes={"vip": 1})) == "default"  # 1 is not true
    assert chosen(policies, ticket(attributes={"tier": 2.0})) == "gold"
    assert chosen(policies, ticket(attributes={"tier": "2"})) == "default"
    assert chosen(policies, ticket(attributes={"tier": True})) == "default"


def test_organizations_and_customers_match() -> None:
    policies = PolicySet(
        rules=(
            PolicyRule(VIP, customers=frozenset({"ceo@acme.example"})),
            PolicyRule(ACME, organizations=frozenset({"Acme", "Acme Japan"})),
        )
    )
    assert chosen(policies, ticket(customer="ceo@acme.example", organization="Acme")) == "vip"
    assert chosen(policies, ticket(customer="dev@acme.example", organization="Acme")) == "acme"
    assert chosen(policies, ticket(customer="ceo@acme.example")) == "vip"
    assert chosen(policies, ticket(organization="Initech")) == "default"
    assert chosen(policies, ticket()) == "default"  # no organization known


def test_explain_names_the_rule_and_the_fields_that_matched() -> None:
    policies = PolicySet(
        rules=(
            PolicyRule(
                GOLD,
                priorities=frozenset({"urgent"}),
                organizations=frozenset({"Acme"}),
                match={"plan": frozenset({"gold"})},
            ),
        )
    )
    attributes = MappingProxyType({"plan": "gold", "channel": "email"})
    policy, matched = policies.explain("urgent", "support", "a@acme.example", "Acme", attributes)
    assert policy is GOLD
    assert matched == {"priority": "urgent", "organization": "Acme", "attributes.plan": "gold"}
    policy, matched = policies.explain("normal", "support", None, "Acme", attributes)
    assert policy.name == "default" and matched is None


def test_a_catch_all_rule_has_no_criteria() -> None:
    assert PolicyRule(GOLD).catch_all
    assert not PolicyRule(GOLD, match={"plan": frozenset({"gold"})}).catch_all
    assert not PolicyRule(GOLD, customers=frozenset({"x"})).catch_all
    assert PolicySet(rules=(PolicyRule(GOLD),)).explain("normal", "support") == (GOLD, {})


def test_the_engine_judges_a_ticket_by_its_customers_policy() -> None:
    """A gold customer's ticket gets 30 minutes; the same ticket for anyone else, 1 h."""
    policies = PolicySet(rules=(PolicyRule(GOLD, match={"plan": frozenset({"gold"})}),))
    now = T0 + timedelta(minutes=40)
    gold = evaluate_ticket(ticket(attributes={"plan": "gold"}), policies, now)
    standard = evaluate_ticket(ticket(attributes={"plan": "standard"}), policies, now)
    assert gold.policy == "gold"
    assert gold.clocks[Clock.FIRST_RESPONSE].state is ClockState.BREACHED
    assert standard.policy == "default"
    assert standard.clocks[Clock.FIRST_RESPONSE].state is ClockState.OK  # 40 of 60 min


def _office(name: str, zone: str) -> BusinessCalendar:
    weekdays = {day: [parse_hours("09:00-17:00")] for day in range(5)}
    return BusinessCalendar(name, zone, weekdays)


def test_a_customer_in_tokyo_gets_tokyo_hours() -> None:
    """Created Monday 09:00 UTC = 18:00 in Tokyo (closed) and 10:00 in Berlin (open): the Tokyo
    customer's 1 h first response is due Tuesday 10:00 Tokyo, the other one's at 11:00 Berlin."""
    tokyo = Policy(name="japan", calendar=_office("tokyo", "Asia/Tokyo"))
    berlin = Policy(name="default", calendar=_office("berlin", "Europe/Berlin"))
    policies = PolicySet(
        rules=(PolicyRule(tokyo, organizations=frozenset({"Acme Japan"})),), default=berlin
    )
    now = T0 + timedelta(minutes=5)
    japan = evaluate_ticket(ticket(organization="Acme Japan"), policies, now)
    germany = evaluate_ticket(ticket(organization="Acme GmbH"), policies, now)
    assert japan.policy == "japan"
    assert japan.clocks[Clock.FIRST_RESPONSE].deadline == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert germany.clocks[Clock.FIRST_RESPONSE].deadline == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
