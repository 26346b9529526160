"""The engine's services, built once by the composition root and handed to the bot as one object.

Handlers receive it as the ``engine`` argument (aiogram workflow data); nothing reaches for a
module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.brokers.registry import BrokerRegistry
    from engine.control import EngineControl
    from engine.crypto import SecretBox
    from engine.db import Database
    from engine.events import EventRelay
    from engine.execution import ExecutionService
    from engine.positions import PositionCloser
    from engine.settings import Settings


@dataclass
class EngineServices:
    settings: Settings
    db: Database
    relay: EventRelay
    control: EngineControl
    brokers: BrokerRegistry
    execution: ExecutionService
    closer: PositionCloser
    secrets: SecretBox | None
    # Each part that adds a service adds a typed field here (with a default), never a dict of extras.
