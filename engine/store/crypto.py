"""Secrets at rest: producer secrets and broker credentials, encrypted with ``SECRET_KEY``.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key derived from ``SECRET_KEY``
by HKDF-SHA256, so any long random string works as the setting. Decrypted values are registered
with the log redactor before they are returned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.observability.logs import register_secret


class CryptoError(Exception):
    """A stored secret cannot be decrypted (wrong ``SECRET_KEY`` or corrupted value)."""


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        register_secret(secret_key)
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"tradebot-secretbox-v1", info=b"fernet"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

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
