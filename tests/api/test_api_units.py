"""Pure units: the signing scheme, the token bucket, exact decimal parsing."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ingest.ratelimit import RateLimiter
from engine.ingest.schema import BodyNotJSON, SignalInvalid, load_json, parse_signal
from engine.ingest.signing import SignatureError, parse_header, sign, signature_header, verify


def test_signature_is_hmac_sha256_of_t_dot_body():
    expected = hmac.new(b"whsec", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign("whsec", b'{"a":1}', 1700000000) == expected
    assert signature_header("whsec", b'{"a":1}', 1700000000) == f"t=1700000000,v1={expected}"


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=300), t=st.integers(0, 2**33))
def test_sign_verify_round_trip_and_tamper(secret, body, t):
    header = signature_header(secret, body, t)
    assert verify(secret, body, header, now=t).timestamp == t
    with pytest.raises(SignatureError):
        verify(secret, body + b"x", header, now=t)
    with pytest.raises(SignatureError):
        verify(secret + "x", body, header, now=t)


def test_window_and_rotation():
    body = b"{}"
    header = signature_header("s", body, 1000)
    verify("s", body, header, now=1300)
    verify("s", body, header, now=700)
    for now in (1301, 699):
        with pytest.raises(SignatureError) as err:
            verify("s", body, header, now=now)
        assert err.value.reason == "stale_timestamp"
    rotated = f"t=1000,v1={sign('old', body, 1000)},v1={sign('s', body, 1000)},v0=ignored"
    assert verify("s", body, rotated, now=1000).signature == sign("s", body, 1000)


@pytest.mark.parametrize(
    "header,reason",
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("t=1", "malformed_signature"),
        ("v1=" + "a" * 64, "malformed_signature"),
        ("t=abc,v1=" + "a" * 64, "malformed_signature"),
        ("t=1,v1=xyz", "malformed_signature"),
        ("t=1,t=2,v1=" + "a" * 64, "malformed_signature"),
        ("garbage", "malformed_signature"),
        ("t=1,v1=" + "a" * 2000, "malformed_signature"),
        ("t=١٢,v1=" + "a" * 64, "malformed_signature"),
    ],
)
def test_malformed_headers(header, reason):
    with pytest.raises(SignatureError) as err:
        parse_header(header)
    assert err.value.reason == reason


def test_token_bucket():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert all(limiter.take("p", Decimal(2), 3).allowed for _ in range(3))
    denied = limiter.take("p", Decimal(2), 3)
    assert not denied.allowed and denied.retry_after == pytest.approx(0.5)
    assert denied.retry_after_header == "1"
    assert limiter.take("q", Decimal(2), 3).allowed  # buckets are per key
    now[0] += 0.5
    assert limiter.take("p", Decimal(2), 3).allowed
    assert not limiter.take("p", Decimal(2), 3).allowed
    now[0] += 100
    assert sum(limiter.take("p", Decimal(2), 3).allowed for _ in range(10)) == 3  # refill caps at burst


def test_json_numbers_are_decimals():
    doc = load_json(b'{"a": 0.1, "b": 1e-7, "c": 3, "d": 1.10}')
    assert doc == {"a": Decimal("0.1"), "b": Decimal("1e-7"), "c": 3, "d": Decimal("1.10")}
    assert isinstance(doc["a"], Decimal)
    for bad in (b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b"\xff", b"1" * 5000):
        with pytest.raises(BodyNotJSON):
            load_json(bad)


@given(st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("1000000"), places=12))
def test_prices_survive_exactly(price):
    body = f'{{"instrument":"EURUSD","side":"buy","sl":{price},"tp":"{price * 2}"}}'.encode()
    signal = parse_signal(body, frozenset({"EURUSD"}))
    assert signal.body.sl == price and signal.body.tp == price * 2


def test_canonical_hash_ignores_formatting_not_meaning():
    a = parse_signal(b'{"instrument":"eurusd","side":"buy","sl":1.10,"tp":"1.2"}', frozenset({"EURUSD"}))
    b = parse_signal(
        b'{ "tp": 1.20, "side": "buy", "sl": "1.1", "instrument": "EURUSD" }', frozenset({"EURUSD"})
    )
    c = parse_signal(b'{"instrument":"eurusd","side":"buy","sl":1.10,"tp":"1.3"}', frozenset({"EURUSD"}))
    assert a.body_hash == b.body_hash != c.body_hash


def test_schema_errors_do_not_echo_input_values():
    with pytest.raises(SignalInvalid) as err:
        parse_signal(
            b'{"instrument":"EURUSD","side":"secret-value-123","sl":1,"tp":2}', frozenset({"EURUSD"})
        )
    assert "secret-value-123" not in str(err.value)
