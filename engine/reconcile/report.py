"""What one reconciliation pass of one account found and corrected (shared by both passes)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReconcileReport:
    account_id: int
    closed: int = 0  # store positions closed from the broker's deals
    external: int = 0  # positions opened outside the bot, now recorded
    attached: int = 0  # broker positions attached to the order that opened them
    resolved: int = 0  # orders settled through the execution service
    expired: int = 0  # resting orders past expiry cancelled, or found cancelled/expired
    orphans_cancelled: int = 0
    close_retried: int = 0
    updated: int = 0  # volume / SL / TP corrections
    unresolved: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def corrections(self) -> int:
        return (
            self.closed
            + self.external
            + self.attached
            + self.resolved
            + self.expired
            + self.orphans_cancelled
            + self.close_retried
            + self.updated
        )
