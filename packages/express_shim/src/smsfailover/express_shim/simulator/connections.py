"""Resetting a client's connection, for the `outage: "reset"` fault.

ASGI gives an app no handle on its socket, so the simulator's server uses a uvicorn HTTP protocol that
records each connection's transport by the client address that also appears in the ASGI scope. Resetting sets
SO_LINGER to 0 and aborts: the peer sees a TCP RST, as from a provider whose load balancer drops it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

try:  # uvicorn's faster parser when installed (uvicorn[standard]), as its "auto" choice does
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as BaseProtocol
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as BaseProtocol  # type: ignore[assignment]

Address = tuple[str, int]


class ConnectionRegistry:
    def __init__(self) -> None:
        self._transports: dict[Address, asyncio.Transport] = {}

    def add(self, address: Address | None, transport: asyncio.Transport) -> None:
        if address is not None:
            self._transports[address] = transport

    def discard(self, address: Address | None) -> None:
        if address is not None:
            self._transports.pop(address, None)

    def reset(self, address: Address | None) -> bool:
        """Reset the connection from address; False if it is not one this registry serves."""
        transport = self._transports.pop(address, None) if address is not None else None
        if transport is None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        return True

    def protocol_class(self) -> type[asyncio.Protocol]:
        registry = self

        class RegisteringProtocol(BaseProtocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                registry.add(self.client, transport)

            def connection_lost(self, exc: Exception | None) -> None:
                registry.discard(self.client)
                super().connection_lost(exc)

        return RegisteringProtocol


def client_address(scope: dict[str, Any]) -> Address | None:
    client = scope.get("client")
    if not client:
        return None
    host, port = client
    return (str(host), int(port))
