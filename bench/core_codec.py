"""Codec cost per event: is decoding the bottleneck, and do orjson / Rust JSON parsing pay?

Times (microseconds per call, best of repeats, no Redis) the codec functions the hot paths call,
next to the alternatives someone would try, on the same ~300-byte sample event:

* live delivery decodes a pub/sub payload: ``decode_payload`` (pydantic ``model_validate_json``,
  Rust) vs stdlib ``json.loads`` alone (what the bare loop does) and ``orjson.loads`` +
  ``model_validate``;
* replay decodes stream entries: ``decode_fields`` vs the stdlib-json version it replaced
  (``json.loads`` of the data field) and an orjson variant;
* publish encodes: ``encode_event`` (both stored forms, the payload parsed back: the codec's
  rule) vs the same without the check (before #9), ``json.dumps(to_dict())`` and ``orjson.dumps``.

    python3 -m bench.core_codec [--number 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import timeit
from collections.abc import Callable, Mapping
from typing import Any

import pydantic_core
from pydantic import ValidationError

from bench._harness import checkout, sample_event
from sse_core.codec import (
    MalformedEvent,
    decode_fields,
    decode_payload,
    encode_event,
    encode_fields,
    encode_payload,
)
from sse_core.events import SSEEvent

DISTINCT = 1000

try:
    import orjson
except ImportError:  # not a dependency: only measured when installed
    orjson = None


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def decode_fields_stdlib(fields: Mapping[Any, Any]) -> SSEEvent:
    """The previous ``decode_fields``: stdlib ``json.loads`` for the data field."""
    record = {_text(k): _text(v) for k, v in fields.items()}
    try:
        data = json.loads(record.get("data", "{}"))
        return SSEEvent.model_validate({**record, "data": data})
    except (ValidationError, json.JSONDecodeError) as exc:
        raise MalformedEvent(str(exc)) from None


def encode_unchecked(event: SSEEvent) -> tuple[bytes, list[bytes]]:
    """What publishing encoded before the codec's rule: the same two forms, never parsed back."""
    return event.model_dump_json().encode(), [
        str(event.event_id).encode(),
        event.event_type.value.encode(),
        pydantic_core.to_json(event.data),
        event.occurred_at.isoformat().encode(),
        str(event.user_id).encode(),
    ]


def decode_fields_orjson(fields: Mapping[Any, Any]) -> SSEEvent:
    record = {_text(k): _text(v) for k, v in fields.items()}
    record["data"] = orjson.loads(record.get("data", "{}"))
    return SSEEvent.model_validate(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    # 1,000 distinct events, cycled: one event decoded over and over flatters every parser.
    events = [sample_event(i) for i in range(DISTINCT)]
    payloads = itertools.cycle([encode_payload(e) for e in events])
    entries = [encode_fields(e) for e in events]
    fields = itertools.cycle([dict(zip(f[::2], f[1::2], strict=True)) for f in entries])
    each_event = itertools.cycle(events)
    assert all(decode_fields_stdlib(f) == decode_fields(f) for f in itertools.islice(fields, 100))

    def us(run: Callable[[], object]) -> float:
        best = min(timeit.repeat(run, number=args.number, repeat=args.repeats))
        return best / args.number * 1e6

    groups: list[tuple[str, list[tuple[str, Callable[[], object]]]]] = [
        (
            "live delivery: pub/sub payload -> event",
            [
                ("decode_payload (model_validate_json)", lambda: decode_payload(next(payloads))),
                ("json.loads only (bare loop, no event)", lambda: json.loads(next(payloads))),
                ("orjson.loads only (no event)", lambda: orjson.loads(next(payloads))),
                (
                    "orjson.loads + model_validate",
                    lambda: SSEEvent.model_validate(orjson.loads(next(payloads))),
                ),
            ],
        ),
        (
            "replay: stream entry -> event",
            [
                ("decode_fields (Rust JSON for data)", lambda: decode_fields(next(fields))),
                ("stdlib json.loads for data (before)", lambda: decode_fields_stdlib(next(fields))),
                ("orjson.loads for data", lambda: decode_fields_orjson(next(fields))),
            ],
        ),
        (
            "publish: event -> payload and stream fields",
            [
                ("both forms, unchecked (before #9)", lambda: encode_unchecked(next(each_event))),
                ("encode_event (payload parsed back)", lambda: encode_event(next(each_event))),
                ("json.dumps(to_dict())", lambda: json.dumps(next(each_event).to_dict()).encode()),
                (
                    "orjson.dumps(model_dump())",
                    lambda: orjson.dumps(next(each_event).model_dump()),
                ),
            ],
        ),
    ]
    print(f"== core codec: microseconds per call (best of {args.repeats} x {args.number:,}) ==")
    version = orjson.__version__ if orjson is not None else "not installed (rows skipped)"
    size = len(next(payloads))
    print(f"sse_core at {checkout()} | {DISTINCT:,} distinct {size}-byte events | orjson {version}")
    for title, all_rows in groups:
        rows = [(n, r) for n, r in all_rows if orjson is not None or "orjson" not in n]
        print(f"\n-- {title} --")
        base = us(rows[0][1])
        print(f"{rows[0][0]:<42} {base:>8.2f} us   1.00x")
        for name, run in rows[1:]:
            value = us(run)
            print(f"{name:<42} {value:>8.2f} us {value / base:>6.2f}x")


if __name__ == "__main__":
    main()
