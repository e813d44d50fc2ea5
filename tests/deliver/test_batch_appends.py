"""Deciding per request whether an upsert appends must agree with the per-item rule.

A request classified "does not append" is resent blindly after a lost answer, so a
wrong answer here would append array elements twice at Insider.
"""

from __future__ import annotations

import random

import pyarrow as pa

from reverse_etl.insider.http.batching import Batch, pack
from reverse_etl.insider.http.verify import appends, batch_appends

ITEMS = [
    b'{"identifiers":{"uuid":"a"},"attributes":{"tags":["x"]},"not_append":true}',
    b'{"identifiers":{"uuid":"b"},"attributes":{"name":"n"}}',
    b'{"identifiers":{"uuid":"c"},"attributes":{"tags":["y"]}}',
    # not_append only inside a nested object: the array still appends
    b'{"identifiers":{"uuid":"d"},"attributes":{"custom":{"not_append":true},"tags":["z"]}}',
    # a nested object that ends with not_append: not the user object's own key
    b'{"identifiers":{"uuid":"e"},"attributes":{"tags":["w"],"custom":{"not_append":true}}}',
    b'{"identifiers":{"uuid":"f"},"attributes":{"name":"["},"not_append":true}',
    b'{"identifiers":{"uuid":"g"},"events":[{"event_name":"x"}],"not_append":true}',
]


def test_batches_from_pack_agree_with_the_per_item_rule() -> None:
    rng = random.Random(18)
    for _ in range(400):
        items = [rng.choice(ITEMS) for _ in range(rng.randint(1, 12))]
        chunk = pa.array(items, pa.binary())
        for batch in pack([(list(range(len(items))), chunk)], bulk=True, max_users=rng.randint(1, 12),
                          max_bytes=5_000_000):
            assert isinstance(batch, Batch)
            assert batch_appends(batch) == any(map(appends, batch.items)), batch.items


def test_a_batch_of_not_append_upserts_with_arrays_does_not_append() -> None:
    (batch,) = pack([([0, 1], pa.array([ITEMS[0], ITEMS[5]], pa.binary()))], bulk=True, max_users=10,
                    max_bytes=5_000_000)
    assert isinstance(batch, Batch)
    assert not batch_appends(batch)


def test_one_item_without_not_append_makes_the_request_appending() -> None:
    (batch,) = pack([([0, 1, 2], pa.array([ITEMS[0], ITEMS[2], ITEMS[0]], pa.binary()))], bulk=True,
                    max_users=10, max_bytes=5_000_000)
    assert isinstance(batch, Batch)
    assert batch_appends(batch)


def test_a_custom_attribute_named_not_append_does_not_make_arrays_safe() -> None:
    """Only the user object's own ``not_append`` stops arrays appending: a nested one
    (a custom attribute of that name) left the request classified as safe to resend."""
    assert appends(ITEMS[3]) and appends(ITEMS[4])
    (batch,) = pack([([0, 1], pa.array([ITEMS[0], ITEMS[4]], pa.binary()))], bulk=True, max_users=10,
                    max_bytes=5_000_000)
    assert isinstance(batch, Batch)
    assert batch_appends(batch)
