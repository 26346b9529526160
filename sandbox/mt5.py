"""The simulated MT5 terminal: the operator's data login, the bar clock, and with ``--broker mt5``
the subscribers' accounts, linked the operator's way.

Every sandbox prepares the terminal (``mt5sim``, its state in the sandbox's data directory): market
hours ignored, a data login for the operator (``MT5_LOGIN``: paper accounts price from it and
Fib-RSI reads its bars) and the accelerated bar clock (``sandbox/strategy.py``). With
``--broker mt5`` each person also gets a demo account on the simulated trade server (``mt5sim``, its state in the
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
DATA_LOGIN = 51_000_000
FIRST_LOGIN = 51_000_001


def new_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass
class SimulatedTerminal:
    state: Path
    data_password: str = field(default_factory=new_password, repr=False)
    logins: dict[int, tuple[int, str]] = field(default_factory=dict)  # user id -> (login, password)

    @property
    def data_login(self) -> tuple[int, str, str]:
        """(login, password, server) of the operator's data login (``MT5_LOGIN`` and the rest)."""
        return DATA_LOGIN, self.data_password, SERVER

    def prepare(self, bar_seconds: float, balance: Decimal) -> None:
        """Market hours ignored, the operator's data login, an H1 bar every ``bar_seconds``."""
        from mt5sim import control

        control.ignore_market_hours(True, state=self.state)
        control.create_account(
            DATA_LOGIN, self.data_password, server=SERVER, balance=balance, name="Operator (data)",
            state=self.state,
        )  # fmt: skip
        control.set_bar_clock(bar_seconds, state=self.state)

    def create_accounts(self, balance: Decimal) -> None:
        """A demo account for each person (``--broker mt5``)."""
        from mt5sim import control

        for number, person in enumerate(PEOPLE):
            login = FIRST_LOGIN + number
            password = new_password()
            control.create_account(
                login, password, server=SERVER, balance=balance, name=person.name, state=self.state
            )
            self.logins[person.user_id] = (login, password)

    def close(self) -> None:
        from mt5sim import control

        control.close()  # this thread's connections to the state file

    async def link(self, accounts: AccountService, person: Person) -> None:
        login, password = self.logins[person.user_id]
        await accounts.link_mt5(person.user_id, login, password, SERVER, actor="operator:sandbox")
