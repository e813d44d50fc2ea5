"""``--select`` / ``--exclude``: dbt-style choice of syncs (no dbt needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from reverse_etl.errors import UsageError
from reverse_etl.project.selection import parse_selectors, select_syncs


@dataclass(frozen=True)
class Sync:
    name: str
    model: str
    tags: list[str] = field(default_factory=list)


SYNCS = [
    Sync("customer_profiles", "customers", ["daily", "crm"]),
    Sync("customer_audiences", "customers", ["hourly"]),
    Sync("order_events", "orders", ["daily"]),
    Sync("churn_scores", "ml.churn", []),
]


def names(select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    return [s.name for s in select_syncs(SYNCS, select, exclude)]


def test_empty_select_is_everything_in_config_order() -> None:
    assert names() == [s.name for s in SYNCS]
    assert names([""]) == [s.name for s in SYNCS]


def test_methods() -> None:
    assert names(["order_events"]) == ["order_events"]
    assert names(["customer_*"]) == ["customer_profiles", "customer_audiences"]
    assert names(["tag:daily"]) == ["customer_profiles", "order_events"]
    assert names(["tag:*ly"]) == ["customer_profiles", "customer_audiences", "order_events"]
    assert names(["model:customers"]) == ["customer_profiles", "customer_audiences"]
    assert names(["model:ml.churn"]) == ["churn_scores"]


def test_union_of_values_and_of_space_separated_selectors() -> None:
    assert names(["churn_scores", "tag:hourly"]) == ["customer_audiences", "churn_scores"]
    assert names(["churn_scores  tag:hourly"]) == ["customer_audiences", "churn_scores"]
    assert names(["tag:daily", "order_events"]) == ["customer_profiles", "order_events"]


def test_comma_is_intersection() -> None:
    assert names(["tag:daily,model:customers"]) == ["customer_profiles"]
    assert names(["tag:daily,model:customers", "churn_scores"]) == [
        "customer_profiles",
        "churn_scores",
    ]


def test_exclude_removes() -> None:
    assert names(exclude=["tag:daily"]) == ["customer_audiences", "churn_scores"]
    assert names(["model:customers"], ["tag:hourly"]) == ["customer_profiles"]
    assert names(["order_events"], ["order_events"]) == []
    assert names(exclude=["tag:daily,model:orders churn_scores"]) == [
        "customer_profiles",
        "customer_audiences",
    ]


def test_selector_matching_nothing_names_it_and_the_syncs() -> None:
    with pytest.raises(UsageError) as error:
        names(["customer_profile"])
    message = str(error.value)
    assert message.startswith("selector 'customer_profile' matches no sync")
    assert "customer_profiles, customer_audiences, order_events, churn_scores" in message
    with pytest.raises(UsageError, match=r"'tag:weekly' matches no sync .*known tags: crm, "):
        names(["tag:daily", "tag:weekly"])
    with pytest.raises(UsageError, match=r"'model:custmers' .*known models: customers, ml"):
        names(["tag:daily,model:custmers"])


def test_a_mistyped_exclude_is_an_error_too() -> None:
    with pytest.raises(UsageError, match="selector 'tag:dialy' matches no sync"):
        names(exclude=["tag:dialy"])


def test_empty_intersection_is_an_error() -> None:
    with pytest.raises(UsageError, match="'tag:hourly,model:orders' matches no sync: no sync"):
        names(["tag:hourly,model:orders"])


def test_bad_selectors() -> None:
    with pytest.raises(UsageError, match="unknown selector method 'path' in 'path:models/x'"):
        names(["path:models/x"])
    with pytest.raises(UsageError, match="empty selector in 'tag:'"):
        names(["tag:"])
    with pytest.raises(UsageError, match="empty selector in 'tag:daily,'"):
        names(["tag:daily,"])
    with pytest.raises(TypeError):
        select_syncs(SYNCS, "tag:daily")


def test_parse_selectors() -> None:
    assert parse_selectors(["tag:daily,model:x  nightly", "b"]) == [
        [("tag", "daily"), ("model", "x")],
        [("name", "nightly")],
        [("name", "b")],
    ]


def test_works_with_the_config_model() -> None:
    from reverse_etl.insider.config import SyncConfig

    sync = SyncConfig.model_validate(
        {"name": "s", "model": "customers", "identifiers": {"uuid": "id"}, "tags": ["daily"]}
    )
    assert select_syncs([sync], ["tag:daily"]) == [sync]
