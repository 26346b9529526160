"""The synchronous core of the MT5 broker: one account on one MetaTrader5-compatible module.

Every method must run on the one thread that owns the session (the worker thread of
``engine.brokers.mt5``, in this process or in a child process): the real package keeps
module-level state and is not thread-safe.

Unknown outcomes: an ``order_send`` that returns ``None`` (other than a local argument
error), raises, or answers TIMEOUT/CONNECTION/ERROR... is reported UNKNOWN; the caller then
calls ``find_by_client_id`` (magic + comment across open positions, pending orders and a
bounded window of history) before it sends anything again.

Re-pricing: ``submit`` never retries internally; a REQUOTE/PRICE_CHANGED/PRICE_OFF/REJECT
comes back as RETRY with the fresh market price, and the caller re-prices. ``close_position``
prices its own close, so it re-reads the tick and resends up to ``close_requote_retries``
times on those codes (safe: a requote means nothing was executed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.brokers import mt5_convert as cv
from engine.brokers.base import (
    BrokerError,
    BrokerOrder,
    BrokerPosition,
    Deal,
    FillingMode,
    FoundOrder,
    OrderRequest,
    OrderType,
    Side,
    SubmitResult,
    SubmitStatus,
)
from engine.brokers.mt5_link import MT5Config, MT5Link, load_module
from engine.brokers.stops import ChangeRefusal, Refused, close_volume_refusal, frozen, stop_change_refusal

__all__ = ["MT5Config", "MT5Session", "load_module"]


class MT5Session(MT5Link):
    """One account: positions, orders, history, and trading."""

    def positions(self) -> list[BrokerPosition]:
        out = []
        for p in self._query("positions_get", empty_ok=True):
            digits, vdigits = self._digits(p.symbol)
            out.append(cv.position_from_record(p, self.edge, digits, vdigits))
        return out

    def pending_orders(self) -> list[BrokerOrder]:
        out = []
        for o in self._query("orders_get", empty_ok=True):
            digits, vdigits = self._digits(o.symbol)
            order = cv.order_from_record(o, self.edge, digits, vdigits)
            if order is not None:
                out.append(order)
        return out

    def deals(self, since: datetime, until: datetime) -> list[Deal]:
        out = []
        for d in self._query(
            "history_deals_get", self._server_time(since), self._server_time(until), empty_ok=True
        ):
            if d.type not in (self.k.DEAL_TYPE_BUY, self.k.DEAL_TYPE_SELL):
                continue
            digits, vdigits = self._digits(d.symbol)
            deal = cv.deal_from_record(d, self.edge, digits, vdigits)
            if deal is not None and since <= deal.time <= until:
                out.append(deal)
        return out

    def position_deals(self, ticket: str) -> list[Deal]:
        out = []
        for d in self._query("history_deals_get", position=int(ticket), empty_ok=True):
            digits, vdigits = self._digits(d.symbol)
            deal = cv.deal_from_record(d, self.edge, digits, vdigits)
            if deal is not None:
                out.append(deal)
        return sorted(out, key=lambda deal: (deal.time, int(deal.ticket)))

    def _ours(self, cid: str) -> Callable[[Any], bool]:
        return lambda rec: int(rec.magic) == self.config.magic and str(rec.comment) == cid

    def find_by_client_id(self, client_order_id: str) -> FoundOrder | None:
        cid, k, mine = client_order_id, self.k, self._ours(client_order_id)
        now = self._server_time(datetime.now(UTC))
        start, end = now - timedelta(days=self.config.history_days), now + timedelta(days=2)
        for o in self._query("orders_get", empty_ok=True):
            if mine(o):
                digits, vdigits = self._digits(o.symbol)
                return FoundOrder(
                    cid, str(o.ticket), "pending", None, Decimal(0), cv.dec(o.price_open, digits)
                )
        history = [o for o in self._query("history_orders_get", start, end, empty_ok=True) if mine(o)]
        if history:
            o = history[-1]
            state = {
                k.ORDER_STATE_FILLED: "filled", k.ORDER_STATE_PARTIAL: "filled",
                k.ORDER_STATE_CANCELED: "cancelled", k.ORDER_STATE_EXPIRED: "cancelled",
                k.ORDER_STATE_REJECTED: "rejected",
            }.get(int(o.state), "pending")  # fmt: skip
            deals = [d for d in self._query("history_deals_get", ticket=int(o.ticket), empty_ok=True)]
            if deals and state == "cancelled":
                state = "filled"  # an IOC remainder cancelled after a partial fill
            return self._found_from_deals(cid, str(o.ticket), state, deals, o)
        for p in self._query("positions_get", empty_ok=True):
            if mine(p):
                digits, vdigits = self._digits(p.symbol)
                return FoundOrder(cid, str(p.identifier), "filled", str(p.ticket),
                                  cv.dec(p.volume, vdigits), cv.dec(p.price_open, digits))  # fmt: skip
        deals = [d for d in self._query("history_deals_get", start, end, empty_ok=True) if mine(d)]
        if deals:
            return self._found_from_deals(cid, str(deals[0].order), "filled", deals, None)
        return None

    def _found_from_deals(
        self, cid: str, ticket: str, state: str, deals: list[Any], order: Any
    ) -> FoundOrder:
        symbol = deals[0].symbol if deals else order.symbol
        digits, vdigits = self._digits(symbol)
        if not deals:
            position = str(order.position_id) if order.position_id else None
            return FoundOrder(cid, ticket, state, position, Decimal(0), cv.dec(order.price_open, digits))
        volume = sum((cv.dec(d.volume, vdigits) for d in deals), Decimal(0))
        notional = sum((cv.dec(d.volume, vdigits) * cv.dec(d.price, digits) for d in deals), Decimal(0))
        price = (notional / volume).quantize(Decimal(1).scaleb(-digits)) if volume else None
        return FoundOrder(cid, ticket, state, str(deals[0].position_id), volume, price)

    def _send(
        self, request: dict[str, Any], digits: int, vdigits: int, *, buy: bool
    ) -> tuple[SubmitResult, Any]:
        try:
            result = self.mt5.order_send(request)
        except Exception as exc:
            self._connected = False
            return SubmitResult(SubmitStatus.UNKNOWN, None, f"order_send raised {exc!r}"), None
        if result is None:
            code, message = self._note_failure()
            if code == cv.RES_E_INVALID_PARAMS:  # refused by the library itself: nothing was sent
                return SubmitResult(
                    SubmitStatus.REFUSED, None, f"request refused by the terminal: {message}"
                ), None
            return SubmitResult(
                SubmitStatus.UNKNOWN, None, f"order_send returned None: ({code}, {message})"
            ), None
        return cv.result_from_send(result, digits, vdigits, buy=buy), result

    def _position_of(self, result: Any) -> str | None:
        if not result.deal:
            return None
        try:
            deals = self._raw("history_deals_get", ticket=int(result.order)) or ()
        except BrokerError:
            deals = ()
        for d in deals:
            if int(d.ticket) == int(result.deal) and d.position_id:
                return str(d.position_id)
        return str(result.order)

    def submit(self, req: OrderRequest) -> SubmitResult:
        problem = cv.check_client_id(req.client_order_id)
        if problem is not None:
            return SubmitResult(SubmitStatus.REFUSED, None, problem)
        if req.volume <= 0:
            return SubmitResult(SubmitStatus.REFUSED, None, f"volume {req.volume} is not positive")
        try:
            self._ensure()
            spec = self.symbol_spec(req.symbol)
        except BrokerError as exc:
            return SubmitResult(SubmitStatus.RETRY, None, f"terminal unreachable, nothing sent: {exc}")
        if spec is None:
            return SubmitResult(SubmitStatus.REFUSED, None, f"unknown symbol {req.symbol}")
        request = cv.build_order_request(req, self.k, self.config.magic, self.config.server_utc_offset)
        outcome, result = self._send(
            request, spec.digits, cv.step_digits(spec.volume_step), buy=req.side is Side.BUY
        )
        if (
            outcome.status is SubmitStatus.ACCEPTED
            and req.order_type is OrderType.MARKET
            and result is not None
        ):
            outcome = replace(outcome, position_ticket=self._position_of(result))
        if outcome.status is SubmitStatus.ACCEPTED and req.order_type is not OrderType.MARKET:
            outcome = replace(outcome, filled_volume=Decimal(0), price=req.price)
        return outcome

    def close_position(self, ticket: str, client_order_id: str) -> SubmitResult:
        return self.close_partial(ticket, None, client_order_id)

    def close_partial(self, ticket: str, volume: Decimal | None, client_order_id: str) -> SubmitResult:
        """Close ``volume`` lots of a position (None: all of it) by an opposite deal on it."""
        problem = cv.check_client_id(client_order_id)
        if problem is not None:
            return SubmitResult(SubmitStatus.REFUSED, None, problem)
        try:
            return self._close(ticket, client_order_id, volume)
        except BrokerError as exc:  # raised only by reads, never by a send: nothing executed
            return SubmitResult(SubmitStatus.RETRY, None, f"terminal unreachable, nothing sent: {exc}")

    def modify_position(self, ticket: str, sl: Decimal | None, tp: Decimal | None) -> SubmitResult:
        """TRADE_ACTION_SLTP with both levels; checked against the stops and freeze levels first."""
        try:
            found = self._query("positions_get", ticket=int(ticket), empty_ok=True)
            if not found:
                return _refused(Refused(ChangeRefusal.POSITION_GONE, f"position {ticket} not found"), 10036)
            pos = found[0]
            spec = self.symbol_spec(pos.symbol)
            if spec is None:
                return SubmitResult(SubmitStatus.REFUSED, None, f"unknown symbol {pos.symbol}")
            tick = self.tick(pos.symbol)
        except BrokerError as exc:
            return SubmitResult(SubmitStatus.RETRY, None, f"terminal unreachable, nothing sent: {exc}")
        position = cv.position_from_record(pos, self.edge, spec.digits, cv.step_digits(spec.volume_step))
        if (position.sl, position.tp) == (sl, tp):
            return SubmitResult(SubmitStatus.ACCEPTED, 10025, "no changes (the levels are already set)")
        refused = stop_change_refusal(
            spec, position.side, tick.bid, tick.ask, sl=sl, tp=tp,
            current_sl=position.sl, current_tp=position.tp,
        )  # fmt: skip
        if refused is not None:
            return _refused(refused)
        request = {
            "action": self.k.TRADE_ACTION_SLTP, "symbol": pos.symbol, "position": int(pos.ticket),
            "sl": float(sl or 0), "tp": float(tp or 0), "magic": self.config.magic,
        }  # fmt: skip
        outcome, _ = self._send(request, spec.digits, cv.step_digits(spec.volume_step), buy=True)
        if outcome.retcode == 10025:  # NO_CHANGES: the levels are what was asked
            return replace(outcome, status=SubmitStatus.ACCEPTED)
        code = {
            10016: ChangeRefusal.STOPS_LEVEL,
            10029: ChangeRefusal.FREEZE_LEVEL,
            10036: ChangeRefusal.POSITION_GONE,
        }
        if outcome.retcode in code:
            outcome = replace(outcome, code=code[outcome.retcode].value)
        return replace(outcome, position_ticket=str(pos.ticket))

    def _close(self, ticket: str, client_order_id: str, volume: Decimal | None = None) -> SubmitResult:
        k = self.k
        found = self._query("positions_get", ticket=int(ticket), empty_ok=True)
        if not found:
            return _refused(
                Refused(ChangeRefusal.POSITION_GONE, f"position {ticket} not found (already closed?)"), 10036
            )
        pos = found[0]
        spec = self.symbol_spec(pos.symbol)
        if spec is None:
            return SubmitResult(SubmitStatus.REFUSED, None, f"unknown symbol {pos.symbol}")
        vdigits = cv.step_digits(spec.volume_step)
        held = cv.dec(pos.volume, vdigits)
        if volume is not None:
            refused = close_volume_refusal(spec, held, volume)
            if refused is not None:
                return _refused(refused)
        closing_buy = pos.type == k.POSITION_TYPE_SELL
        filling = next(f for f in (FillingMode.FOK, FillingMode.IOC, FillingMode.RETURN)
                       if f in spec.filling_modes or f is FillingMode.RETURN)  # fmt: skip
        outcome = SubmitResult(SubmitStatus.UNKNOWN, None, "not sent")
        for _ in range(1 + self.config.close_requote_retries):
            tick = self._query("symbol_info_tick", pos.symbol)
            price = cv.dec(tick.ask if closing_buy else tick.bid, spec.digits)
            levels = (
                cv.dec(pos.sl, spec.digits) if pos.sl else None,
                cv.dec(pos.tp, spec.digits) if pos.tp else None,
            )
            refused = frozen(spec, price, *levels)
            if refused is not None:
                return _refused(refused)
            request = {
                "action": k.TRADE_ACTION_DEAL, "symbol": pos.symbol,
                "volume": float(pos.volume if volume is None else volume),
                "type": k.ORDER_TYPE_BUY if closing_buy else k.ORDER_TYPE_SELL, "position": int(pos.ticket),
                "price": float(tick.ask if closing_buy else tick.bid), "deviation": self.config.close_deviation,
                "magic": self.config.magic, "comment": client_order_id, "type_time": k.ORDER_TIME_GTC,
                "type_filling": cv.filling_code(k, filling),
            }  # fmt: skip
            outcome, _ = self._send(request, spec.digits, cv.step_digits(spec.volume_step), buy=closing_buy)
            if outcome.status is not SubmitStatus.RETRY:
                break
        if outcome.status is SubmitStatus.ACCEPTED:
            outcome = replace(outcome, position_ticket=str(pos.ticket))
        return outcome

    def cancel_order(self, ticket: str) -> SubmitResult:
        try:
            found = self._query("orders_get", ticket=int(ticket), empty_ok=True)
            digits, vdigits = self._digits(found[0].symbol) if found else (8, 8)
        except BrokerError as exc:
            return SubmitResult(SubmitStatus.RETRY, None, f"terminal unreachable, nothing sent: {exc}")
        if not found:
            return SubmitResult(SubmitStatus.REFUSED, None, f"pending order {ticket} not found")
        request = {"action": self.k.TRADE_ACTION_REMOVE, "order": int(ticket), "magic": self.config.magic}
        outcome, _ = self._send(request, digits, vdigits, buy=True)
        if outcome.status is SubmitStatus.ACCEPTED:
            outcome = replace(outcome, ticket=ticket, filled_volume=None, price=None)
        return outcome


def _refused(refused: Refused, retcode: int | None = None) -> SubmitResult:
    return SubmitResult(SubmitStatus.REFUSED, retcode, refused.message, code=refused.code.value)
