"""Parse modes and entities, as Telegram computes them (UTF-16 offsets, its error messages)."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.errors import ApiError
from emulator.html_entities import EntityParseError, parse_html
from emulator.markdown import parse_markdown, parse_markdown_v2
from emulator.text import format_text, plain_text


def fmt(
    text: str, mode: str | None = "HTML", entities: Any = None, limit: int = 4096
) -> tuple[str, list[Any]]:
    result = format_text(text, mode, entities, max_length=limit, is_caption=False)
    return result.text, [(e["type"], e["offset"], e["length"]) for e in result.entities]


def test_basic_tags_and_their_synonyms() -> None:
    text, entities = fmt(
        "<b>b</b><strong>s</strong> <i>i</i><em>e</em> <u>u</u><ins>n</ins> <s>s</s><del>d</del>"
    )
    assert text == "bs ie un sd"
    assert entities == [
        ("bold", 0, 1), ("bold", 1, 1), ("italic", 3, 1), ("italic", 4, 1),
        ("underline", 6, 1), ("underline", 7, 1), ("strikethrough", 9, 1), ("strikethrough", 10, 1),
    ]  # fmt: skip


def test_offsets_are_utf16_code_units() -> None:
    text, entities = fmt("📈 <b>EURUSD</b> é <i>x</i>")
    assert text == "📈 EURUSD é x"
    assert entities == [("bold", 3, 6), ("italic", 12, 1)]


def test_nesting_links_code_and_pre_with_language() -> None:
    src = '<b>bold <i>both</i></b> <a href="https://example.com">link</a> <code>c</code> '
    src += '<pre><code class="language-python">x = 1</code></pre>'
    _, raw = parse_html(src)
    result = format_text(src, "HTML", None, max_length=4096, is_caption=False)
    assert result.text == "bold both link c x = 1"
    by_type = {e["type"]: e for e in result.entities}
    assert by_type["text_link"]["url"] == "https://example.com/"
    assert by_type["pre"] == {"type": "pre", "offset": 17, "length": 5, "language": "python"}
    assert by_type["code"] == {"type": "code", "offset": 15, "length": 1}
    assert ("italic", 5, 4) in [(e["type"], e["offset"], e["length"]) for e in raw]
    # sorted by offset, then longer first
    assert [e["type"] for e in result.entities][:2] == ["bold", "italic"]


def test_character_references() -> None:
    text, _ = fmt("1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;q&quot; &#65;&#x42; &nbsp; &unknown;")
    assert text == '1 < 2 && 3 > 2 "q" AB &nbsp; &unknown;'


def test_spoilers_blockquotes_and_custom_emoji() -> None:
    text, entities = fmt(
        '<tg-spoiler>a</tg-spoiler><span class="tg-spoiler">b</span> <blockquote expandable>q</blockquote>'
        ' <tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
    )
    assert text == "ab q 👍"
    assert entities == [
        ("spoiler", 0, 1), ("spoiler", 1, 1), ("expandable_blockquote", 3, 1), ("custom_emoji", 5, 2),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<p>x</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("é <foo>", 'Unsupported start tag "foo" at byte offset 3'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        (
            "<a href>x</a>",
            'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0',
        ),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
    ],
)
def test_html_errors(source: str, message: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_html(source)
    assert str(caught.value) == message
    with pytest.raises(ApiError) as api:
        format_text(source, "html", None, max_length=4096, is_caption=False)
    assert api.value.code == 400
    assert api.value.description == f"Bad Request: can't parse entities: {message}"


def test_markdown_v2() -> None:
    text, entities = parse_markdown_v2(
        "*b* _i_ __u__ ~s~ ||sp|| `c` [link](https://example.com/a\\)b) 1\\.0 ```py\nx\n```"
    )
    assert text == "b i u s sp c link 1.0 x\n"
    summary = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert summary[:6] == [
        ("bold", 0, 1), ("italic", 2, 1), ("underline", 4, 1), ("strikethrough", 6, 1), ("spoiler", 8, 2),
        ("code", 11, 1),
    ]  # fmt: skip
    link = next(e for e in entities if e["type"] == "text_link")
    assert link["url"] == "https://example.com/a)b"
    pre = next(e for e in entities if e["type"] == "pre")
    assert pre["language"] == "py"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Price 1.0850", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("a-b", "Character '-' is reserved and must be escaped with the preceding '\\'"),
        ("*bold", "Can't find end of Bold entity at byte offset 0"),
        ("x _it", "Can't find end of Italic entity at byte offset 2"),
        ("[t](https://x.org", "Can't find end of a URL at byte offset 4"),
    ],
)
def test_markdown_v2_errors(source: str, message: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_markdown_v2(source)
    assert str(caught.value) == message


def test_legacy_markdown() -> None:
    text, entities = parse_markdown("*b* _i_ `c` [t](https://example.com) a\\_b")
    assert text == "b i c t a_b"
    assert [(e["type"], e["offset"]) for e in entities] == [
        ("bold", 0),
        ("italic", 2),
        ("code", 4),
        ("text_link", 6),
    ]
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte offset 2"):
        parse_markdown("a *b")


def test_trimming_autodetection_and_explicit_entities() -> None:
    text, entities = fmt(
        "  <b> hi</b> /start@bot123_bot #EURUSD $BTC @alice_x https://example.com/x. \n", "HTML"
    )
    assert text == "hi /start@bot123_bot #EURUSD $BTC @alice_x https://example.com/x."
    assert entities == [
        ("bold", 0, 2), ("bot_command", 3, 17), ("hashtag", 21, 7), ("cashtag", 29, 4), ("mention", 34, 8),
        ("url", 43, 21),
    ]  # fmt: skip
    text, entities = fmt("abc /not_in_code", None, [{"type": "code", "offset": 4, "length": 12}])
    assert entities == [("code", 4, 12)]  # no bot_command inside code
    with pytest.raises(ApiError, match="can't parse MessageEntity: Unsupported type specified"):
        fmt("abc", None, [{"type": "sparkle", "offset": 0, "length": 1}])
    with pytest.raises(ApiError, match='Can\'t find field "url"'):
        fmt("abc", None, [{"type": "text_link", "offset": 0, "length": 1}])


def test_length_limits_count_characters_after_parsing() -> None:
    fmt("<b>" + "x" * 10 + "</b>", limit=10)
    with pytest.raises(ApiError, match="message is too long"):
        fmt("x" * 11, limit=10)
    with pytest.raises(ApiError, match="Bad Request: message caption is too long"):
        format_text("c" * 11, None, None, max_length=10, is_caption=True)
    assert format_text("", None, None, max_length=10, is_caption=True).text == ""


def test_typed_commands_get_bot_command_entities() -> None:
    typed = plain_text("/start ref_42")
    assert typed.entities == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert plain_text("see 1/2 and a/b").entities == []


def test_markdown_v2_blockquote() -> None:
    text, entities = parse_markdown_v2(">quoted line\n>second\nafter")
    assert text == "quoted line\nsecond\nafter"
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [("blockquote", 0, 19)]
