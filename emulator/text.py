"""From what the bot sends (text, parse_mode, entities) to what Telegram stores: text and entities.

Steps, as Telegram's server takes them: parse the markup (or check the given entities), trim
surrounding whitespace, add the entities Telegram detects by itself (commands, mentions, hashtags,
cashtags, links, e-mail addresses), sort, and enforce the length limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.errors import bad_request
from emulator.html_entities import EntityParseError, checked_url, parse_html, u16
from emulator.markdown import parse_markdown, parse_markdown_v2

_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_BLOCKING = {"code", "pre", "text_link", "text_mention", "custom_emoji"}
_AUTO_TYPES = {
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "bank_card_number",
}
_USER_TYPES = {
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "blockquote",
    "expandable_blockquote",
    "date_time",
}
_TRIM = " \t\r\n"

_TLDS = "com|org|net|io|me|ru|de|uk|info|app|dev|co|ai|eu|us|biz|xyz|tv|gg|ly|fm|to"
_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("url", re.compile(r"(?<![\w@/.])(?:(?:https?|tg|ton)://[^\s<>\"]+|www\.[^\s<>\"]+)", re.IGNORECASE)),
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w@])")),
    (
        "url",
        re.compile(rf"(?<![\w@/.])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:{_TLDS})(?:/[^\s<>\"]*)?(?![\w@])"),
    ),
    ("bot_command", re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")),
    ("mention", re.compile(r"(?<!\w)@[A-Za-z0-9_]{4,32}(?!\w)")),
    ("hashtag", re.compile(r"(?<![\w#])#\w{1,256}(?![\w]*#)")),
    ("cashtag", re.compile(r"(?<![\w$])\$(?:1INCH|[A-Z]{1,8})(?![\w$])")),
]


@dataclass
class Formatted:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def sort_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)))


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["offset"] < b["offset"] + b["length"] and b["offset"] < a["offset"] + a["length"])


def find_auto_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram detects in plain text: commands, mentions, hashtags, cashtags, links, e-mails."""
    found: list[dict[str, Any]] = []
    for kind, pattern in _AUTO_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            if kind == "url":
                while end > start and text[end - 1] in ".,:;!?'\")]}":
                    end -= 1
            if kind == "hashtag" and not any(ch.isalpha() for ch in text[start + 1 : end]):
                continue
            entity: dict[str, Any] = {
                "type": kind,
                "offset": u16(text[:start]),
                "length": u16(text[start:end]),
            }
            if entity["length"] > 0 and not any(_overlaps(entity, other) for other in found):
                found.append(entity)
    return found


def _trim(text: str, entities: list[dict[str, Any]]) -> Formatted:
    start, end = 0, len(text)
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    lead = u16(text[:start])
    kept = text[start:end]
    total = u16(kept)
    out: list[dict[str, Any]] = []
    for entity in entities:
        begin = max(entity["offset"] - lead, 0)
        finish = min(entity["offset"] + entity["length"] - lead, total)
        if finish > begin:
            out.append({**entity, "offset": begin, "length": finish - begin})
    return Formatted(kept, out)


def _entities_from_json(raw: Any, text: str) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise bad_request("Can't parse entities JSON object") from None
    if not isinstance(raw, list):
        raise bad_request("Can't parse entities JSON object")
    total = u16(text)
    out: list[dict[str, Any]] = []
    for item in raw:
        problem = _entity_problem(item)
        if problem:
            raise bad_request(f"Can't parse MessageEntity: {problem}")
        if item["type"] in _AUTO_TYPES:
            continue
        kept = ("type", "offset", "length", "url", "language", "user", "unix_time", "date_time_format")
        entity = {k: v for k, v in item.items() if k in kept}
        if item["type"] == "custom_emoji":
            entity["custom_emoji_id"] = str(item["custom_emoji_id"])
        if item["type"] == "text_link":
            url = checked_url(str(item["url"]))
            if url is None:
                continue
            entity["url"] = url
        begin, finish = max(entity["offset"], 0), min(entity["offset"] + entity["length"], total)
        if finish > begin:
            entity.update(offset=begin, length=finish - begin)
            out.append(entity)
    return out


def _entity_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "expected an Object"
    for name in ("offset", "length"):
        if name not in item:
            return f'Can\'t find field "{name}"'
        if not isinstance(item[name], int) or isinstance(item[name], bool):
            return f'Field "{name}" must be of type Number'
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        return "Type is not specified"
    if kind not in _USER_TYPES and kind not in _AUTO_TYPES:
        return "Unsupported type specified"
    required = {
        "text_link": "url",
        "text_mention": "user",
        "custom_emoji": "custom_emoji_id",
        "date_time": "unix_time",
    }
    if kind in required and required[kind] not in item:
        return f'Can\'t find field "{required[kind]}"'
    return None


def format_text(
    text: str,
    parse_mode: str | None,
    entities: Any,
    *,
    max_length: int,
    is_caption: bool,
    resolve_user: Callable[[int], dict[str, Any] | None] | None = None,
) -> Formatted:
    """Parse and check a message text or caption; raises ApiError with Telegram's description."""
    if len(text.encode("utf-8")) > (1 << 15):
        raise bad_request("Text is too long")
    mode = (parse_mode or "").lower()
    parsed: list[dict[str, Any]]
    if text and mode and mode != "none":
        parsers = {"html": parse_html, "markdown": parse_markdown, "markdownv2": parse_markdown_v2}
        if mode not in parsers:
            raise bad_request("Unsupported parse_mode")
        try:
            text, parsed = parsers[mode](text)
        except EntityParseError as exc:
            raise bad_request(f"Can't parse entities: {exc}") from None
    elif entities not in (None, ""):
        parsed = _entities_from_json(entities, text)
    else:
        parsed = []
    parsed = _resolve_mentions(parsed, resolve_user)
    result = _trim(text, parsed)
    blocking = [e for e in result.entities if e["type"] in _BLOCKING]
    auto = [e for e in find_auto_entities(result.text) if not any(_overlaps(e, b) for b in blocking)]
    result.entities = sort_entities(result.entities + auto)
    if len(result.text) > max_length:
        raise bad_request("message caption is too long" if is_caption else "message is too long")
    if not result.text and not is_caption:
        raise bad_request("Message text is empty")
    return result


def _resolve_mentions(
    entities: list[dict[str, Any]], resolve_user: Callable[[int], dict[str, Any] | None] | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entity in entities:
        if entity["type"] == "text_mention":
            user_id = entity.pop("user_id", None)
            if user_id is None and isinstance(entity.get("user"), dict):
                user_id = entity["user"].get("id")
            user = resolve_user(int(user_id)) if resolve_user is not None and user_id is not None else None
            if user is None:
                continue
            entity["user"] = user
        out.append(entity)
    return out


def plain_text(text: str) -> Formatted:
    """A text typed by a user: no markup, auto-detected entities only."""
    return Formatted(text, sort_entities(find_auto_entities(text)))
