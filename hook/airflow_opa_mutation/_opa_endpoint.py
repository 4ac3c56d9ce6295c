"""Where OPA is and how to prove who we are to it: read once from the settings, for every client.

Two clients talk to OPA: the hook's decision pool (urllib3, ``_opa_client``) and the command line's
management client (opa-python-client, ``cli/_opa_admin``). Both take the URL, the TLS files and the bearer
token from :func:`opa_endpoint`, so a setting means the same to each; ``urllib3_tls`` and
``requests_tls`` only spell it in the two libraries' terms.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Settings
from .errors import ConfigError, OpaUnavailable

BAD_TOKEN = "contains characters an HTTP header cannot carry (a line break or control character?)"


def _header_safe(token: str) -> bool:
    """Whether ``token`` can go into an Authorization header as is. Otherwise http.client raises a
    ValueError quoting the header, token and all: an untyped error with the secret in its message."""
    return all(" " <= ch <= "~" for ch in token)


class _TokenFile:
    """A bearer token read from a file, re-read whenever the file changes (rotated secrets)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""
        self._lock = threading.Lock()

    def get(self) -> str:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise OpaUnavailable(f"cannot read token_file {self.path}: {exc.strerror}") from None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._token = self.path.read_text().strip()
                self._stamp = stamp
            return self._token

    def after_fork_in_child(self) -> None:
        """A lock another thread held at ``fork()`` stays locked forever in the child: a new one."""
        self._lock = threading.Lock()


@dataclass(frozen=True)
class OpaEndpoint:
    """OPA's address and credentials. ``prefix`` is the path of a proxy in front of OPA ('' or '/opa')."""

    url: str
    https: bool
    host: str
    port: int
    prefix: str
    ca_bundle: str | None
    client_cert: str | None
    client_key: str | None
    token: str | None = field(repr=False)
    token_file: _TokenFile | None = field(repr=False, compare=False)

    def authorization(self) -> dict[str, str]:
        """The Authorization header to send now: the token from ``token_file`` (re-read when the file
        changes; it wins over ``token``), else ``token``; empty without either.

        Raises :class:`OpaUnavailable` when the file cannot be read or holds an unusable token.
        """
        token = self.token
        if self.token_file is not None:
            token = self.token_file.get()
            if not _header_safe(token):
                raise OpaUnavailable(f"the token in token_file {self.token_file.path}: {BAD_TOKEN}")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def urllib3_tls(self) -> dict[str, Any]:
        """Keyword arguments of ``urllib3.HTTPSConnectionPool``: OPA's certificate verified against
        ``ca_bundle`` (else the system CAs), the client certificate sent for mTLS."""
        return {
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": self.ca_bundle,
            "cert_file": self.client_cert,
            "key_file": self.client_key,
        }

    def requests_tls(self) -> tuple[bool | str, str | tuple[str, str] | None]:
        """The same as requests' ``(verify, cert)``: a CA bundle path or True (never False over HTTPS)."""
        if not self.https:
            return False, None
        cert: str | tuple[str, str] | None = None
        if self.client_cert:
            cert = (self.client_cert, self.client_key) if self.client_key else self.client_cert
        return self.ca_bundle or True, cert

    def after_fork_in_child(self) -> None:
        if self.token_file is not None:
            self.token_file.after_fork_in_child()


def opa_endpoint(settings: Settings) -> OpaEndpoint:
    """The one reading of ``url``, ``ca_bundle``, ``client_cert``, ``client_key``, ``token`` and
    ``token_file``. A ``token`` an HTTP header cannot carry is a :class:`ConfigError` (never echoed)."""
    if settings.token and not _header_safe(settings.token):
        raise ConfigError("token", "<redacted>", BAD_TOKEN)
    parts = urlsplit(settings.url)
    https = parts.scheme == "https"
    return OpaEndpoint(
        url=settings.url,
        https=https,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (443 if https else 80),
        prefix=parts.path.rstrip("/"),
        ca_bundle=settings.ca_bundle,
        client_cert=settings.client_cert,
        client_key=settings.client_key,
        token=settings.token,
        token_file=_TokenFile(settings.token_file) if settings.token_file else None,
    )
