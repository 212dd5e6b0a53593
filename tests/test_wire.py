"""The SSE wire format: fuzzed against a strict parser written from the WHATWG algorithm, and an
event's form by example (the seed's bytes).

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

The format cannot carry a CR: the parser turns every line terminator (CRLF, CR, LF) inside
``data`` into LF. So raw ``format_event`` data comes back with its line breaks normalised, and an
:class:`SSEEvent` (whose ``data`` line is JSON, where CR is escaped) comes back exactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sse_core import SSEEvent, SSEEventType
from sse_core.wire import format_comment, format_event, format_retry


@dataclass(frozen=True)
class Dispatched:
    type: str
    data: str
    last_event_id: str


@dataclass
class Parsed:
    events: list[Dispatched]
    retry: int | None


_TERMINATOR = re.compile(r"\r\n|\r|\n")


def parse_event_stream(stream: str) -> Parsed:
    """The spec's algorithm, field by field; an unterminated last line is discarded."""
    if stream.startswith("\ufeff"):
        stream = stream[1:]
    *lines, _incomplete = _TERMINATOR.split(stream)
    events: list[Dispatched] = []
    data, event_type, id_buffer, last_event_id = "", "", "", ""
    retry: int | None = None
    for line in lines:
        if line == "":
            last_event_id = id_buffer
            if data == "":
                event_type = ""
                continue
            if data.endswith("\n"):
                data = data[:-1]
            events.append(Dispatched(event_type or "message", data, last_event_id))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\x00" not in value:
                id_buffer = value
        elif name == "retry" and value and all("0" <= ch <= "9" for ch in value):
            retry = int(value)
    return Parsed(events, retry)


def decode_with_httpx_sse(stream: str) -> list[str]:
    """The same stream through httpx-sse's line splitter and decoder (the test client's parser)."""
    lines_decoder, decoder = SSELineDecoder(), SSEDecoder()
    datas = []
    for line in [*lines_decoder.decode(stream), *lines_decoder.flush()]:
        sse = decoder.decode(line)
        if sse is not None and sse.data:
            datas.append(sse.data)
    return datas


def normalise_breaks(text: str) -> str:
    return _TERMINATOR.sub("\n", text)


# Text that can travel as UTF-8 (no lone surrogates), with line breaks, NUL and wide characters
# made much more likely than uniform sampling would make them.
NASTY = st.sampled_from(
    ["\r", "\n", "\r\n", "\n\r", "\x00", ":", " ", "\ufeff", "\u2028", "é", "😀"]
)
CHARS = st.characters(exclude_categories=("Cs",))
TEXT = st.lists(st.one_of(NASTY, CHARS, st.text(CHARS, max_size=8)), max_size=40).map("".join)
LONG_TEXT = st.builds(lambda s, n: s * n, TEXT.filter(bool), st.integers(100, 3000))
FIELD = st.text(CHARS.filter(lambda c: c not in "\r\n\x00"), max_size=40)
FORBIDDEN = st.sampled_from(["\r", "\n", "\x00", "\r\n"])


@given(data=st.one_of(TEXT, LONG_TEXT), event=st.one_of(st.none(), FIELD), event_id=FIELD)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_data_parses_back_into_exactly_one_event(
    data: str, event: str | None, event_id: str
) -> None:
    wire = format_event(data, event=event, event_id=event_id)
    parsed = parse_event_stream(wire)
    assert len(parsed.events) == 1
    [got] = parsed.events
    assert got.data == normalise_breaks(data)
    assert got.type == (event or "message")
    assert got.last_event_id == event_id
    assert decode_with_httpx_sse(wire) == ([got.data] if got.data else [])


@given(values=st.lists(st.text(CHARS, max_size=30), max_size=3), more=TEXT)
@settings(max_examples=200)
def test_an_sse_event_survives_the_wire_exactly(values: list[str], more: str) -> None:
    original = SSEEvent(
        event_type=SSEEventType.AI_RESPONSE_CHUNK,
        user_id="5d2f0a3e-9c61-4b1e-8f7a-2a9d5c3e7b10",
        data={"chunk": more, "parts": values, more[:20]: "key"},
    )
    [got] = parse_event_stream(original.to_sse_format()).events
    assert got.type == original.event_type.value
    assert got.last_event_id == str(original.event_id)
    assert json.loads(got.data) == original.data  # data: the payload, as the seed sends it
    [whole] = parse_event_stream(original.to_sse_format(envelope=True)).events
    assert SSEEvent.model_validate(json.loads(whole.data)) == original


