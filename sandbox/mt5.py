"""``--broker mt5``: simulated MT5 accounts, linked to the subscribers the operator's way.

Each person gets a demo account on the simulated trade server (``mt5sim``, its state in the
sandbox's data directory) with a fresh random password. Linking goes through
``AccountService.link_mt5``, the path behind ``tradebot account add --kind mt5`` and the bot's
``/account``: the engine logs in through the real MT5 broker (``MT5_MODULE=mt5sim``) and keeps
the password encrypted with ``SECRET_KEY``. The simulated server ignores market hours, as the
sandbox's ``MARKET_HOURS`` does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from engine.accounts.service import AccountService
from sandbox.cast import PEOPLE, Person

SERVER = "MT5Sim-Demo"
FIRST_LOGIN = 51_000_001


@dataclass
class SimulatedTerminal:
    state: Path
    balance: Decimal
    logins: dict[int, tuple[int, str]] = field(default_factory=dict)  # user id -> (login, password)

    def create_accounts(self) -> None:
        from mt5sim import control

        control.ignore_market_hours(True, state=self.state)
        for number, person in enumerate(PEOPLE):
            login = FIRST_LOGIN + number
            password = secrets.token_urlsafe(12)
            control.create_account(
                login, password, server=SERVER, balance=self.balance, name=person.name, state=self.state
            )
            self.logins[person.user_id] = (login, password)

    def close(self) -> None:
        from mt5sim import control

        control.close()  # this thread's connections to the state file

    async def link(self, accounts: AccountService, person: Person) -> None:
        login, password = self.logins[person.user_id]
        await accounts.link_mt5(person.user_id, login, password, SERVER, actor="operator:sandbox")
