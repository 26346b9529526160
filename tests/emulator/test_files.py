"""Photos and documents: attach:// uploads, file_id reuse, getFile and the download URL aiogram builds."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from emulator import BotAPIEmulator
from tests.support.emulator_world import CheckedClient, make_bot, png
from tests.support.telegram import OTHER_TOKEN


async def test_photo_upload_sizes_download(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    image = png(800, 400)
    sent = await bot.send_photo(alice, BufferedInputFile(image, "chart.png"), caption="<b>Equity</b> curve")
    assert sent.photo is not None and [(p.width, p.height) for p in sent.photo] == [(320, 160), (800, 400)]
    assert sent.caption == "Equity curve" and sent.caption_entities is not None
    assert sent.caption_entities[0].type == "bold"
    largest = sent.photo[-1]
    file = await bot.get_file(largest.file_id)
    assert file.file_size == len(image) and file.file_path
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == image
    [stored] = await ctl.messages(alice)
    assert stored["photo"][-1]["file_id"] == largest.file_id
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ctl.base_url}/_emulator/files/{largest.file_id}") as resp:
            assert resp.status == 200 and await resp.read() == image
        async with http.get(f"{ctl.base_url}/_emulator/files/nope") as resp:
            assert resp.status == 404
    again = await bot.send_photo(alice, largest.file_id)
    assert again.photo is not None and [p.file_id for p in again.photo] == [p.file_id for p in sent.photo]


async def test_file_ids_and_paths_belong_to_their_bot(
    bot: Bot, emulator: BotAPIEmulator, ctl: CheckedClient, alice: int
) -> None:
    sent = await bot.send_photo(alice, BufferedInputFile(png(10, 10), "a.png"))
    assert sent.photo is not None
    other = make_bot(emulator.base_url, token=OTHER_TOKEN)
    try:
        with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
            await other.send_photo(alice, sent.photo[-1].file_id)
        with pytest.raises(TelegramBadRequest, match="invalid file_id"):
            await other.get_file(sent.photo[-1].file_id)
    finally:
        await other.session.close()
    path = (await bot.get_file(sent.photo[-1].file_id)).file_path
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator.base_url}/file/bot{OTHER_TOKEN}/{path}") as resp:
            assert resp.status == 404
        async with http.get(f"{emulator.base_url}/file/bot{bot.token}/{path}") as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
            assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_what_is_not_an_image_is_refused(bot: Bot, alice: int) -> None:
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(alice, BufferedInputFile(b"not an image", "x.png"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(alice, BufferedInputFile(png(2100, 100), "wide.png"))
    with pytest.raises(TelegramBadRequest, match="Bad Request: failed to get HTTP URL content"):
        await bot.send_photo(alice, "https://127.0.0.1/chart.png")


async def test_documents(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    sent = await bot.send_document(alice, BufferedInputFile(b"date,equity\n", "report.csv"), caption="Report")
    document = sent.document
    assert document is not None and document.file_name == "report.csv"
    assert document.mime_type == "text/csv" and document.file_size == 12
    again = await bot.send_document(alice, document.file_id)
    assert again.document is not None and again.document.file_id == document.file_id
    photo = await bot.send_photo(alice, BufferedInputFile(png(10, 10), "a.png"))
    assert photo.photo is not None
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(alice, photo.photo[-1].file_id)
    with pytest.raises(TelegramBadRequest, match="file must be non-empty"):
        await bot.send_document(alice, BufferedInputFile(b"", "empty.txt"))
    edited = await bot.edit_message_caption(chat_id=alice, message_id=sent.message_id, caption="<i>Final</i>")
    assert not isinstance(edited, bool) and edited.caption == "Final"
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=alice, message_id=sent.message_id)
