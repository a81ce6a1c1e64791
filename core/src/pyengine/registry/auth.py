"""htpasswd basic auth: bcrypt entries (``user:$2y$...``) as ``htpasswd -B`` writes them.

Only bcrypt entries are accepted (Docker's registry refuses the others too). bcrypt is slow on
purpose, and a ``docker push`` sends dozens of requests with the same credentials, so a password
that verified once is remembered (as a salted sha256, in memory) until the file changes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path

from pyengine.registry import errors

log = logging.getLogger("pyengine.registry")


class HtpasswdAuth:
    def __init__(self, path: Path) -> None:
        try:
            import bcrypt  # noqa: F401
        except ImportError as exc:
            raise SystemExit(
                "--htpasswd needs the bcrypt package: pip install 'pyengine[registry]' (or bcrypt)"
            ) from exc
        self.path = Path(path)
        self._entries: dict[str, bytes] = {}
        self._loaded_stat: tuple[int, int] | None = None
        self._verified: set[tuple[str, bytes]] = set()
        self._salt = secrets.token_bytes(16)
        self._load()

    def _load(self) -> None:
        stat = os.stat(self.path)
        key = (stat.st_mtime_ns, stat.st_size)
        if key == self._loaded_stat:
            return
        entries: dict[str, bytes] = {}
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                raise ValueError(f"{self.path}:{number}: not a bcrypt entry (make it with htpasswd -B)")
            entries[user] = hashed.encode()
        self._entries, self._loaded_stat, self._verified = entries, key, set()

    async def check(self, authorization: str | None) -> str:
        """Return the user the ``Authorization`` header proves; raise UNAUTHORIZED otherwise."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise errors.unauthorized()
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise errors.unauthorized() from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise errors.unauthorized()
        try:
            await asyncio.to_thread(self._load)
        except (OSError, ValueError) as exc:
            # A file being edited (or broken) must not open the door: keep the entries we had.
            log.warning("htpasswd file %s not reloaded: %s", self.path, exc)
        hashed = self._entries.get(user)
        if hashed is None:
            raise errors.unauthorized()
        remembered = (user, hashlib.sha256(self._salt + password.encode()).digest())
        if remembered in self._verified:
            return user
        if not await asyncio.to_thread(_bcrypt_matches, password.encode(), hashed):
            raise errors.unauthorized()
        self._verified.add(remembered)
        return user


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False
