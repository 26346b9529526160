"""Readiness checks: named async probes that ``GET /readyz`` runs (database, brokers, Telegram...).

Any part registers a check with ``readiness.register(name, probe)``. A probe returns ``True``
(up), ``False`` or a short string saying what is wrong (down), or raises (down). Each probe gets
``timeout`` seconds; a slow probe counts as down. A check registered with ``required=False``
reports a degraded part that still serves (e.g. the Telegram budget on its local share while
Redis is down): it is shown, but does not make the instance unready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.observability.logs import redact

Probe = Callable[[], Awaitable[bool | str]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    required: bool = True


class Readiness:
    def __init__(self, *, timeout: float = 2.0) -> None:
        self._checks: dict[str, Probe] = {}
        self._optional: set[str] = set()
        self._timeout = timeout

    def register(self, name: str, probe: Probe, *, required: bool = True) -> None:
        """Add (or replace) the probe called ``name``; ``required=False``: degraded, not down."""
        self._checks[name] = probe
        if required:
            self._optional.discard(name)
        else:
            self._optional.add(name)

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)
        self._optional.discard(name)

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def _run(self, name: str, probe: Probe) -> CheckResult:
        required = name not in self._optional
        try:
            result = await asyncio.wait_for(probe(), timeout=self._timeout)
        except TimeoutError:
            return CheckResult(name, False, f"no answer within {self._timeout:g} s", required)
        except Exception as exc:
            return CheckResult(name, False, redact(f"{type(exc).__name__}: {exc}")[:200], required)
        if result is True:
            return CheckResult(name, True, "ok", required)
        return CheckResult(name, False, result if isinstance(result, str) and result else "down", required)

    async def run(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._run(n, p) for n, p in self._checks.items())))
