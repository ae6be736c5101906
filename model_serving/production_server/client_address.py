"""The address of the client a request comes from, as nginx saw it.

Why not ``request.remote_addr`` alone: behind nginx every request comes from nginx. nginx replaces any
``X-Real-IP`` a client sends with the address it saw (``proxy_set_header X-Real-IP $remote_addr``), so that
header is the client's address exactly when the request came from nginx. From anyone else it is a claim anyone
can make, so it is read only when the peer is one of the trusted proxies (``STARGAZER_FORWARDED_ALLOW_IPS``,
the same list gunicorn trusts for ``X-Forwarded-*``); otherwise the peer itself is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/24"`` -> networks; ``*`` trusts every peer (if only nginx reaches gunicorn)."""
    networks: list[Network] = []
    for part in text.replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if part == "*":
            networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        networks.append(ipaddress.ip_network(part, strict=False))
    return tuple(networks)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def via_proxy(remote_addr: str | None, headers: Mapping[str, str], trusted: Sequence[Network]) -> bool:
    """The request came through a trusted proxy (nginx) that said whom it came from."""
    peer = _address(remote_addr)
    return (peer is not None and any(peer in net for net in trusted)
            and _address(headers.get("X-Real-IP")) is not None)


def client_address(remote_addr: str | None, headers: Mapping[str, str], trusted: Sequence[Network]) -> str:
    """nginx's ``X-Real-IP`` when the peer is a trusted proxy, else the peer's own address."""
    if via_proxy(remote_addr, headers, trusted):
        return str(_address(headers.get("X-Real-IP")))
    peer = _address(remote_addr)
    return str(peer) if peer is not None else "unknown"
