"""Stored rows to the named tuples the real package returns (floats for prices and money)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mt5sim import constants as c
from mt5sim import records as r
from mt5sim.specs import Spec


def _f(value: Decimal) -> float:
    return float(value)


def symbol_record(
    spec: Spec, selected: bool, bid: Decimal, ask: Decimal, now_ms: int, tick_value: Decimal
) -> r.SymbolInfo:
    values: dict[str, Any] = dict.fromkeys(r.SYMBOL_INFO_FIELDS, 0.0)
    for key in ("basis", "category", "bank", "exchange", "formula", "isin", "page"):
        values[key] = ""
    spread = int(((ask - bid) / spec.point).to_integral_value()) if selected else spec.spread
    values.update(
        custom=False,
        chart_mode=c.SYMBOL_CHART_MODE_BID,
        select=selected,
        visible=selected,
        session_deals=0,
        session_buy_orders=0,
        session_sell_orders=0,
        volume=0,
        volumehigh=0,
        volumelow=0,
        time=now_ms // 1000 if selected else 0,
        digits=spec.digits,
        spread=spread,
        spread_float=True,
        ticks_bookdepth=0,
        trade_calc_mode=spec.calc_mode,
        trade_mode=spec.trade_mode,
        start_time=0,
        expiration_time=0,
        trade_stops_level=spec.stops_level,
        trade_freeze_level=spec.freeze_level,
        trade_exemode=spec.exemode,
        swap_mode=0,
        swap_rollover3days=3,
        margin_hedged_use_leg=False,
        expiration_mode=spec.expiration_mode,
        filling_mode=spec.filling_mode,
        order_mode=spec.order_mode,
        order_gtc_mode=c.SYMBOL_ORDERS_GTC,
        option_mode=0,
        option_right=0,
        bid=_f(bid),
        bidhigh=_f(bid),
        bidlow=_f(bid),
        ask=_f(ask),
        askhigh=_f(ask),
        asklow=_f(ask),
        point=_f(spec.point),
        trade_tick_value=float(tick_value),
        trade_tick_value_profit=float(tick_value),
        trade_tick_value_loss=float(tick_value),
        trade_tick_size=_f(spec.tick_size),
        trade_contract_size=_f(spec.contract_size),
        volume_min=_f(spec.volume_min),
        volume_max=_f(spec.volume_max),
        volume_step=_f(spec.volume_step),
        volume_limit=_f(spec.volume_limit),
        margin_hedged=_f(spec.contract_size),
        currency_base=spec.currency_base,
        currency_profit=spec.currency_profit,
        currency_margin=spec.currency_margin,
        description=spec.description,
        name=spec.name,
        path=spec.path,
    )
    return r.SymbolInfo(**values)


def tick_record(bid: Decimal, ask: Decimal, now_ms: int) -> r.Tick:
    return r.Tick(now_ms // 1000, _f(bid), _f(ask), 0.0, 0, now_ms, c.TICK_FLAG_BID | c.TICK_FLAG_ASK, 0.0)


def position_record(pos: dict[str, Any], current: Decimal, profit: Decimal) -> r.TradePosition:
    return r.TradePosition(
        pos["ticket"], pos["time_msc"] // 1000, pos["time_msc"], pos["time_update_msc"] // 1000,
        pos["time_update_msc"], pos["type"], pos["magic"], pos["ticket"], pos["reason"], _f(pos["volume"]),
        _f(pos["price_open"]), _f(pos["sl"]), _f(pos["tp"]), _f(current), 0.0, _f(profit), pos["symbol"],
        pos["comment"], "",
    )  # fmt: skip


def order_record(order: dict[str, Any], current: Decimal) -> r.TradeOrder:
    return r.TradeOrder(
        order["ticket"], order["time_setup_msc"] // 1000, order["time_setup_msc"], order["time_done_msc"] // 1000,
        order["time_done_msc"], order["time_expiration"], order["type"], order["type_time"],
        order["type_filling"], order["state"], order["magic"], order["position_id"], 0, order["reason"],
        _f(order["volume_initial"]), _f(order["volume_current"]), _f(order["price_open"]), _f(order["sl"]),
        _f(order["tp"]), _f(current), 0.0, order["symbol"], order["comment"], "",
    )  # fmt: skip


def deal_record(deal: dict[str, Any]) -> r.TradeDeal:
    return r.TradeDeal(
        deal["ticket"], deal["order_ticket"], deal["time_msc"] // 1000, deal["time_msc"], deal["type"],
        deal["entry"], deal["magic"], deal["position_id"], deal["reason"], _f(deal["volume"]), _f(deal["price"]),
        _f(deal["commission"]), _f(deal["swap"]), _f(deal["profit"]), 0.0, deal["symbol"], deal["comment"], "",
    )  # fmt: skip
