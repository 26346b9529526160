"""Who may open a broker session for an account, when several instances share the store.

An MT5 account's terminal session must be open in one instance at a time (a second login of the
same account elsewhere disconnects the first, and two sessions sending orders is how orders get
doubled). ``engine.loop.cluster.Cluster`` holds a lease per MT5 account in the database; the
``BrokerRegistry`` asks its ``Ownership`` before it opens a session and refuses with
``NotOwnerError`` when another live instance holds the account. Paper accounts live in the
database itself and need no lease.

``AccountScope`` says which accounts' work an instance does now: the paper accounts (the trading
loop's leader) and the MT5 accounts it owns. The order, change and account passes take it as a
filter, so an approval that landed on one instance is executed by the account's owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import false, or_, select

from engine.store.models import ExecutionAccount

LEASED_KINDS = frozenset({"mt5"})


def needs_lease(account: ExecutionAccount) -> bool:
    return account.kind in LEASED_KINDS


class NotOwnerError(Exception):
    """Another instance runs this account's terminal session: its work is done there."""

    def __init__(self, account_id: int, owner: str | None = None) -> None:
        where = f"instance {owner}" if owner else "another instance"
        super().__init__(f"account {account_id} is run by {where}")
        self.account_id = account_id
        self.owner = owner


class Ownership(Protocol):
    def holds(self, account_id: int) -> bool:
        """This instance holds the account's lease now (no database call)."""
        ...

    async def take(self, account: ExecutionAccount) -> bool:
        """Hold the account now: True if held already or taken (its lease was free)."""
        ...


class Everything:
    """One process alone (tools that never share the store): every account is its own."""

    def holds(self, account_id: int) -> bool:
        return True

    async def take(self, account: ExecutionAccount) -> bool:
        return True


@dataclass(frozen=True)
class AccountScope:
    """The accounts whose work this instance does now: paper ones (when ``paper``) and ``mt5`` ids."""

    paper: bool = True
    mt5: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def of(cls, paper: bool, mt5: Iterable[int]) -> AccountScope:
        return cls(paper, frozenset(mt5))

    @property
    def empty(self) -> bool:
        return not self.paper and not self.mt5

    def covers(self, account: ExecutionAccount) -> bool:
        return account.id in self.mt5 if needs_lease(account) else self.paper

    def accounts(self) -> Any:
        """A SQL condition on ``ExecutionAccount`` rows."""
        parts: list[Any] = []
        if self.paper:
            parts.append(ExecutionAccount.kind.not_in(LEASED_KINDS))
        if self.mt5:
            parts.append(ExecutionAccount.id.in_(sorted(self.mt5)))
        return or_(*parts) if parts else false()

    def account_ids(self, column: Any) -> Any:
        """A SQL condition on a column holding an account id (``Order.account_id``, ...)."""
        return column.in_(select(ExecutionAccount.id).where(self.accounts()))
