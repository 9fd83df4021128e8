"""The WebSocket outbox alone: budget, atomic pairs, order, close."""

from __future__ import annotations

import asyncio

from csmstream.server.outbox import CONTROL_CAP_BYTES, Outbox


def drain(outbox: Outbox) -> list:
    async def main():
        items = []
        while (item := await outbox.get()) is not None:
            items.append(item)
            outbox.done(item)
        return items

    return asyncio.run(main())


def test_items_come_out_in_order_with_binary_data_attached_to_its_json():
    outbox = Outbox(max_audio_bytes=1000)
    outbox.put_control('{"n": 0}')
    assert outbox.put_audio('{"n": 1}', b"\x01" * 10)
    assert outbox.put_audio('{"n": 2}', None)
    outbox.close()
    items = drain(outbox)
    assert [item.text for item in items] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert [item.data for item in items] == [None, b"\x01" * 10, None]
    assert outbox.audio_bytes == 0, "sent items must leave the budget"


def test_audio_over_budget_is_refused_but_control_messages_are_not():
    outbox = Outbox(max_audio_bytes=100)
    assert outbox.put_audio("{}", b"\x00" * 60)
    assert not outbox.put_audio("{}", b"\x00" * 60), "a chunk past the budget must be refused"
    assert outbox.audio_bytes == 62, "a refused chunk must not count"
    outbox.put_control('{"type": "error"}')  # still accepted
    outbox.close()
    assert [item.text for item in drain(outbox)] == ["{}", '{"type": "error"}']


def test_a_chunk_bigger_than_the_budget_still_goes_into_an_empty_outbox():
    outbox = Outbox(max_audio_bytes=10)
    assert outbox.put_audio("{}", b"\x00" * 100), "a reader that keeps up must never be refused"
    assert not outbox.put_audio("{}", b"\x00")


def test_budget_is_freed_as_items_are_sent():
    async def main():
        outbox = Outbox(max_audio_bytes=100)
        assert outbox.put_audio("{}", b"\x00" * 90)
        assert not outbox.put_audio("{}", b"\x00" * 90)
        item = await outbox.get()
        assert not outbox.put_audio("{}", b"\x00" * 90), "an item being sent still counts"
        outbox.done(item)
        assert outbox.put_audio("{}", b"\x00" * 90)

    asyncio.run(main())


def test_get_waits_for_an_item_and_returns_none_once_closed():
    async def main():
        outbox = Outbox(max_audio_bytes=100)
        waiter = asyncio.create_task(outbox.get())
        await asyncio.sleep(0)
        assert not waiter.done()
        outbox.put_control("{}")
        assert (await waiter).text == "{}"
        closer = asyncio.create_task(outbox.get())
        await asyncio.sleep(0)
        outbox.close()
        assert await closer is None
        assert not outbox.put_audio("{}", None), "a closed outbox takes nothing"

    asyncio.run(main())


def test_control_flood_overflows_and_closes():
    outbox = Outbox(max_audio_bytes=100)
    message = "x" * 1000
    for _ in range(CONTROL_CAP_BYTES // len(message) + 1):
        outbox.put_control(message)
    assert outbox.overflowed, "a client that reads nothing must be cut off"
    assert drain(outbox) == [], "an overflowed outbox drops what it held"
