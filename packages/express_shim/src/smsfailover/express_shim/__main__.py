"""`python -m smsfailover.express_shim serve [--host H] [--port P]` and `... migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from smsfailover.express_shim.config import ConfigError, OriginConfig


def _serve(config: OriginConfig, host: str, port: int) -> None:
    import uvicorn
    from smsfailover.express_shim import settings_page
    from smsfailover.express_shim.app import create_app

    app = create_app(config, extra_routes=settings_page.routes())  # the operator's settings page
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


async def _migrate(config: OriginConfig) -> list[int]:
    from smsfailover.express_shim.storage.migrations import migrate
    from smsfailover.express_shim.storage.open import open_database

    db = await open_database(config.database_url)
    try:
        return await migrate(db)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsfailover.express_shim", description="the smsfailover origin")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the origin HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The background tasks poll the edge every few seconds: one INFO line per request would drown the events.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        config = OriginConfig.from_env()
    except ConfigError as exc:
        print(f"smsfailover origin: {exc}", file=sys.stderr)
        return 3
    if args.command == "migrate":
        applied = asyncio.run(_migrate(config))
        print(f"applied migrations: {applied}" if applied else "the database is up to date")
        return 0
    _serve(config, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
