"""The link between the origin and the edge in the test stack: a TCP forwarder in a process of its own whose weather
a test sets by writing one word to a file (read every 20 ms), so it behaves the same whatever the test process does.

    pass    forward every connection
    blip    a few lost SYNs and resets: connections open now are reset; new ones are accepted and held without a
            byte forwarded either way until the blip ends, then reset (the caller sees a connect or read timeout)
    down    an edge outage as Cloudflare answers it: every request gets `503` without reaching the edge

Run: python -m tests.support.edge_link --port P --upstream-port U --state-file F
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
from pathlib import Path

PASS, BLIP, DOWN = "pass", "blip", "down"
_DOWN_BODY = b'{"error":{"code":"worker_unavailable","message":"the worker failed"}}'
_DOWN_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_DOWN_BODY)}\r\n\r\n".encode()
    + _DOWN_BODY
)


class EdgeLink:
    def __init__(self, upstream_port: int, state_file: Path) -> None:
        self._upstream_port = upstream_port
        self._state_file = state_file
        self.state = PASS
        self._open: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Event()

    async def watch(self) -> None:
        while True:
            try:
                state = self._state_file.read_text().strip() or PASS
            except OSError:
                state = PASS
            if state != self.state:
                self.state = state
                if state != PASS:
                    for writer in list(self._open):
                        _reset(writer)
                self._changed.set()
                self._changed = asyncio.Event()
            await asyncio.sleep(0.02)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state == BLIP:
            while self.state == BLIP:
                await self._changed.wait()
            _reset(writer)
            return
        if self.state == DOWN:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
                writer.write(_DOWN_ANSWER)
                await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            _reset(writer)
            return
        self._open.update({writer, up_writer})
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._open.discard(w)
                w.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a middlebox that lost the connection would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def main(port: int, upstream_port: int, state_file: Path) -> None:
    link = EdgeLink(upstream_port, state_file)
    server = await asyncio.start_server(link.serve, "127.0.0.1", port)
    async with server:
        await asyncio.gather(server.serve_forever(), link.watch())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.upstream_port, args.state_file))
