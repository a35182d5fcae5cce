"""Event decoding: good events become columns, every bad kind gets its dead-letter reason; output encodings."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.data.wire import RejectReason
from stream.errors import CodecError, EventRejectedError
from stream.service.codec import (
    REASON_HEADER,
    SOURCE_HEADER,
    EventDecoder,
    dead_letter_headers,
    decode_score,
    encode_score,
    encode_scores,
    header_value,
)


def test_good_events_become_columns_in_order() -> None:
    decoder = EventDecoder(n_features=1)
    payloads = [
        b'{"key": "a", "time": 10.5, "value": 1.25}',
        b'{"key": 7, "time": "1970-01-01T00:00:20Z", "value": [2]}',
        b'{"key": "c", "time": "30", "values": -3}',
    ]
    batch = decoder.decode_batch(payloads)
    assert batch.keys == ["a", "7", "c"]
    assert batch.times.dtype == np.float64 and batch.times.tolist() == [10.5, 20.0, 30.0]
    assert batch.values.dtype == np.float32 and batch.values.shape == (3, 1)
    assert batch.values[:, 0].tolist() == [1.25, 2.0, -3.0]
    assert batch.index.tolist() == [0, 1, 2]
    assert batch.rejected == []


def test_iso_time_without_zone_is_utc_and_vectors_keep_feature_order() -> None:
    decoder = EventDecoder(n_features=3)
    batch = decoder.decode_batch([b'{"key": "k", "time": "2023-11-14T22:13:20", "value": [1, 2.5, -1e3]}'])
    assert batch.times[0] == 1700000000.0
    assert batch.values.tolist() == [[1.0, 2.5, -1000.0]]


def test_missing_key_falls_back_to_the_kafka_message_key() -> None:
    batch = EventDecoder(1).decode_batch([b'{"time": 1, "value": 2}'], message_keys=[b"from-kafka"])
    assert batch.keys == ["from-kafka"]


BAD = [
    pytest.param(b'{"key": "a", "time": 1, "value": ', "invalid_json", id="truncated"),
    pytest.param(b"\xff\xfe", "invalid_json", id="not-utf8"),
    pytest.param(None, "missing_field", id="null-message"),
    pytest.param(b'{"time": 1, "value": 2}', "missing_field", id="no-key"),
    pytest.param(b'{"key": "a", "value": 2}', "missing_field", id="no-time"),
    pytest.param(b'{"key": "a", "time": 1}', "missing_field", id="no-value"),
    pytest.param(b"[1, 2]", "bad_type", id="not-an-object"),
    pytest.param(b'{"key": "a", "time": 1, "value": "2"}', "bad_type", id="string-value"),
    pytest.param(b'{"key": "a", "time": 1, "value": true}', "bad_type", id="bool-value"),
    pytest.param(b'{"key": "a", "time": "yesterday", "value": 1}', "bad_type", id="bad-time-string"),
    pytest.param(b'{"key": ["a"], "time": 1, "value": 1}', "bad_type", id="list-key"),
    pytest.param(b'{"key": "", "time": 1, "value": 1}', "bad_type", id="empty-key"),
    pytest.param(b'{"key": "a", "time": 1, "value": NaN}', "non_finite_value", id="nan-literal"),
    pytest.param(b'{"key": "a", "time": 1, "value": Infinity}', "non_finite_value", id="inf-literal"),
    pytest.param(b'{"key": "a", "time": 1, "value": 1e999}', "non_finite_value", id="overflow-double"),
    pytest.param(b'{"key": "a", "time": 1, "value": 1e39}', "non_finite_value", id="overflow-float32"),
    pytest.param(b'{"key": "a", "time": 1e999, "value": 1}', "non_finite_value", id="infinite-time"),
    pytest.param(b'{"key": "a", "time": 1, "value": [1, 2]}', "wrong_vector_length", id="too-many"),
    pytest.param(b'{"key": "a", "time": 1, "value": []}', "wrong_vector_length", id="empty-list"),
    pytest.param(b'{"key": "' + b"k" * 300 + b'", "time": 1, "value": 1}', "key_too_long", id="long-key"),
    pytest.param(b'{"key": "a", "time": 1, "value": 1, "pad": "' + b"x" * 2000 + b'"}', "oversized", id="oversized"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD)
def test_each_bad_kind_is_rejected_with_its_reason_between_good_events(payload: bytes | None, reason: str) -> None:
    decoder = EventDecoder(n_features=1, max_message_bytes=1024, max_key_bytes=256)
    good = b'{"key": "g", "time": 1, "value": 1}'
    batch = decoder.decode_batch([good, payload, good])
    assert batch.index.tolist() == [0, 2]
    assert len(batch.rejected) == 1
    rejected = batch.rejected[0]
    assert (rejected.index, rejected.reason) == (1, reason)
    assert rejected.detail
    assert reason in {r.value for r in RejectReason}


def test_multibyte_key_is_measured_in_utf8_bytes() -> None:
    decoder = EventDecoder(1, max_key_bytes=10)
    ok = orjson.dumps({"key": "é" * 5, "time": 1, "value": 1})
    too_long = orjson.dumps({"key": "é" * 6, "time": 1, "value": 1})
    batch = decoder.decode_batch([ok, too_long])
    assert batch.keys == ["é" * 5]
    assert [r.reason for r in batch.rejected] == ["key_too_long"]


def test_all_rejected_gives_empty_but_well_shaped_columns() -> None:
    batch = EventDecoder(4).decode_batch([b"nope", None])
    assert len(batch) == 0 and batch.values.shape == (0, 4) and batch.times.shape == (0,)
    assert [r.reason for r in batch.rejected] == ["invalid_json", "missing_field"]


def test_impossible_limits_are_refused() -> None:
    with pytest.raises(CodecError, match="n_features"):
        EventDecoder(0)


def test_score_record_round_trips_and_turns_nan_into_null() -> None:
    payload = encode_score(
        key="s",
        time=5.0,
        score=0.75,
        anomaly=True,
        nll=float("nan"),
        mean=1.5,
        scale=0.5,
        model_version="v3",
        partition=2,
        offset=41,
    )
    record = decode_score(payload)
    assert record == {
        "key": "s",
        "time": 5.0,
        "score": 0.75,
        "rarity": 0.602,  # -log10(1 - 0.75) = 0.60206, cut down to 4 decimals, from the score
        "anomaly": True,
        "nll": None,
        "mean": 1.5,
        "scale": 0.5,
        "model_version": "v3",
        "partition": 2,
        "offset": 41,
    }


def test_the_rarity_keeps_the_order_of_alarms_whose_score_reads_one() -> None:
    common: dict[str, Any] = {
        "keys": ["a", "b", "c"],
        "times": np.array([1.0, 2.0, 3.0]),
        "scores": np.array([0.99, 1.0, 1.0], np.float32),
        "anomalies": np.array([True, True, True]),
        "nll": np.array([1.0, 2.0, 3.0], np.float32),
        "mean": np.zeros(3, np.float32),
        "scale": np.ones(3, np.float32),
        "model_version": None,
        "partition": 0,
        "offsets": [0, 1, 2],
    }
    records = encode_scores(**common, rarity=np.array([2.0, 9.123456, 31.5]))
    below = encode_scores(**common, rarity=np.array([1.99997, 0.0, 0.0]))[0]
    assert below is not None and decode_score(below)["rarity"] == 1.9999  # not rounded up to the threshold's 2
    rarity = [decode_score(r)["rarity"] for r in records if r is not None]
    assert rarity == [2.0, 9.1234, 31.5]  # cut down to 4 decimals; the scores alone tie at 1
    assert list(decode_score(records[0] or b"{}"))[:4] == ["key", "time", "score", "rarity"]


def test_vector_forecast_is_a_list() -> None:
    record = decode_score(
        encode_score(
            key="s",
            time=1.0,
            score=0.1,
            anomaly=False,
            nll=1.0,
            mean=[1.0, math.nan],
            scale=[2.0, math.inf],
            model_version=None,
            partition=0,
            offset=0,
        )
    )
    assert record["mean"] == [1.0, None] and record["scale"] == [2.0, None] and record["nll"] == 1.0


def test_a_multi_feature_record_carries_its_contributions_after_the_forecast() -> None:
    common: dict[str, Any] = {
        "keys": ["a", "b"],
        "times": np.array([1.0, 2.0]),
        "scores": np.array([0.5, 0.995], np.float32),
        "anomalies": np.array([False, True]),
        "nll": np.array([1.0, 2.0], np.float32),
        "model_version": None,
        "partition": 0,
        "offsets": [0, 1],
    }
    wide = {"mean": np.zeros((2, 3), np.float32), "scale": np.ones((2, 3), np.float32)}
    shares = np.array([[np.nan] * 3, [0.25, 0.5, 0.25]], np.float32)
    first, second = encode_scores(**common, **wide, contributions=shares)
    assert second is not None and decode_score(second)["contributions"] == [0.25, 0.5, 0.25]
    assert first is not None and decode_score(first)["contributions"] == [None, None, None]  # not frozen yet
    assert list(decode_score(second))[8] == "contributions"  # after "scale", before "model_version"
    narrow = {"mean": np.zeros(2, np.float32), "scale": np.ones(2, np.float32)}
    assert encode_scores(**common, **narrow, contributions=None) == encode_scores(**common, **narrow)


def _dict_per_event(columns: dict[str, Any], only: list[bool] | None) -> list[bytes | None]:
    """The obvious encoding the column-wise one must reproduce byte for byte: a dict and orjson.dumps per event."""
    n = len(columns["keys"])
    mean, scale = columns["mean"], columns["scale"]
    out: list[bytes | None] = []
    for i in range(n):
        if only is not None and not only[i]:
            out.append(None)
            continue
        r = float(columns["rarity"][i])
        out.append(
            orjson.dumps(
                {
                    "key": columns["keys"][i],
                    "time": float(columns["times"][i]),
                    "score": float(columns["scores"][i]),
                    "rarity": float(r if not abs(r) < 1e12 else np.floor(r * 1e4) / 1e4),
                    "anomaly": bool(columns["anomalies"][i]),
                    "nll": float(columns["nll"][i]),
                    "mean": float(mean[i, 0]) if mean.shape[1] == 1 else mean[i].tolist(),
                    "scale": float(scale[i, 0]) if scale.shape[1] == 1 else scale[i].tolist(),
                    "model_version": columns["model_version"],
                    "partition": columns["partition"],
                    "offset": columns["offsets"][i],
                }
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(0, 9), st.sampled_from([1, 2]), st.booleans())
def test_column_wise_score_encoding_equals_a_dict_per_event(
    data: st.DataObject, n: int, n_features: int, filtered: bool
) -> None:
    def column(dtype: type, shape: tuple[int, ...]) -> np.ndarray:  # NaN, infinities, -0.0 and subnormals included
        width: Literal[32, 64] = 32 if dtype is np.float32 else 64
        cells = data.draw(st.lists(st.floats(width=width), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return np.asarray(cells, dtype=dtype).reshape(shape)

    columns: dict[str, Any] = {
        "keys": data.draw(
            st.lists(
                st.one_of(st.text(max_size=8), st.sampled_from(["a,b", '"q"', "%s", "\u00fc"])), min_size=n, max_size=n
            )
        ),
        "times": column(np.float64, (n,)),
        "scores": column(np.float32, (n,)),
        "rarity": column(np.float64, (n,)),
        "anomalies": np.asarray(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
        "nll": column(np.float32, (n,)),
        "mean": column(np.float32, (n, n_features)),
        "scale": column(np.float32, (n, n_features)),
        "model_version": data.draw(st.one_of(st.none(), st.text(max_size=6))),
        "partition": data.draw(st.integers(0, 99)),
        "offsets": data.draw(st.lists(st.integers(0, 2**62), min_size=n, max_size=n)),
    }
    only = data.draw(st.lists(st.booleans(), min_size=n, max_size=n)) if filtered else None
    got = encode_scores(**columns, only=None if only is None else np.asarray(only, dtype=bool))
    assert got == _dict_per_event(columns, only)


def test_dead_letter_headers_carry_reason_and_source() -> None:
    headers = dead_letter_headers("bad_type", "value must be a number", "events", 3, 99)
    assert header_value(headers, REASON_HEADER) == "bad_type"
    assert header_value(headers, SOURCE_HEADER) == "events/3/99"
    assert header_value(headers, "absent") is None


_PAYLOADS = st.one_of(
    st.builds(
        lambda k, t, v: orjson.dumps({"key": k, "time": t, "value": v}),
        st.one_of(st.text(max_size=70), st.integers(-5, 5), st.booleans(), st.none()),
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(10**18), 10**18),
            st.booleans(),
            st.text(max_size=5),
            st.none(),
        ),
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(10**18), 10**18),
            st.booleans(),
            st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=3),
            st.none(),
            st.just({"nested": 1}),
        ),
    ),
    st.sampled_from(
        [
            b"not json",
            b"",
            b"[1,2]",
            b"{}",
            b'{"key": "k", "time": 1, "value": NaN}',
            b'{"key": "k", "time": 1, "value": 1e999}',
            b'{"key": "k", "time": 1e39, "values": 1}',
            b'{"time": 2, "value": 3}',
            b'{"key": "k", "time": "2024-01-01T00:00:00Z", "value": 1}',
            b'{"key": "k", "time": 1, "value": [true]}',
            b'{"key": "k", "time": 1, "value": ["1", 2]}',
            b'{"key": "k", "time": true, "value": 1}',
            b'{"key": "", "time": 1, "value": 1}',
        ]
    ),
    st.none(),
)


@pytest.mark.parametrize(
    ("n_features", "odd", "reason"),
    [
        (1, b'{"key": "k", "time": 1, "value": [true]}', "bad_type"),
        (1, b'{"key": "k", "time": 1, "value": [1, 2]}', "wrong_vector_length"),
        (2, b'{"key": "k", "time": 1, "value": ["1", 2]}', "bad_type"),
        (1, b'{"key": "k", "time": true, "value": 1}', "bad_type"),
        (1, b'{"key": "", "time": 1, "value": 1}', "bad_type"),
        (1, b'{"key": "k", "time": 1, "value": NaN}', "non_finite_value"),
        (1, b'{"key": "k", "time": 1e39, "values": 3e39}', "non_finite_value"),
        (1, b'{"key": 5, "time": 1, "value": 1}', None),  # a number key is turned into text, not rejected
    ],
    ids=["bool-in-list", "long-list", "text-in-list", "bool-time", "empty-key", "nan", "float32-overflow", "int-key"],
)
def test_one_odd_message_among_well_shaped_ones_is_judged_alone(
    n_features: int, odd: bytes, reason: str | None
) -> None:
    value = [0.5] * n_features if n_features > 1 or b"[" in odd else 0.5
    good = [orjson.dumps({"key": f"s{i}", "time": float(i), "value": value}) for i in range(5)]
    batch = EventDecoder(n_features).decode_batch([*good[:2], odd, *good[2:]])
    assert [(r.index, r.reason) for r in batch.rejected] == ([] if reason is None else [(2, reason)])
    assert batch.keys == ["s0", "s1", *(["5"] if reason is None else []), "s2", "s3", "s4"]


_FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_VALUE_FORMS = [
    st.one_of(_FLOAT32, st.integers(-9, 9)),
    st.lists(_FLOAT32, min_size=1, max_size=1),
    st.lists(_FLOAT32, min_size=2, max_size=2),
]


def _well_shaped(value: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """What producers send: a batch of these (one value form) takes the whole-batch path."""
    return st.builds(
        lambda k, t, v, field: orjson.dumps({"key": k, "time": t, field: v}),
        st.text(min_size=1, max_size=12),
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6)),
        value,
        st.sampled_from(["value", "values"]),
    )


_MOSTLY_WELL_SHAPED = (
    st.sampled_from(_VALUE_FORMS)
    .flatmap(lambda form: st.lists(_well_shaped(form), min_size=1, max_size=10))
    .flatmap(lambda good: st.one_of(st.just(good), _PAYLOADS.map(lambda odd: [*good[:-1], odd])))
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(_PAYLOADS, max_size=12), _MOSTLY_WELL_SHAPED), st.sampled_from([1, 2]))
def test_batch_decoding_equals_decoding_each_message_alone(payloads: list[bytes | None], n_features: int) -> None:
    """The column-wise fast paths and the per-message path agree on every message: same events, same reasons."""
    decoder = EventDecoder(n_features, max_message_bytes=120, max_key_bytes=40)
    batch = decoder.decode_batch(payloads, [b"mk"] * len(payloads))
    expected_events, expected_rejected = [], []
    for i, payload in enumerate(payloads):
        try:
            key, event_time, values = decoder._decode_one(payload, b"mk")  # the per-message reference path
        except EventRejectedError as reject:
            expected_rejected.append((i, reject.reason))
        else:
            expected_events.append((i, key, event_time, np.asarray(values, dtype=np.float32).tolist()))
    got_events = [
        (int(i), k, t, v.tolist())
        for i, k, t, v in zip(batch.index, batch.keys, batch.times, batch.values, strict=True)
    ]
    assert got_events == expected_events
    assert [(r.index, r.reason) for r in batch.rejected] == expected_rejected


def test_deeply_nested_message_is_dead_lettered_not_raised() -> None:
    """Issue 17 item 2: 1,100 nested lists made the stdlib fallback raise RecursionError."""
    from stream.service.codec import EventDecoder

    poison = b'{"key":"NaN","time":1,"value":' + b"[" * 1100 + b"]" * 1100 + b"}"
    good = b'{"key":"a","time":1,"value":1.0}'
    batch = EventDecoder(1).decode_batch([good, poison, good])
    assert batch.keys == ["a", "a"]
    assert [(r.index, r.reason) for r in batch.rejected] == [(1, "invalid_json")]
