"""Telegram's HTML parse mode: tags to ``MessageEntity`` dicts with UTF-16 offsets, or a parse error.

Follows the rules Telegram documents (formatting options) and the messages its server gives:
supported tags only, ``&lt; &gt; &amp; &quot;`` and numeric references decoded, unknown named
references kept as text, errors naming the byte offset of the offending tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SPACES = " \t\r\n\v\f\0"
_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class EntityParseError(ValueError):
    """The text cannot be parsed; the message is Telegram's (without the "can't parse entities" prefix)."""


def u16(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def decode_reference(src: str, pos: int) -> tuple[str, int] | None:
    """Decode the character reference at ``src[pos] == '&'``; None when it is not one Telegram knows."""
    end = pos + 1
    if src.startswith("#", end):
        end += 1
        value = 0
        if src.startswith("x", end):
            end += 1
            start = end
            while end < len(src) and src[end] in "0123456789abcdefABCDEF":
                end += 1
            digits = src[start:end]
            value = int(digits, 16) if digits else 0
        else:
            start = end
            while end < len(src) and src[end].isdigit() and src[end].isascii():
                end += 1
            digits = src[start:end]
            value = int(digits) if digits else 0
        if value == 0 or value >= 0x10FFFF or end - pos >= 10 or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    else:
        while end < len(src) and src[end].isascii() and src[end].isalpha():
            end += 1
        name = src[pos + 1 : end]
        if name not in _NAMED:
            return None
        char = _NAMED[name]
    if src.startswith(";", end):
        end += 1
    return char, end


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int  # UTF-16 offset where the entity starts
    text_index: int  # index in the output pieces where its text starts
    byte_pos: int
    flags: set[str] = field(default_factory=set)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.n = len(src)
        self.out: list[str] = []
        self.offset = 0
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []

    def err(self, message: str) -> EntityParseError:
        return EntityParseError(message)

    def at(self, i: int) -> str:
        return self.src[i] if i < self.n else "\0"

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.offset += u16(text)

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        i = 0
        while i < self.n:
            c = self.src[i]
            if c == "&":
                decoded = decode_reference(self.src, i)
                if decoded is not None:
                    self.emit(decoded[0])
                    i = decoded[1]
                    continue
            if c != "<":
                self.emit(c)
                i += 1
                continue
            if self.at(i + 1) == "/":
                i = self.end_tag(i)
            else:
                i = self.start_tag(i)
        if self.stack:
            raise self.err(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"')
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        return "".join(self.out), self.entities

    def start_tag(self, begin: int) -> int:
        src = self.src
        pos = byte_offset(src, begin)
        i = begin + 1
        while i < self.n and src[i] not in _SPACES and src[i] != ">":
            i += 1
        if i >= self.n:
            raise self.err(f"Unclosed start tag at byte offset {pos}")
        tag = src[begin + 1 : i].lower()
        if tag not in SUPPORTED_TAGS:
            raise self.err(f'Unsupported start tag "{tag}" at byte offset {pos}')
        argument = ""
        flags: set[str] = set()
        while self.at(i) != ">":
            while i < self.n and src[i] in _SPACES:
                i += 1
            if i >= self.n:
                raise self.err(f"Unclosed start tag at byte offset {pos}")
            if src[i] == ">":
                break
            name_begin = i
            while i < self.n and src[i] not in _SPACES and src[i] not in "=>":
                i += 1
            name = src[name_begin:i]
            if not name:
                raise self.err(f'Empty attribute name in the tag "{tag}" at byte offset {pos}')
            while i < self.n and src[i] in _SPACES:
                i += 1
            if self.at(i) != "=":
                if tag == "blockquote" and name.lower() == "expandable":
                    flags.add("expandable")
                    continue
                raise self.err(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte offset {pos}'
                )
            i += 1
            while i < self.n and src[i] in _SPACES:
                i += 1
            if i >= self.n:
                raise self.err(f'Unclosed start tag "{tag}" at byte offset {pos}')
            value, i = self.attribute_value(i)
            if i >= self.n:
                raise self.err(f"Unclosed start tag at byte offset {pos}")
            argument = self.apply_attribute(tag, name, value, argument)
        if tag == "span" and argument != "spoiler":
            raise self.err(f'Tag "span" must have class "tg-spoiler" at byte offset {pos}')
        self.stack.append(_Open(tag, argument, self.offset, len(self.out), pos, flags))
        return i + 1

    def attribute_value(self, i: int) -> tuple[str, int]:
        src = self.src
        quote = src[i]
        if quote not in "'\"":
            begin = i
            while i < self.n and ((src[i].isascii() and src[i].isalnum()) or src[i] in ".-"):
                i += 1
            if self.at(i) not in _SPACES and self.at(i) != ">":
                raise self.err(f"Unexpected end of name token at byte offset {byte_offset(src, begin)}")
            return src[begin:i].lower(), i
        i += 1
        pieces: list[str] = []
        while i < self.n and src[i] != quote:
            if src[i] == "&":
                decoded = decode_reference(src, i)
                if decoded is not None:
                    pieces.append(decoded[0])
                    i = decoded[1]
                    continue
            pieces.append(src[i])
            i += 1
        if i < self.n:
            i += 1
        return "".join(pieces), i

    @staticmethod
    def apply_attribute(tag: str, name: str, value: str, argument: str) -> str:
        name = name.lower()
        if tag == "a" and name == "href":
            return value
        if tag == "code" and name == "class" and value.startswith("language-"):
            return value[len("language-") :]
        if tag == "span" and name == "class" and value.startswith("tg-"):
            return value[3:]
        if tag == "tg-emoji" and name == "emoji-id":
            return value
        return argument

    def end_tag(self, begin: int) -> int:
        src = self.src
        pos = byte_offset(src, begin)
        if not self.stack:
            raise self.err(f"Unexpected end tag at byte offset {pos}")
        i = begin + 2
        while i < self.n and src[i] not in _SPACES and src[i] != ">":
            i += 1
        end_tag = src[begin + 2 : i].lower()
        while i < self.n and src[i] in _SPACES:
            i += 1
        if self.at(i) != ">":
            raise self.err(f"Unclosed end tag at byte offset {pos}")
        top = self.stack[-1]
        if end_tag and end_tag != top.tag:
            raise self.err(
                f'Unmatched end tag at byte offset {pos}, expected "</{top.tag}>", found "</{end_tag}>"'
            )
        if self.offset > top.offset:
            self.close(top)
        self.stack.pop()
        return i + 1

    def close(self, top: _Open) -> None:
        offset, length = top.offset, self.offset - top.offset
        last = self.entities[-1] if self.entities else None
        same_span = last is not None and last["offset"] == offset and last["length"] == length
        if top.tag in _SIMPLE:
            self.entities.append({"type": _SIMPLE[top.tag], "offset": offset, "length": length})
        elif top.tag == "blockquote":
            kind = "expandable_blockquote" if "expandable" in top.flags else "blockquote"
            self.entities.append({"type": kind, "offset": offset, "length": length})
        elif top.tag == "tg-emoji":
            if not top.argument.isdigit() or int(top.argument) == 0:
                raise self.err("Invalid custom emoji identifier specified")
            self.entities.append(
                {"type": "custom_emoji", "offset": offset, "length": length, "custom_emoji_id": top.argument}
            )
        elif top.tag == "a":
            url = top.argument or "".join(self.out[top.text_index :])
            entity = link_entity(url, offset, length)
            if entity is not None:
                self.entities.append(entity)
        elif top.tag == "pre":
            if last is not None and same_span and last["type"] == "code" and last.get("language"):
                last["type"] = "pre"
            else:
                self.entities.append({"type": "pre", "offset": offset, "length": length})
        elif top.tag == "code":
            if last is not None and same_span and last["type"] == "pre" and top.argument:
                last["language"] = top.argument
            else:
                entity = {"type": "code", "offset": offset, "length": length}
                if top.argument:
                    entity["language"] = top.argument
                self.entities.append(entity)


def checked_url(url: str) -> str | None:
    """Telegram's link normalisation: a scheme is added when missing, bare hosts get a trailing slash."""
    url = url.strip()
    if not url or any(ch in url for ch in " \n\t"):
        return None
    lower = url.lower()
    scheme, sep, rest = lower.partition("://")
    if not sep:
        if lower.startswith(("tg:", "mailto:")):
            return url
        if "." not in lower.split("/")[0]:
            return None
        url, scheme, rest = "http://" + url, "http", lower
    if scheme not in ("http", "https", "tg", "ton", "ftp"):
        return None
    if scheme in ("http", "https", "ftp"):
        host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        if not host:
            return None
        if "/" not in rest and "?" not in rest and "#" not in rest:
            url += "/"
    return url


def link_entity(url: str, offset: int, length: int) -> dict[str, Any] | None:
    lower = url.lower()
    if lower.startswith("tg://user?id="):
        user_id = lower[len("tg://user?id=") :]
        if user_id.isdigit():
            return {"type": "text_mention", "offset": offset, "length": length, "user_id": int(user_id)}
        return None
    checked = checked_url(url)
    if checked is None:
        return None
    return {"type": "text_link", "offset": offset, "length": length, "url": checked}


def parse_html(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities (unsorted) of ``src``; raises EntityParseError with Telegram's message."""
    return _Parser(src).run()
