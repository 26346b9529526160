"""Uploaded files: bytes kept in memory, Telegram-style file ids (per bot), image sizes, download paths."""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
import struct
from dataclasses import dataclass
from typing import Any

from emulator.errors import bad_request


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # "photo" | "document"
    data: bytes
    file_path: str
    mime_type: str
    file_name: str | None = None
    width: int = 0
    height: int = 0

    def file_json(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF, JPEG or WebP image; None when it is none of those."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            width = 1 + int.from_bytes(data[24:27], "little")
            height = 1 + int.from_bytes(data[27:30], "little")
            return width, height
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return int(width) & 0x3FFF, int(height) & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    return None


class FileStore:
    """One bot's files. File ids are only valid for the bot that uploaded (or received) them."""

    def __init__(self, bot_id: int) -> None:
        self.bot_id = bot_id
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._photo_groups: dict[str, list[dict[str, Any]]] = {}
        self._counter = 0

    def _new_id(self, kind: str) -> str:
        prefix = {"photo": "AgAC", "document": "BQAC"}.get(kind, "CAAC")
        return prefix + secrets.token_urlsafe(36)

    def add(
        self,
        kind: str,
        data: bytes,
        *,
        file_name: str | None,
        mime_type: str | None,
        size: tuple[int, int] = (0, 0),
    ) -> StoredFile:
        self._counter += 1
        extension = {"photo": ".jpg"}.get(kind) or _extension(file_name, mime_type)
        folder = "photos" if kind == "photo" else "documents"
        path = f"{folder}/file_{self._counter}{extension}"
        guessed = mimetypes.guess_type(file_name or "")[0] if file_name else None
        stored = StoredFile(
            file_id=self._new_id(kind),
            file_unique_id="AQAD"
            + hashlib.sha256(data + kind.encode() + bytes(self._counter)).hexdigest()[:12],
            kind=kind,
            data=data,
            file_path=path,
            mime_type=mime_type or guessed or "application/octet-stream",
            file_name=file_name,
            width=size[0],
            height=size[1],
        )
        self._by_id[stored.file_id] = stored
        self._by_path[path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, path: str) -> StoredFile | None:
        return self._by_path.get(path)

    def photo(self, data: bytes, max_bytes: int) -> list[dict[str, Any]]:
        """Store an uploaded photo; PhotoSize list (a thumbnail first when the image is large)."""
        if len(data) > max_bytes:
            raise bad_request("file is too big")
        size = image_size(data)
        if size is None or 0 in size:
            raise bad_request("IMAGE_PROCESS_FAILED")
        width, height = size
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise bad_request("PHOTO_INVALID_DIMENSIONS")
        mime = _sniff_mime(data)
        sizes: list[StoredFile] = []
        longest = max(width, height)
        if longest > 320:
            scale = 320 / longest
            thumb = (max(1, round(width * scale)), max(1, round(height * scale)))
            sizes.append(self.add("photo", data, file_name=None, mime_type=mime, size=thumb))
        sizes.append(self.add("photo", data, file_name=None, mime_type=mime, size=size))
        group = [photo_size_json(s) for s in sizes]
        for stored in sizes:
            self._photo_groups[stored.file_id] = group
        return [dict(item) for item in group]

    def photo_group(self, file_id: str) -> list[dict[str, Any]] | None:
        """Every size of the photo one of whose file ids is ``file_id``."""
        group = self._photo_groups.get(file_id)
        return None if group is None else [dict(item) for item in group]


def photo_size_json(stored: StoredFile) -> dict[str, Any]:
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
        "width": stored.width,
        "height": stored.height,
    }


def document_json(stored: StoredFile) -> dict[str, Any]:
    out: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
    if stored.file_name:
        out["file_name"] = stored.file_name
    out["mime_type"] = stored.mime_type
    out["file_size"] = len(stored.data)
    return out


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:3] == b"GIF":
        return "image/gif"
    if data[:4] == b"RIFF":
        return "image/webp"
    return "image/jpeg"


def _extension(file_name: str | None, mime_type: str | None) -> str:
    if file_name and "." in file_name:
        ext = "." + file_name.rsplit(".", 1)[1]
        if ext[1:].isalnum() and len(ext) <= 8:
            return ext.lower()
    if mime_type:
        return mimetypes.guess_extension(mime_type) or ""
    return ""