@given(batch=st.lists(st.tuples(TEXT, FIELD), min_size=1, max_size=6), note=TEXT)
@settings(max_examples=150)
def test_a_stream_of_events_comments_and_retry_keeps_every_boundary(
    batch: list[tuple[str, str]], note: str
) -> None:
    wire = format_retry(1500) + format_comment(note)
    for data, event_id in batch:
        wire += format_event(data, event_id=event_id) + format_comment("ping")
    parsed = parse_event_stream(wire)
    assert parsed.retry == 1500
    assert [(e.data, e.last_event_id) for e in parsed.events] == [
        (normalise_breaks(d), i) for d, i in batch
    ]


@given(text=TEXT)
def test_a_comment_never_becomes_an_event(text: str) -> None:
    assert parse_event_stream(format_comment(text) + "\n").events == []


@given(before=FIELD, bad=FORBIDDEN, after=FIELD)
def test_id_and_event_with_line_breaks_or_nul_are_rejected(
    before: str, bad: str, after: str
) -> None:
    value = before + bad + after
    with pytest.raises(ValueError, match="must not contain CR, LF or NUL"):
        format_event("x", event_id=value)
    with pytest.raises(ValueError, match="must not contain CR, LF or NUL"):
        format_event("x", event=value)


def test_parser_follows_the_spec_on_known_cases() -> None:
    # The WHATWG examples: data lines join with LF; "data" without a colon is an empty data
    # line; a last message without its blank line is discarded; a bad retry is ignored.
    yhoo = parse_event_stream("data: YHOO\ndata: +2\ndata: 10\n\n")
    assert [e.data for e in yhoo.events] == ["YHOO\n+2\n10"]
    assert [e.data for e in parse_event_stream("data\n\ndata\ndata\n\ndata:").events] == [
        "",
        "\n",
    ]
    assert parse_event_stream(": test stream\n\ndata: first event\nid: 1\n\n").events == [
        Dispatched("message", "first event", "1")
    ]
    assert parse_event_stream("retry: 2x\n\n").retry is None
    assert parse_event_stream("data:  two spaces\n\n").events[0].data == " two spaces"


# -- an event's wire form, by example ------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"error": "a\nb\r\nc"},
        {"unicode": "日本語 \u2028 é", "null": None, "list": [1, 2.5, True], "nested": {"k": {}}},
        {},
    ],
)
def test_sse_format_is_the_seeds_bytes_payload_only(data: dict[str, object]) -> None:
    event = SSEEvent(event_type="sync.accounts.failed", user_id=uuid4(), data=data)
    # The seed's to_sse_format, written out: id, event, data = json.dumps(payload), blank line.
    seed = "\n".join(
        [f"id: {event.event_id}", "event: sync.accounts.failed", f"data: {json.dumps(data)}", ""]
    )
    assert event.to_sse_format() == seed + "\n"
    assert json.loads(event.to_sse_format().split("\n")[2][len("data: ") :]) == data


def test_sse_format_envelope_is_opt_in() -> None:
    event = SSEEvent(event_type="ai.response.chunk", user_id=uuid4(), data={"n": 1})
    lines = event.to_sse_format(envelope=True)[:-2].split("\n")
    assert lines[:2] == [f"id: {event.event_id}", "event: ai.response.chunk"]
    assert SSEEvent.from_dict(json.loads(lines[2][len("data: ") :])) == event


def test_sse_format_data_json_cannot_encode_is_made_json_safe() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = SSEEvent(event_type="ai.response.chunk", user_id=uuid4(), data={"at": when})
    data = event.to_sse_format().split("\n")[2][len("data: ") :]
    assert json.loads(data) == {"at": "2026-01-02T03:04:05Z"}
