"""Emulator settings: Telegram's limits and timings, each one adjustable so tests can tighten them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EmulatorConfig:
    """Thresholds and timings. The defaults are Telegram's (published or widely observed) values."""

    # Rate limits (Bot FAQ: ~30 msg/s per bot, ~1 msg/s per chat with short bursts, 20 msg/min per group).
    rate_limits: bool = True
    global_per_second: float = 30.0
    paid_broadcast_per_second: float = 1000.0
    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    group_per_minute: int = 20

    # Queries: callback and pre-checkout queries expire; the bot must answer a pre-checkout in 10 s.
    callback_query_expiry: float = 150.0
    pre_checkout_timeout: float = 10.0
    message_update_expiry: float = 86400.0

    # getUpdates
    long_poll_max_timeout: float = 50.0

    # Webhook delivery: exponential backoff after a failed delivery, capped.
    webhook_retry_initial: float = 1.0
    webhook_retry_max: float = 60.0
    webhook_timeout: float = 60.0
    webhook_require_https: bool = False
    # Web Apps (web_app buttons, the menu button): Telegram opens only HTTPS URLs; the emulator also
    # takes http:// so a Mini App on loopback can be opened. True restores Telegram's rule.
    web_app_require_https: bool = False
    set_webhook_min_interval: float = 1.0

    # Privacy mode: in groups the bot only sees commands and mentions of itself.
    privacy_mode: bool = True

    # Sizes (bytes) and text lengths (characters after entity parsing).
    max_photo_bytes: int = 10 * 1024 * 1024
    max_document_bytes: int = 50 * 1024 * 1024
    max_download_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 64 * 1024 * 1024  # above the 50 MB document limit; larger bodies get 413
    max_text_length: int = 4096
    max_caption_length: int = 1024
    max_callback_data_bytes: int = 64
    max_callback_answer_length: int = 200

    # Server-Sent Events keep-alive comment interval (seconds).
    sse_heartbeat: float = 15.0
