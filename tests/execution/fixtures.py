"""Builders for execution tests: a fixed market, a subscriber with a paper account, approved decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.brokers.base import FillingMode, SymbolSpec, Tick
from engine.states import DecisionStatus
from engine.store.models import Decision, ExecutionAccount, Producer, Signal, User

EURUSD = SymbolSpec(
    name="EURUSD",
    digits=5,
    point=Decimal("0.00001"),
    tick_size=Decimal("0.00001"),
    tick_value=Decimal("1"),
    contract_size=Decimal("100000"),
    volume_min=Decimal("0.01"),
    volume_max=Decimal("100"),
    volume_step=Decimal("0.01"),
    stops_level=10,
    filling_modes=frozenset({FillingMode.FOK, FillingMode.IOC}),
)


@dataclass
class FixedPrices:
    """A market that moves only when the test says so."""

    quotes: dict[str, tuple[Decimal, Decimal]] = field(
        default_factory=lambda: {"EURUSD": (Decimal("1.10000"), Decimal("1.10010"))}
    )
    specs: dict[str, SymbolSpec] = field(default_factory=lambda: {"EURUSD": EURUSD})

    def set(self, symbol: str, bid: str, ask: str) -> None:
        self.quotes[symbol] = (Decimal(bid), Decimal(ask))

    def spec(self, symbol: str) -> SymbolSpec | None:
        return self.specs.get(symbol.upper())

    def tick(self, symbol: str) -> Tick | None:
        q = self.quotes.get(symbol.upper())
        return None if q is None else Tick(symbol.upper(), q[0], q[1], datetime.now(UTC))


async def make_world(db, *, balance="10000", users=1):
    """A producer, N subscribers each with a paper account. Returns (producer_id, [(user, account)])."""
    async with db.session() as s:
        producer = Producer(name="p1", secret_enc="x", token_digest="d" * 64)
        s.add(producer)
        pairs = []
        for n in range(users):
            user = User(telegram_id=1000 + n, referral_code=f"r{n}", consent_version="2026-11")
            s.add(user)
            await s.flush()
            acct = ExecutionAccount(
                owner_id=user.id, kind="paper", balance=Decimal(balance), reference_equity=Decimal(balance)
            )
            s.add(acct)
            await s.flush()
            pairs.append((user, acct))
    return producer.id, pairs


async def make_approval(
    db,
    producer_id,
    user,
    account,
    *,
    side="buy",
    sl="1.09800",
    tp="1.10400",
    entry=None,
    order_type="market",
    risk="1",
    ttl=900,
    key=None,
):
    async with db.session() as s:
        now = datetime.now(UTC)
        sig = Signal(
            producer_id=producer_id,
            idempotency_key=key or f"k-{now.timestamp()}-{user.id}-{side}-{sl}",
            body_hash="h",
            instrument="EURUSD",
            side=side,
            order_type=order_type,
            entry=Decimal(entry) if entry else None,
            sl=Decimal(sl),
            tp=Decimal(tp),
            risk_percent=Decimal(risk),
            ttl_seconds=ttl,
            received_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        s.add(sig)
        await s.flush()
        dec = Decision(
            signal_id=sig.id,
            user_id=user.id,
            account_id=account.id,
            status=DecisionStatus.APPROVED.value,
            decided_at=now,
            consent_version="2026-11",
        )
        s.add(dec)
        await s.flush()
    return dec.id
