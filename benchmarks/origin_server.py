"""The real origin app, served like `python -m smsfailover.express_shim serve`, with a chosen provider poster.

    python -m benchmarks.origin_server --port P --poster httpx2|aiohttp

Only the provider client differs from the shipped server (through create_app's poster hook), so benchmark 3 can
compare provider clients on the same origin code.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from smsfailover.core.provider import HttpPoster, HttpxPoster

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.routing import BaseRoute

POSTERS = ("default", "httpx2", "aiohttp")


def make_poster(name: str) -> HttpPoster | None:
    """None: the origin's own default, as `python -m smsfailover.express_shim serve` runs it."""
    if name == "default":
        return None
    if name == "aiohttp":
        from smsfailover.express_shim.aiohttp_poster import AiohttpPoster

        return AiohttpPoster()
    return HttpxPoster()


def profile_routes(profiler: cProfile.Profile, path: Path) -> list[BaseRoute]:
    """POST /_bench/profile/start starts the profiler (after start-up, whose imports would swamp it); POST
    /_bench/profile stops it and writes its stats: uvicorn ends on a re-raised SIGTERM, so a profile written at
    exit would be lost."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def start(request: Request) -> JSONResponse:
        profiler.enable()
        return JSONResponse({"profiling": True})

    async def dump(request: Request) -> JSONResponse:
        profiler.disable()
        profiler.dump_stats(path)
        return JSONResponse({"written": str(path)})

    return [Route("/_bench/profile/start", start, methods=["POST"]), Route("/_bench/profile", dump, methods=["POST"])]


def main() -> None:
    import uvicorn
    from smsfailover.express_shim.app import create_app
    from smsfailover.express_shim.config import OriginConfig

    parser = argparse.ArgumentParser(prog="python -m benchmarks.origin_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--poster", choices=POSTERS, default="default")
    parser.add_argument("--profile", type=Path, help="profile the event loop's thread; POST /_bench/profile writes it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    routes: list[BaseRoute] = []
    if args.profile is not None:
        routes.extend(profile_routes(cProfile.Profile(), args.profile))
    app = create_app(OriginConfig.from_env(), extra_routes=routes, poster=make_poster(args.poster))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
