"""What a Bot API method handler receives, and the registry of handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from emulator.config import EmulatorConfig
from emulator.core import EmulatorCore
from emulator.params import Params
from emulator.state import BotState


@dataclass
class Call:
    core: EmulatorCore
    bot: BotState
    params: Params
    method: str

    @property
    def config(self) -> EmulatorConfig:
        return self.core.config


@dataclass
class Result:
    """A result with the optional ``description`` Telegram adds to some successes."""

    value: Any
    description: str | None = None


Handler = Callable[[Call], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register
