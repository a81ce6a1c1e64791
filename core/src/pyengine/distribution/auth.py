"""Registry credentials: Docker's config.json, the X-Registry-Auth header, and WWW-Authenticate.

The CLI keeps credentials where the docker CLI does (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``): ``{"auths": {"<server>": {"auth": base64("user:password")}}}``. It sends
them to the daemon per request in ``X-Registry-Auth`` (base64url JSON ``{username, password,
serveraddress}`` or ``{identitytoken}``); the daemon never stores them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyengine.errors import InvalidArgument

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)


ANONYMOUS = Credentials()


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {exc}") from exc


def decode_registry_auth(header: str | None) -> Credentials:
    """Decode Docker's ``X-Registry-Auth``; an absent or empty header means anonymous."""
    if not header:
        return ANONYMOUS
    try:
        doc = json.loads(_b64decode(header) or b"{}")
    except ValueError as exc:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: not a JSON object")
    return Credentials(
        username=str(doc.get("username") or ""),
        password=str(doc.get("password") or ""),
        identity_token=str(doc.get("identitytoken") or ""),
        registry_token=str(doc.get("registrytoken") or ""),
    )


def encode_registry_auth(creds: Credentials, server: str = "") -> str:
    if creds.identity_token:
        doc = {"identitytoken": creds.identity_token}
    elif creds.anonymous:
        doc = {}
    else:
        doc = {"username": creds.username, "password": creds.password, "serveraddress": server}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


# ---- WWW-Authenticate -------------------------------------------------------------------------
_PARAM_RE = re.compile(r'\s*([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth/token",service="reg",scope="repository:x:pull"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _PARAM_RE.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = value.replace('\\"', '"')
    return Challenge(scheme.lower(), params)


# ---- the CLI's config.json --------------------------------------------------------------------
def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def auth_key(server: str) -> str:
    """The config.json key for a registry: Docker Hub's historical URL, else the host[:port]."""
    server = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    if server in ("docker.io", "index.docker.io", "registry-1.docker.io", "index.docker.io/v1"):
        return DOCKER_HUB_AUTH_KEY
    return server.split("/", 1)[0]


def _read_config(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise InvalidArgument(f"{path} is not valid JSON: {exc}") from exc
    return doc if isinstance(doc, dict) else {}


def _write_config(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent="\t")
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_credentials(server: str, path: Path | None = None) -> Credentials:
    """The stored credentials for ``server`` (anonymous when none)."""
    entry = _read_config(path or config_path()).get("auths", {}).get(auth_key(server)) or {}
    if entry.get("identitytoken"):
        return Credentials(identity_token=entry["identitytoken"])
    raw = entry.get("auth")
    if not raw:
        return ANONYMOUS
    try:
        user, _, password = base64.b64decode(raw).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ANONYMOUS
    return Credentials(username=user, password=password)


def store_credentials(server: str, creds: Credentials, path: Path | None = None) -> Path:
    path = path or config_path()
    doc = _read_config(path)
    entry: dict[str, str] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    if creds.identity_token:
        entry = {"auth": "", "identitytoken": creds.identity_token}
    doc.setdefault("auths", {})[auth_key(server)] = entry
    _write_config(path, doc)
    return path


def remove_credentials(server: str, path: Path | None = None) -> bool:
    """Forget ``server``'s credentials; False when there were none."""
    path = path or config_path()
    doc = _read_config(path)
    auths = doc.get("auths", {})
    if auth_key(server) not in auths:
        return False
    del auths[auth_key(server)]
    _write_config(path, doc)
    return True
