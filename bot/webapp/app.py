"""The Mini App on the product's own HTTP server: the page under ``/app/`` and its API under
``/app/api/`` (the whole surface is in docs/miniapp.md).

Authentication: ``POST /app/api/session`` takes Telegram's ``initData``, checks it exactly as
Telegram specifies (``bot.webapp.initdata``) and answers a short-lived bearer token bound to that
Telegram user (``bot.webapp.sessions``). Every other call sends ``Authorization: Bearer <token>``
and is authorized per user: a subscriber reads and acts on their own signals, positions and
settings only (another's id is simply not found), the admin calls answer ``ADMIN_IDS`` only
(anyone else gets 403 and an ``admin.refused`` audit line, as in the chat). Refusals are RFC 7807
problem documents (``engine.api.problem``), their ``detail`` in the subscriber's language.

Acting goes through the very services the chat buttons use: decisions through
``ApprovalService`` (one conditional update decides who wins, so a decision is recorded once
across the chat and the app, and the DM is edited either way), Close / Close 50 % / Stop → entry
through ``UpdateService.subscriber_update`` (idempotent per ``Idempotency-Key``), pause, resume
and close-all through the command layer ``OpsService``. Live hints reach open pages as
Server-Sent Events (``bot.webapp.live``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aiogram.utils.i18n import gettext as _
from aiohttp import web
from loguru import logger
from sqlalchemy import select

from bot.context import BotContext
from bot.i18n import SUPPORTED, pick_locale
from bot.render import in_locale
from bot.routers.approvals import verdict_text
from bot.routers.referrals import invite_link
from bot.webapp import views
from bot.webapp.initdata import InitDataError, validate
from bot.webapp.live import LiveHub, next_hint
from bot.webapp.sessions import Session, SessionTokens, session_key
from bot.webapp.texts import ui_texts
from engine.accounts.subscribers import STATUS_ACTIVE, actor_for
from engine.analytics import Period, PeriodError, parse_period
from engine.api.problem import Problem
from engine.approvals.auto_execute import AutoTradeError
from engine.approvals.service import (
    SOURCE_MINIAPP,
    VIA_CHANNEL,
    VIA_DM,
    DecisionOutcome,
    Verdict,
)
from engine.ingest.schema import FieldError
from engine.management.controls import Target
from engine.management.controls import Verdict as ControlVerdict
from engine.ops.views import OpsError, Scope, as_json
from engine.risk.control import is_paused
from engine.risk.limits import LimitError, check_number
from engine.services import EngineServices
from engine.settings import MiniAppScript
from engine.states import PositionStatus
from engine.store.audit import audit
from engine.store.db import utcnow
from engine.store.events import EventRelay
from engine.store.models import Decision, Signal, User

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGE = HERE / "page.html"
# Telegram documents loading its script from here (core.telegram.org/bots/webapps#initializing-mini-apps)
TELEGRAM_SCRIPT = "https://telegram.org/js/telegram-web-app.js"
LOCAL_SCRIPT = "/app/static/telegram-web-app.js"
MAX_BODY = 16 * 1024
KEEPALIVE_SECONDS = 15.0
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tradebot-miniapp"'}
_KEY = re.compile(r"^[\x21-\x7e]{8,64}$")
_INSTRUMENT = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


# Close / Close 50 % / Stop → entry: the app's action names and the engine's subscriber controls
# (engine.management.controls, the same the chat's buttons use)
def _limit_problem(field: str, value: Decimal | None) -> str | None:
    """Why ``value`` is not a valid ``field`` of the risk limits (None: it is)."""
    if value is None:
        return "must be a number"
    try:
        check_number(field, value)
    except LimitError as exc:
        return str(exc)
    return None


_AUTO_FIELD = {"bad_risk": "auto_risk_percent", "bad_volume": "auto_max_volume"}  # which field was refused
ACTIONS: dict[str, str] = {"close": "close", "close_half": "close_half", "breakeven": "stop_to_entry"}
_ALREADY = {
    "approved": Verdict.ALREADY_APPROVED,
    "rejected": Verdict.ALREADY_REJECTED,
    "expired": Verdict.EXPIRED,
}
_VERDICT_STATUS = {
    Verdict.NOT_FOUND: 404,
    Verdict.NOT_YOURS: 404,
    Verdict.NEEDS_CONSENT: 403,
    Verdict.UNKNOWN_USER: 403,
}
SETTINGS_FIELDS = ("language", "notifications", "auto_enabled", "auto_risk_percent", "auto_max_volume")


@dataclass(frozen=True)
class Caller:
    session: Session
    user: User | None
    is_admin: bool
    locale: str

    @property
    def telegram_id(self) -> int:
        return self.session.telegram_id


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class MiniApp:
    def __init__(self, ctx: BotContext) -> None:
        settings = ctx.settings
        settings.require("BOT_TOKEN")
        assert settings.bot_token is not None
        self.ctx = ctx
        self._bot_token = settings.bot_token.get_secret_value()
        secret = settings.secret_key.get_secret_value() if settings.secret_key else self._bot_token
        self.tokens = SessionTokens(session_key(secret), settings.miniapp_session_seconds)
        self.hub = LiveHub(ctx.engine.db)
        self.keepalive_seconds = KEEPALIVE_SECONDS
        local = settings.miniapp_script is MiniAppScript.LOCAL
        self.script = LOCAL_SCRIPT if local else TELEGRAM_SCRIPT
        script_origin = "" if local else " https://telegram.org"
        self._csp = (
            f"default-src 'self'; script-src 'self'{script_origin}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"
        )
        self._page = (
            PAGE.read_text(encoding="utf-8")
            .replace("{{TELEGRAM_SCRIPT}}", self.script)
            .replace("{{VERSION}}", _static_version())
        )

    @property
    def services(self) -> EngineServices:
        return self.ctx.engine

    # ------------------------------------------------------------------ wiring

    def mount(self, app: web.Application) -> None:
        """Add the page and its API to the product's app (before it starts)."""
        r = app.router
        r.add_get("/app", self.redirect)
        r.add_get("/app/", self.page)
        r.add_static("/app/static", STATIC)
        r.add_post("/app/api/session", self.session)
        r.add_get("/app/api/me", self.me)
        r.add_get("/app/api/signals", self.signals)
        r.add_post("/app/api/signals/{signal_id}/decision", self.decide)
        r.add_get("/app/api/positions", self.positions)
        r.add_post("/app/api/positions/{position_id}/{action}", self.position_action)
        r.add_get("/app/api/history", self.history)
        r.add_get("/app/api/stats", self.stats)
        r.add_get("/app/api/settings", self.get_settings)
        r.add_patch("/app/api/settings", self.patch_settings)
        r.add_get("/app/api/plan", self.plan)
        r.add_get("/app/api/events", self.events)
        r.add_get("/app/api/admin/status", self.admin_status)
        r.add_post("/app/api/admin/{action}", self.admin_action)
        app.on_shutdown.append(self._on_shutdown)

    def attach(self, relay: EventRelay) -> None:
        """Subscribe the live hints to domain events (after the bot's fan-out and notifier)."""
        relay.subscribe("webapp.live", self.hub.on_event)

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.hub.close()  # ends the event streams, so the server stops without waiting for them

    # ------------------------------------------------------------------ who is calling

    async def _caller(self, request: web.Request) -> Caller:
        scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "unauthorized",
                "send Authorization: Bearer <token> (from POST /app/api/session)",
                headers=CHALLENGE,
            )
        session = self.tokens.verify(token.strip())
        if session is None:
            raise Problem(
                401,
                "session_expired",
                "the session token is invalid or has expired; sign in again with initData",
                headers=CHALLENGE,
            )
        user = await self.ctx.subscribers.get(session.telegram_id)
        if user is not None and user.language in SUPPORTED:
            locale = user.language
        else:
            locale = pick_locale(session.language)
        return Caller(session, user, self.ctx.is_admin(session.telegram_id), locale)

    @contextmanager
    def _speaking(self, caller: Caller) -> Iterator[None]:
        with in_locale(self.ctx.i18n, caller.locale):
            yield

    def _subscriber(self, caller: Caller) -> User:
        user = caller.user
        if user is None or user.status != STATUS_ACTIVE or not self.ctx.subscribers.has_consented(user):
            raise Problem(
                403,
                "not_subscribed",
                _("Send /start to the bot and accept the risk disclaimer to see your signals and positions."),
            )
        return user

    async def _require_admin(self, request: web.Request, caller: Caller) -> None:
        if caller.is_admin:
            return
        async with self.services.db.session() as session:
            audit(session, actor_for(caller.telegram_id), "admin.refused", f"miniapp:{request.path}"[:128])
        raise Problem(403, "forbidden", _("Sorry, this command is for admins only."))

    async def _body(self, request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise Problem(
                413, "body_too_large", f"the body is over {MAX_BODY} bytes", headers={"Connection": "close"}
            )
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise Problem(
                413, "body_too_large", f"the body is over {MAX_BODY} bytes", headers={"Connection": "close"}
            )
        if not raw.strip() and empty_ok:
            return {}
        if request.content_type != "application/json":
            raise Problem(415, "unsupported_media_type", "send application/json")
        try:
            body = json.loads(raw, parse_float=Decimal)
        except ValueError:
            raise Problem(400, "bad_json", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Problem(
                422, "invalid_body", "the body must be a JSON object", errors=[FieldError("", "object")]
            )
        return body

    # ------------------------------------------------------------------ page

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/app/")

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=self._page,
            content_type="text/html",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": self._csp,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    # ------------------------------------------------------------------ session

    async def session(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        raw = body.get("init_data")
        if not isinstance(raw, str) or not raw:
            raise Problem(
                401,
                "invalid_init_data",
                'send {"init_data": "<Telegram.WebApp.initData>"}',
                headers=CHALLENGE,
            )
        try:
            data = validate(raw, self._bot_token, max_age_seconds=self.ctx.settings.miniapp_max_age_seconds)
        except InitDataError as exc:
            logger.info("mini app: initData refused from {}: {}", request.remote, exc.code)
            raise Problem(401, "invalid_init_data", f"{exc} ({exc.code})", headers=CHALLENGE) from None
        token, expires = self.tokens.issue(data.user.id, data.user.language_code)
        return web.json_response(
            {
                "token": token,
                "expires_at": expires.isoformat(),
                "user": {"id": data.user.id, "is_admin": self.ctx.is_admin(data.user.id)},
            }
        )

    async def me(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        user = caller.user
        with self._speaking(caller):
            texts = ui_texts()
        async with self.services.db.sessions() as session:
            paused = await is_paused(session)
        subscribed = (
            user is not None and user.status == STATUS_ACTIVE and self.ctx.subscribers.has_consented(user)
        )
        return web.json_response(
            {
                "user": {
                    "id": caller.telegram_id,
                    "first_name": user.first_name if user else None,
                    "username": user.username if user else None,
                    "is_admin": caller.is_admin,
                    "registered": user is not None,
                    "subscribed": subscribed,
                },
                "locale": caller.locale,
                "texts": texts,
                "bot_username": self.ctx.bot_username,
                "billing": self.services.billing_enabled,
                "simulated_market": self.services.paper_market.simulated,
                "paused": paused,
                "session_expires_at": caller.session.expires_at.isoformat(),
            }
        )

    # ------------------------------------------------------------------ signals

    async def signals(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
        return web.json_response({"signals": await views.pending_signals(self.services, user)})

    async def decide(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
            body = await self._body(request)
            approve = body.get("approve")
            if not isinstance(approve, bool) or set(body) != {"approve"}:
                raise Problem(
                    422,
                    "invalid_body",
                    'send {"approve": true} or {"approve": false}',
                    errors=[FieldError("approve", "must be true or false")],
                )
            outcome, via_channel = await self._decide(request.match_info["signal_id"], user, caller, approve)
            text, _alert = verdict_text(outcome, self.ctx, via_channel=via_channel)
        if not outcome.recorded:
            raise Problem(_VERDICT_STATUS.get(outcome.verdict, 409), outcome.verdict.value, text)
        return web.json_response(
            {
                "verdict": outcome.verdict.value,
                "decision_id": outcome.decision_id,
                "signal_id": outcome.signal_id,
                "text": text,
            }
        )

    async def _decide(
        self, signal_id: str, user: User, caller: Caller, approve: bool
    ) -> tuple[DecisionOutcome, bool]:
        """Through the approval service, as a tap would: the subscriber's pending DM decision, or
        in channel mode the channel post's signal. (outcome, decided on the channel post)"""
        approvals = self.ctx.approvals
        channel = self.ctx.settings.signal_channel_id
        async with self.services.db.sessions() as session:
            signal = await session.get(Signal, signal_id) if len(signal_id) <= 36 else None
            decision = (
                await session.scalar(
                    select(Decision).where(Decision.signal_id == signal_id, Decision.user_id == user.id)
                )
                if signal is not None
                else None
            )
        if signal is None:
            return DecisionOutcome(Verdict.NOT_FOUND, None, signal_id), False
        if decision is not None and decision.via == VIA_DM:
            outcome = await approvals.decide_own(decision.id, telegram_id=caller.telegram_id, approve=approve)
            return outcome, False
        if (
            channel is not None
            and signal.channel_message_id is not None
            and (decision is None or decision.via == VIA_CHANNEL)
        ):
            outcome = await approvals.decide_channel(
                signal.id,
                telegram_id=caller.telegram_id,
                chat_id=channel,
                message_id=signal.channel_message_id,
                approve=approve,
                source=SOURCE_MINIAPP,
            )
            return outcome, True
        if decision is not None:  # decided already (e.g. by auto-execution)
            verdict = _ALREADY.get(decision.status, Verdict.NOT_FOUND)
            return DecisionOutcome(verdict, decision.id, signal.id), False
        return DecisionOutcome(Verdict.NOT_FOUND, None, signal.id), False

    # ------------------------------------------------------------------ positions

    async def positions(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
        return web.json_response(await views.positions_json(self.services, user))

    async def position_action(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
            action = request.match_info["action"]
            raw_id = request.match_info["position_id"]
            if action not in ACTIONS or not raw_id.isdigit() or len(raw_id) > 18:
                raise Problem(404, "not_found", _("There is no such position on your accounts."))
            key = request.headers.get("Idempotency-Key", "")
            if not _KEY.match(key):
                raise Problem(
                    422,
                    "invalid_idempotency_key",
                    "send an Idempotency-Key header of 8..64 printable ASCII characters",
                    errors=[FieldError("Idempotency-Key", "8..64 printable ASCII characters")],
                )
            owned = await views.owned_position(self.services, user, int(raw_id))
            if owned is None:
                raise Problem(404, "not_found", _("There is no such position on your accounts."))
            if owned.signal_id is None:
                raise Problem(409, "not_managed", _("Opened outside a signal: manage it at the broker."))
            status = owned.position.status
            if status == PositionStatus.CLOSED.value:
                raise Problem(409, "position_closed", _("This position is already closed."))
            if status != PositionStatus.OPEN.value:
                raise Problem(409, "position_closing", _("This position is being closed."))
            outcome = await self.services.updates.subscriber_update(
                user.telegram_id,
                Target(position_id=owned.position.id),
                ACTIONS[action],
                f"app:{owned.position.id}:{action}:{key}",
            )
            if outcome.verdict is ControlVerdict.BUSY:
                raise Problem(
                    409,
                    "position_busy",
                    _("An earlier change to this position is still being carried out. Wait for its result."),
                )
            if outcome.verdict is ControlVerdict.CLOSED:
                raise Problem(409, "position_closed", _("This position is already closed."))
            if outcome.verdict is ControlVerdict.AT_ENTRY:
                raise Problem(409, "stop_at_entry", _("The stop is already at the entry."))
            if outcome.verdict not in (ControlVerdict.ACCEPTED, ControlVerdict.REPLAYED):
                raise Problem(409, outcome.verdict.value, outcome.reason or outcome.verdict.value)
            text = _("Sent. The position changes here when the broker confirms.")
        return web.json_response(
            {
                "update_id": outcome.update_ids[0] if outcome.update_ids else None,
                "action": action,
                "position_id": owned.position.id,
                "replayed": outcome.verdict is ControlVerdict.REPLAYED,
                "text": text,
            },
            status=202,
        )

    # ------------------------------------------------------------------ history and stats

    def _period(self, request: web.Request) -> Period:
        try:
            return parse_period(request.query.get("period", "30d"), utcnow())
        except PeriodError as exc:
            raise Problem(
                422, "invalid_period", str(exc), errors=[FieldError("period", exc.code.value)]
            ) from None

    async def history(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
        period = self._period(request)
        instrument = request.query.get("instrument") or None
        outcome = request.query.get("outcome", "all")
        errors = []
        if instrument is not None and not _INSTRUMENT.match(instrument):
            errors.append(FieldError("instrument", "1..32 characters of A-Z 0-9 . _ -"))
        if outcome not in views.OUTCOMES:
            errors.append(FieldError("outcome", "one of all, win, loss"))
        if errors:
            raise Problem(422, "invalid_query", "the filters are not valid", errors=errors)
        data = await views.history_json(
            self.services, user, period, instrument.upper() if instrument else None, outcome
        )
        return web.json_response(data)

    async def stats(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
        return web.json_response(await views.stats_json(self.services, user, self._period(request)))

    # ------------------------------------------------------------------ settings and plan

    async def get_settings(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
        return web.json_response(await views.settings_json(self.services, user))

    async def patch_settings(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
            body = await self._body(request)
        errors = [FieldError(k, "unknown field") for k in body if k not in SETTINGS_FIELDS]
        language = body.get("language")
        if "language" in body and language not in SUPPORTED:
            errors.append(FieldError("language", f"one of {', '.join(SUPPORTED)}"))
        for name in ("notifications", "auto_enabled"):
            if name in body and not isinstance(body[name], bool):
                errors.append(FieldError(name, "must be true or false"))
        risk = _decimal(body.get("auto_risk_percent")) if "auto_risk_percent" in body else None
        if "auto_risk_percent" in body:  # the ranges are the subscriber's risk limits'
            problem = _limit_problem("risk_percent", risk)
            if problem is not None:
                errors.append(FieldError("auto_risk_percent", problem))
        volume = _decimal(body.get("auto_max_volume")) if body.get("auto_max_volume") is not None else None
        if body.get("auto_max_volume") is not None:
            problem = _limit_problem("max_lots", volume)
            if problem is not None:
                errors.append(FieldError("auto_max_volume", problem + " (or null)"))
        if errors:
            raise Problem(422, "invalid_settings", "the settings are not valid", errors=errors)
        auto_fields = {"auto_enabled", "auto_risk_percent", "auto_max_volume"} & set(body)
        if auto_fields:  # first: it is the one change that can still be refused (the plan)
            try:
                await self.services.auto_execute.configure(
                    user.telegram_id,
                    enabled=body.get("auto_enabled"),
                    risk_percent=risk,
                    max_volume=volume,
                    clear_max_volume="auto_max_volume" in body and volume is None,
                )
            except AutoTradeError as exc:
                with self._speaking(caller):
                    detail = (
                        _("Your plan does not include automatic execution.")
                        if exc.code == "plan_required"
                        else str(exc)
                    )
                raise Problem(
                    403 if exc.code == "plan_required" else 422,
                    exc.code,
                    detail,
                    errors=[FieldError(_AUTO_FIELD.get(exc.code, "auto_enabled"), exc.code)],
                ) from None
        if "notifications" in body:
            await self.ctx.subscribers.set_notifications(user.telegram_id, bool(body["notifications"]))
        if "language" in body:
            await self.ctx.subscribers.set_language(user.telegram_id, str(language))
        fresh = await self.ctx.subscribers.get(user.telegram_id)
        assert fresh is not None
        return web.json_response(await views.settings_json(self.services, fresh))

    async def plan(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            user = self._subscriber(caller)
        return web.json_response(await views.plan_json(self.services, user, invite_link(self.ctx, user)))

    # ------------------------------------------------------------------ live

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: a hint per change that concerns this user (``bot.webapp.live``);
        the stream ends when the session does (the page signs in again and reconnects)."""
        caller = await self._caller(request)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        client = self.hub.connect(
            caller.telegram_id, caller.user.id if caller.user else None, caller.is_admin
        )
        try:
            await response.write(b"retry: 3000\n: connected\n\n")
            while True:
                left = (caller.session.expires_at - utcnow()).total_seconds()
                if left <= 0:
                    await response.write(b"event: expired\ndata: {}\n\n")
                    break
                hint = await next_hint(client, min(self.keepalive_seconds, left))
                if hint is None:
                    break
                if hint is False:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(f"event: update\ndata: {json.dumps(hint)}\n\n".encode())
        except (ConnectionResetError, RuntimeError):
            pass  # the page went away
        finally:
            self.hub.disconnect(client)
        return response

    # ------------------------------------------------------------------ admin

    async def admin_status(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        with self._speaking(caller):
            await self._require_admin(request, caller)
        status = await self.services.ops.status(limit=200, live_seconds=3.0)
        data = as_json(status)
        data["now"] = utcnow().isoformat()
        data["heartbeat_seconds"] = str(self.ctx.settings.heartbeat_seconds)
        return web.json_response(data)

    async def admin_action(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        action = request.match_info["action"]
        with self._speaking(caller):
            await self._require_admin(request, caller)
            if action not in ("pause", "resume", "closeall"):
                raise Problem(404, "not_found", "no such admin action")
            body = await self._body(request, empty_ok=True)
            errors = [FieldError(k, "unknown field") for k in body if k not in ("account", "confirm")]
            account = body.get("account")
            if account is not None and (
                isinstance(account, bool) or not isinstance(account, int) or account <= 0
            ):
                errors.append(FieldError("account", "must be a positive integer"))
            if action == "closeall" and body.get("confirm") is not True:
                errors.append(FieldError("confirm", "close-all needs confirm: true"))
            if errors:
                raise Problem(422, "invalid_body", "the request is not valid", errors=errors)
            scope = Scope.of(account=account)
            actor = actor_for(caller.telegram_id)
            ops = self.services.ops
            try:
                if action == "pause":
                    result: Any = await ops.pause(scope, actor)
                elif action == "resume":
                    result = await ops.resume(scope, actor)
                else:
                    result = await ops.close_all(scope, actor)
            except OpsError as exc:
                raise Problem(404 if exc.code == "not_found" else 422, exc.code, exc.message) from None
            if action == "closeall":
                text = _("Closed {closed} of {requested} positions ({failed} failed).").format(
                    closed=result.closed, requested=result.requested, failed=result.failed
                )
            else:
                text = _("Done.") if result.changed else _("Nothing changed.")
        data = as_json(result)
        data["text"] = text
        return web.json_response(data)
