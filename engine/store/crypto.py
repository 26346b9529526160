"""Secrets at rest: producer secrets and broker credentials, encrypted with ``SECRET_KEY``.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key derived from ``SECRET_KEY``
by HKDF-SHA256, so any long random string works as the setting. Decrypted values are registered
with the log redactor before they are returned.

During a key rotation the box also holds ``SECRET_KEY_OLD``: it decrypts with either key and always
encrypts with the new one (``MultiFernet``); ``rotate`` re-encrypts a stored value under the new key.
A key check value (an HMAC-SHA256 of a fixed label under another key derived from the same
setting) lets the store tell a wrong ``SECRET_KEY`` at start-up without keeping the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.observability.logs import register_secret


class CryptoError(Exception):
    """A stored secret cannot be decrypted (wrong ``SECRET_KEY`` or corrupted value)."""


_CHECK_LABEL = b"tradebot SECRET_KEY check v1"


def _derive(secret_key: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tradebot-secretbox-v1", info=info).derive(
        secret_key.encode()
    )


def key_check_value(secret_key: str) -> str:
    """What the store keeps to recognise ``secret_key``: HMAC-SHA256 of a fixed label (hex)."""
    return hmac.new(_derive(secret_key, b"key-check"), _CHECK_LABEL, hashlib.sha256).hexdigest()


class SecretBox:
    def __init__(self, secret_key: str, old_key: str | None = None) -> None:
        keys = [secret_key] if old_key is None or old_key == secret_key else [secret_key, old_key]
        for key in keys:
            register_secret(key)
        self._fernets = [Fernet(base64.urlsafe_b64encode(_derive(key, b"fernet"))) for key in keys]
        self._fernet = MultiFernet(self._fernets)
        self.check_values = tuple(key_check_value(key) for key in keys)  # the new key's first

    @property
    def check_value(self) -> str:
        """The key check value of the new (primary) key."""
        return self.check_values[0]

    @property
    def rotating(self) -> bool:
        return len(self._fernets) > 1

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            value = self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CryptoError(
                "cannot decrypt a stored secret: is SECRET_KEY the one it was stored with?"
            ) from None
        register_secret(value)
        return value

    def key_index(self, token: str) -> int:
        """Which key (0 new, 1 old) decrypts ``token``; ``CryptoError`` when none does."""
        for index, fernet in enumerate(self._fernets):
            try:
                register_secret(fernet.decrypt(token.encode()).decode())
            except InvalidToken:
                continue
            return index
        raise CryptoError("cannot decrypt a stored secret: is SECRET_KEY the one it was stored with?")

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the new key (decrypted with either key)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise CryptoError("cannot decrypt a stored secret with SECRET_KEY or SECRET_KEY_OLD") from None


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret (producer HMAC secrets and tokens)."""
    value = secrets.token_urlsafe(nbytes)
    register_secret(value)
    return value


def token_digest(token: str) -> str:
    """What is stored for a bearer token: its SHA-256, so the token itself is never kept."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
