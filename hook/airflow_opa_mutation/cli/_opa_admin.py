"""OPA's management API (health, bundle status, policies, data) for the command line: opa-python-client.

The hook never imports this (nor opa-python-client, which pulls in aiohttp): its decisions go through its
own urllib3 pool (``_opa_client``). Both take URL, TLS files and token from ``_opa_endpoint``, so what
``doctor`` checks is what the hook uses.
"""

from __future__ import annotations

from typing import Any

from opa_client import OpaClient

from .._opa_endpoint import OpaEndpoint


def admin_client(endpoint: OpaEndpoint, *, timeout: float, authenticated: bool = True) -> Any:
    """An ``OpaClient`` for ``endpoint``; without its token when ``authenticated`` is false (to see
    whether OPA answers anyone). Raises :class:`OpaUnavailable` when ``token_file`` cannot be read."""
    verify, cert = endpoint.requests_tls()
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host  # an IPv6 literal
    client = OpaClient(
        host=host,
        port=endpoint.port,
        # root_url is {scheme}{host}:{port}/{version}: a proxy's path prefix goes in front of v1
        version=f"{endpoint.prefix}/v1".lstrip("/"),
        ssl=verify,  # https with this CA bundle (or the system CAs), or plain http when False
        cert=cert,
        headers=endpoint.authorization() if authenticated else None,
        retries=0,  # one answer, as the hook would get it
        timeout=timeout,
    )
    # Like the hook's pool: no proxy or .netrc from the environment between us and a sidecar.
    client._session.trust_env = False
    return client


def health_url(endpoint: OpaEndpoint) -> str:
    """``/health`` under the configured URL (``check_health`` otherwise drops a proxy's path prefix)."""
    return f"{endpoint.url}/health"
