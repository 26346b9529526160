"""Telegram's ``MarkdownV2`` and legacy ``Markdown`` parse modes, with Telegram's error messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.html_entities import EntityParseError, byte_offset, link_entity, u16

_RESERVED = "_*[]()~`>#+-=|{}.!\n"
_SPACES = " \t\r\n\v\f"
_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
}


@dataclass
class _Open:
    kind: str
    offset: int
    byte_pos: int
    text_index: int
    language: str = ""


def _reserved(char: str) -> EntityParseError:
    return EntityParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


class _V2:
    def __init__(self, src: str) -> None:
        self.src = src
        self.n = len(src)
        self.out: list[str] = []
        self.offset = 0
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []
        self.in_quote = False

    def at(self, i: int) -> str:
        return self.src[i] if 0 <= i < self.n else "\0"

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.offset += u16(text)

    def name_of(self, entry: _Open) -> str:
        if entry.kind == "pre" and entry.language:
            return "PreCode"
        return _NAMES[entry.kind]

    def ends_top(self, i: int) -> bool:
        c = self.src[i]
        if self.in_quote and c == "\n" and self.at(i + 1) != ">":
            return True
        kind = self.stack[-1].kind
        if kind == "bold":
            return c == "*"
        if kind == "italic":
            return c == "_" and self.at(i + 1) != "_"
        if kind == "underline":
            return c == "_" and self.at(i + 1) == "_"
        if kind == "strikethrough":
            return c == "~"
        if kind == "spoiler":
            return c == "|" and self.at(i + 1) == "|"
        if kind == "code":
            return c == "`"
        if kind == "pre":
            return self.src.startswith("```", i)
        if kind in ("text_link", "custom_emoji"):
            return c == "]"
        return False

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        i = 0
        while i < self.n:
            c = self.src[i]
            if c == "\\" and 0 < ord(self.at(i + 1)) <= 126:
                self.emit(self.src[i + 1])
                i += 2
                continue
            reserved = _RESERVED
            if self.stack and self.stack[-1].kind in ("code", "pre"):
                reserved = "`"
            if c not in reserved:
                self.emit(c)
                i += 1
                continue
            if self.stack and self.ends_top(i):
                i = self.close(i)
            else:
                i = self.open(i)
        if self.in_quote and self.stack and self.stack[-1].kind == "blockquote":
            top = self.stack.pop()
            if self.offset > top.offset:
                self.entities.append(
                    {"type": "blockquote", "offset": top.offset, "length": self.offset - top.offset}
                )
            self.in_quote = False
        if self.stack:
            top = self.stack[-1]
            raise EntityParseError(
                f"Can't find end of {self.name_of(top)} entity at byte offset {top.byte_pos}"
            )
        return "".join(self.out), self.entities

    def open(self, i: int) -> int:
        c = self.src[i]
        pos = byte_offset(self.src, i)
        language = ""
        if c == "_":
            kind = "underline" if self.at(i + 1) == "_" else "italic"
            i += 2 if kind == "underline" else 1
        elif c == "*":
            kind, i = "bold", i + 1
        elif c == "~":
            kind, i = "strikethrough", i + 1
        elif c == "|":
            if self.at(i + 1) != "|":
                raise _reserved(c)
            kind, i = "spoiler", i + 2
        elif c == "[":
            kind, i = "text_link", i + 1
        elif c == "!":
            if self.at(i + 1) != "[":
                raise _reserved(c)
            kind, i = "custom_emoji", i + 2
        elif c == "`":
            if self.src.startswith("```", i):
                kind, i = "pre", i + 3
                end = i
                while end < self.n and self.src[end] not in _SPACES and self.src[end] != "`":
                    end += 1
                if end != i and end < self.n and self.src[end] != "`":
                    language, i = self.src[i:end], end
                if self.at(i) in "\r\n":
                    pair = self.at(i + 1) in "\r\n" and self.at(i + 1) != self.at(i)
                    i += 2 if pair else 1
            else:
                kind, i = "code", i + 1
        elif c == "\n":
            self.emit("\n")
            if self.at(i + 1) == ">":
                if not self.in_quote:
                    self.in_quote = True
                    self.stack.append(_Open("blockquote", self.offset, pos, len(self.out)))
                return i + 2
            return i + 1
        elif c == ">" and i == 0:
            self.in_quote = True
            self.stack.append(_Open("blockquote", self.offset, pos, len(self.out)))
            return i + 1
        else:
            raise _reserved(c)
        self.stack.append(_Open(kind, self.offset, pos, len(self.out), language))
        return i

    def close(self, i: int) -> int:
        top = self.stack[-1]
        c = self.src[i]
        if c == "\n" and top.kind != "blockquote":
            raise EntityParseError(
                f"Can't find end of {self.name_of(top)} entity at byte offset {top.byte_pos}"
            )
        offset, length = top.offset, self.offset - top.offset
        entity: dict[str, Any] | None = {"type": top.kind, "offset": offset, "length": length}
        if top.kind in ("underline", "spoiler"):
            i += 2
        elif top.kind == "pre":
            i += 3
            if top.language and entity is not None:
                entity["language"] = top.language
        elif top.kind == "text_link":
            text = "".join(self.out[top.text_index :])
            url, i = text, i + 1
            if self.at(i) == "(":
                url, i = self.read_url(i + 1, "a URL")
            entity = link_entity(url, offset, length)
        elif top.kind == "custom_emoji":
            if self.at(i + 1) != "(":
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            url, i = self.read_url(i + 2, "a custom emoji URL")
            emoji_id = url.partition("tg://emoji?id=")[2]
            if not emoji_id.isdigit():
                raise EntityParseError("Invalid custom emoji identifier specified")
            if entity is not None:
                entity["custom_emoji_id"] = emoji_id
        elif top.kind == "blockquote":
            self.in_quote = False
            self.emit("\n")
            length = self.offset - offset
            entity = {"type": "blockquote", "offset": offset, "length": length}
            i += 1
        else:
            i += 1
        if entity is not None and length > 0:
            self.entities.append(entity)
        self.stack.pop()
        return i

    def read_url(self, i: int, what: str) -> tuple[str, int]:
        begin = i
        pieces: list[str] = []
        while i < self.n and self.src[i] != ")":
            if self.src[i] == "\\" and 0 < ord(self.at(i + 1)) <= 126:
                pieces.append(self.src[i + 1])
                i += 2
                continue
            pieces.append(self.src[i])
            i += 1
        if i >= self.n:
            raise EntityParseError(f"Can't find end of {what} at byte offset {byte_offset(self.src, begin)}")
        return "".join(pieces), i + 1


def parse_markdown_v2(src: str) -> tuple[str, list[dict[str, Any]]]:
    return _V2(src).run()


def parse_markdown(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Legacy Markdown: ``*bold*``, ``_italic_``, `` `code` ``, fenced pre, ``[text](url)``."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    offset = 0
    n = len(src)
    i = 0
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.append(src[i + 1])
            offset += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            offset += u16(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        language = ""
        i += 1
        if c == "`" and src.startswith("``", i):
            i += 2
            is_pre = True
            end = i
            while end < n and src[end] not in _SPACES and src[end] != "`":
                end += 1
            if end != i and end < n and src[end] != "`":
                language, i = src[i:end], end
            if i < n and src[i] in "\r\n":
                i += 2 if i + 1 < n and src[i + 1] in "\r\n" and src[i + 1] != src[i] else 1
        start_offset = offset
        start_index = len(out)
        while i < n and (src[i] != end_char or (is_pre and not src.startswith("```", i))):
            out.append(src[i])
            offset += u16(src[i])
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {byte_offset(src, begin)}"
            )
        length = offset - start_offset
        if c == "[":
            url = "".join(out[start_index:])
            if i + 1 < n and src[i + 1] == "(":
                close = src.find(")", i + 2)
                close = n if close < 0 else close
                url = src[i + 2 : close]
                i = close
            if length > 0:
                entity = link_entity(url, start_offset, length)
                if entity is not None:
                    entities.append(entity)
        elif length > 0:
            kind = {"_": "italic", "*": "bold", "`": "pre" if is_pre else "code"}[c]
            entity = {"type": kind, "offset": start_offset, "length": length}
            if is_pre and language:
                entity["language"] = language
            entities.append(entity)
        i += 3 if is_pre else 1
    return "".join(out), entities
