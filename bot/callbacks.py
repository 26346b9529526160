"""Callback data of every inline button (aiogram ``CallbackData``; packed values stay <= 64 bytes)."""

from __future__ import annotations

import hashlib

from aiogram.filters.callback_data import CallbackData

from engine.ops.views import Scope, ScopeKind

APPROVE = "a"
REJECT = "r"


class DecisionCb(CallbackData, prefix="d"):
    """A DM signal's button: the decision it answers (36-char UUID) -> 41 bytes packed."""

    action: str  # APPROVE | REJECT
    decision_id: str


class ChannelCb(CallbackData, prefix="c"):
    """A channel post's button: the signal; the tapper is identified by the callback's ``from``."""

    action: str
    signal_id: str


class ConsentCb(CallbackData, prefix="consent"):
    """ "I agree" to one disclaimer version (a digest: any version string packs safely)."""

    digest: str


class SettingsCb(CallbackData, prefix="set"):
    field: str  # "lang" | "notify"
    value: str


class RiskCb(CallbackData, prefix="rk"):
    """/settings → Risk: show | back | sizing <mode> | ask <field> | instruments | inst <name> | cancel."""

    action: str
    value: str = ""


class AccountCb(CallbackData, prefix="acct"):
    action: str  # "link" | "unlink" | "refresh" | "cancel"


class AdminCb(CallbackData, prefix="adm"):
    action: str  # "closeall" | "cancel"
    issued: int  # unix seconds when the confirmation was offered
    scope: str = "e"  # scope_token(): e (everything) | a<account id> | s<subscriber's Telegram id>


# A subscriber's position buttons: what they act on, packed as ``d<decision id>`` (the buttons under
# a filled signal: every position that approval opened) or ``p<position id>`` (/positions).
CLOSE, CLOSE_HALF, STOP_TO_ENTRY, NO = "c", "h", "e", "n"
CONTROL_NAMES = {CLOSE: "close", CLOSE_HALF: "close_half", STOP_TO_ENTRY: "stop_to_entry"}


class PositionCb(CallbackData, prefix="pos"):
    """Close | Close 50 % | Stop → entry -> 43 bytes packed at most."""

    action: str  # CLOSE | CLOSE_HALF | STOP_TO_ENTRY
    ref: str  # d<decision id> | p<position id>


class PositionConfirmCb(CallbackData, prefix="posok"):
    """The answer to "Close ...?": yes (the action) or NO -> 56 bytes packed at most."""

    action: str  # CLOSE | CLOSE_HALF | NO
    ref: str
    issued: int  # unix seconds when the confirmation was offered


def scope_token(scope: Scope) -> str:
    """A command-layer scope in a button (":" separates callback fields, so no ``describe()`` here)."""
    return "e" if scope.id is None else scope.kind.value[0] + str(scope.id)


def scope_from_token(token: str) -> Scope:
    kinds = {"a": ScopeKind.ACCOUNT, "s": ScopeKind.SUBSCRIBER}
    if token[:1] in kinds and token[1:].isdigit():
        return Scope(kinds[token[0]], int(token[1:]))
    return Scope.everything()


def version_digest(version: str) -> str:
    return hashlib.sha256(version.encode()).hexdigest()[:12]
