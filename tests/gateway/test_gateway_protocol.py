"""The wire format: values survive the round trip exactly; nonces are remembered for the window only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.gateway.protocol import AuthError, CodecError, NonceCache, Verifier, decode, encode, sign_headers
from mt5sim import records

plain = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)


@given(st.lists(plain, max_size=5), st.dictionaries(st.text(max_size=8), plain, max_size=5))
def test_plain_values_and_request_dicts_round_trip(values: list[object], request: dict[str, object]) -> None:
    assert decode(encode(values), records=False) == tuple(values)
    assert decode(encode(request), records=False) == request


def test_records_come_back_as_named_tuples_with_the_same_fields() -> None:
    tick = records.Tick(1796186589, 1.10005, 1.10013, 0.0, 0, 1796186589703, 6, 0.0)
    back = decode(encode((tick, tick)), records=True)
    assert back == (tick, tick) and back[0].bid == 1.10005 and back[0]._fields == tick._fields
    assert back[0]._asdict() == tick._asdict() and type(back[0]).__name__ == "Tick"
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert decode(encode(at), records=False) == at
    with pytest.raises(CodecError):
        decode(encode(tick), records=False)  # a client may not send records
    with pytest.raises(CodecError):
        encode(object())


def test_nonces_are_forgotten_after_the_window() -> None:
    cache = NonceCache(window=10)
    assert cache.add("a" * 16, 100.0) and not cache.add("a" * 16, 105.0)
    assert cache.add("a" * 16, 111.0)  # older than the window: a timestamp that old is refused anyway
    verifier = Verifier("t" * 40, max_skew=30)
    headers = sign_headers("t" * 40, "POST", "/v1/call", b"{}", t=1000)
    assert verifier.verify("POST", "/v1/call", headers, b"{}", now=1010.0) == headers["X-Gateway-Nonce"]
    with pytest.raises(AuthError, match="does not match"):  # signed for another path
        verifier.verify(
            "POST",
            "/v1/constants",
            sign_headers("t" * 40, "POST", "/v1/call", b"{}", t=1000),
            b"{}",
            now=1010.0,
        )
