"""Request parameters as aiogram sends them: query string, urlencoded or multipart forms, or JSON.

Form values are strings (objects arrive JSON-encoded); files arrive as parts referenced by
``attach://<name>``. An empty value counts as absent, as on Telegram's server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from emulator.errors import ApiError, bad_request

_TRUE = {"true", "yes", "1"}


@dataclass
class Upload:
    data: bytes
    filename: str | None
    content_type: str | None


class Params:
    def __init__(self, values: dict[str, Any], files: dict[str, Upload]) -> None:
        self.values = values
        self.files = files

    @classmethod
    async def from_request(cls, request: web.Request) -> Params:
        values: dict[str, Any] = dict(request.query)
        files: dict[str, Upload] = {}
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise bad_request("Can't parse JSON object") from None
                if not isinstance(body, dict):
                    raise bad_request("Object expected as request body")
                values.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                try:
                    form = await request.post()
                except web.HTTPRequestEntityTooLarge:
                    raise ApiError(413, "Request Entity Too Large") from None
                except (web.HTTPException, ValueError):
                    raise bad_request("Can't parse request body") from None
                for key, value in form.items():
                    if isinstance(value, FileField):
                        files[key] = Upload(value.file.read(), value.filename, value.content_type)
                    else:
                        values[key] = value
        return cls(values, files)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Params:
        return cls(dict(values), {})

    # -- access ----------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        if name in self.files:
            return True
        value = self.values.get(name)
        return value is not None and value != ""

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return json.dumps(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            return default

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, bool):
            return value
        if value is None:
            return False
        return str(value).strip().lower() in _TRUE

    def json_value(self, name: str, what: str) -> Any:
        """A JSON parameter (a string in forms, a value in JSON bodies); None when absent."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"Can't parse {what} JSON object") from None

    def file(self, name: str) -> Upload | str | None:
        """An uploaded file (``attach://`` or a part named like the field), a file_id/URL string, or None."""
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.files.get(value[len("attach://") :])
        if name in self.files:
            return self.files[name]
        if isinstance(value, str) and value:
            return value
        return None
