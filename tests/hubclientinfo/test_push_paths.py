"""The ClientInfo push path: country code and party id, each one percent-encoded segment."""

from __future__ import annotations

from datetime import UTC, datetime

from hubclientinfo.services import Connection


def test_each_id_is_one_encoded_segment():
    connection = Connection(1, "N/", "A?#", "CPO", "CONNECTED", datetime(2030, 1, 1, tzinfo=UTC))

    message = connection.message()

    assert message.path == "N%2F/A%3F%23"
    assert message.key == "N//A?#/CPO"  # the coalescing key is unchanged
