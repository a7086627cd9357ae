"""Secrets at rest: webhook signing secrets are Fernet-encrypted with STEALTH_SECRET_KEY.

They must stay recoverable (the dispatcher signs with them), so they are encrypted, not hashed.
The same key also signs pagination cursors and enrollment-form tokens (derived sub-keys).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from server.config import ConfigError, Settings


def load_or_create_key(settings: Settings) -> str:
    """The Fernet key from settings; in the sandbox, generated once into .stealth/secret.key."""
    if settings.secret_key:
        key = settings.secret_key
    elif settings.environment == "production":
        raise ConfigError("STEALTH_SECRET_KEY is required in production")
    else:
        path = Path(settings.state_dir) / "secret.key"
        if path.is_file():
            key = path.read_text().strip()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key().decode()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
    try:
        Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError("STEALTH_SECRET_KEY must be a Fernet key (32 url-safe base64 bytes)") from exc
    return key


class SecretBox:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())
        self._root = hashlib.sha256(b"stealth-subkeys:" + key.encode()).digest()

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this STEALTH_SECRET_KEY") from exc

    def subkey(self, purpose: str) -> bytes:
        return hmac.new(self._root, purpose.encode(), hashlib.sha256).digest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
