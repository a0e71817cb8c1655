"""The link between the origin and the edge in the test stack: a TCP forwarder in a process of its own whose weather
a test sets by writing one word to a file (read every 20 ms), so it behaves the same whatever the test process does.

    pass    forward every connection
    blip    a few lost SYNs and resets: connections open now are reset, and new connects time out (the port is
            held by a listener whose accept queue is full, so the kernel drops their SYNs)
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

from tests.support.tcp_switch import pipe

PASS, BLIP, DOWN = "pass", "blip", "down"
_DOWN_BODY = b'{"error":{"code":"worker_unavailable","message":"the worker failed"}}'
_DOWN_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_DOWN_BODY)}\r\n\r\n".encode()
    + _DOWN_BODY
)


class EdgeLink:
    def __init__(self, port: int, upstream_port: int, state_file: Path) -> None:
        self._port = port
        self._upstream_port = upstream_port
        self._state_file = state_file
        self.state = PASS
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._syn_drop: list[socket.socket] = []  # the full listener of a blip and the connections filling it

    async def run(self) -> None:
        self._server = await asyncio.start_server(self.serve, "127.0.0.1", self._port)
        while True:
            try:
                state = self._state_file.read_text().strip() or PASS
            except OSError:
                state = PASS
            if state != self.state:
                await self._change(state)
            await asyncio.sleep(0.02)

    async def _change(self, state: str) -> None:
        if state != PASS:
            for writer in list(self._open):
                _reset(writer)
        if state == BLIP:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
            self._syn_drop = _full_listener(self._port)
        elif self.state == BLIP:
            for sock in self._syn_drop:
                sock.close()
            self._syn_drop = []
            self._server = await asyncio.start_server(self.serve, "127.0.0.1", self._port)
        self.state = state

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
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


def _full_listener(port: int) -> list[socket.socket]:
    """A listener on `port` that never accepts, its accept queue filled: the kernel drops further SYNs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    held = [listener]
    for _ in range(2):  # a backlog of 0 still queues one connection (and Linux one more): fill it
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        held.append(filler)
    return held


async def main(port: int, upstream_port: int, state_file: Path) -> None:
    await EdgeLink(port, upstream_port, state_file).run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.upstream_port, args.state_file))
