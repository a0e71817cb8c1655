"""The baseline server of benchmark 3: a bare Starlette endpoint served the same way as the origin (uvicorn).

    python -m benchmarks.bare_app --port P

It reads the JSON body and answers 201 with a small JSON object: the floor of any Starlette send endpoint here.
"""

from __future__ import annotations

import argparse
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def send(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    return JSONResponse({"id": "msg_bare", "to": body.get("to"), "status": "queued"}, status_code=201)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v1/messages", send, methods=["POST"]), Route("/v1/health", health)])


def serve(served: Starlette, prog: str) -> None:
    """`--host`/`--port`, one uvicorn process: how every baseline server of the benchmarks runs."""
    import uvicorn

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(served, host=args.host, port=args.port, log_level="warning", access_log=False)


def main() -> None:
    serve(app, "python -m benchmarks.bare_app")


if __name__ == "__main__":
    main()
