"""Addresses the sandbox refuses to fetch from, and whether it listens beyond loopback.

A remote import (``source=http|ftp``) makes the sandbox fetch a URL its caller chose. Unless
the sandbox runs with ``--allow-private-fetch``, it fetches only from globally routable
addresses: never from loopback, link-local, private, unspecified, reserved or multicast ones,
so that a remote import cannot reach the services of the machine or of its network. Three
checks apply: an IP literal in the URL is checked before anything else; every address a host
name resolves to is checked (``GuardedResolver``); and the address each connection is about to
be made to (``guarded_socket``), which also covers redirects and a name that resolves
differently the second time.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

REFUSED_REASON = "private address refused (--allow-private-fetch)"
LOOPBACK_NAMES = ("localhost",)


class PrivateAddressError(OSError):
    """A fetch would reach an address that is not globally routable."""

    def __init__(self, address: str) -> None:
        # The same text for every address, so that the attempts at several addresses of one
        # host are reported as this error, not merged into a generic one.
        super().__init__(REFUSED_REASON)
        self.address = address


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1 to the socket
    return ip


def is_refused(address: str) -> bool:
    """Whether a fetch from ``address`` (an IP address) is refused: anything not global."""
    ip = _ip(address)
    if ip is None:
        return True  # not an address: nothing to judge it by
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_multicast
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def check_address(address: str) -> None:
    """Raise ``PrivateAddressError`` if a fetch from ``address`` is refused."""
    if is_refused(address):
        raise PrivateAddressError(address)


def check_literal(host: str) -> None:
    """Check ``host`` if it is an IP literal (aiohttp does not resolve those)."""
    if _ip(host) is not None:
        check_address(host)


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a refused address."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PrivateAddressError) or REFUSED_REASON in str(current):
            return True
        wrapped = getattr(current, "os_error", None)  # aiohttp's ClientConnectorError
        if isinstance(wrapped, BaseException) and is_refusal(wrapped):
            return True
        current = current.__cause__ or current.__context__
    return False


class GuardedResolver(AbstractResolver):
    """The default resolver, refusing a host name if any of its addresses is refused."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """The socket for one connection attempt, once the address it connects to is checked."""
    family, type_, proto, _, address = addr_info
    check_address(str(address[0]))
    return socket.socket(family=family, type=type_, proto=proto)


def guarded_connector(resolver: AbstractResolver) -> aiohttp.TCPConnector:
    """A connector that resolves with ``resolver`` and checks every address it connects to."""
    return aiohttp.TCPConnector(resolver=resolver, socket_factory=guarded_socket)


def resolve_checked(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (blocking ``getaddrinfo``), each one checked; ``OSError``
    when it cannot be resolved, ``PrivateAddressError`` when any address is refused."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OSError(f"no address for {host}")
    for address in addresses:
        check_address(address)
    return addresses


def listens_beyond_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` can be reached from other machines.

    Loopback addresses (127.0.0.0/8, ::1) and ``localhost`` stay on this machine; an empty
    host, ``0.0.0.0``, ``::`` and any other address do not. A host name is judged by what it
    resolves to; one that cannot be resolved cannot be listened on either (``False``).
    """
    name = host.strip().lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return False
    if not name:
        return True  # every interface
    ip = _ip(name)
    if ip is not None:
        return not ip.is_loopback
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = [_ip(str(info[4][0])) for info in infos]
    return not addresses or not all(ip is not None and ip.is_loopback for ip in addresses)
