"""The `smsfailover` command line (CONTRACT §4), installed with the core distribution's `cli` extra.

    smsfailover send --workspace WS --to +1... --content "..." [--media-url URL]... [--idempotency-key K]
    smsfailover status --workspace WS
    smsfailover settings --workspace WS [--enable | --disable]
    smsfailover reset-breaker
    smsfailover broadcast --workspace WS --csv FILE [--concurrency N] [--broadcast-id ID]
    smsfailover token --workspace WS [--service]

Every command takes `--json`. Exit codes: 0 success, 1 a send failed, 2 usage, 3 configuration or auth,
4 unknown outcomes. An error is one readable line on standard error; results go to standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import json
import logging
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, TextIO

from smsfailover.core.client import FailoverClient, SendResult
from smsfailover.core.config import ClientConfig
from smsfailover.core.errors import ConfigurationError, MessageRejected, SendFailed, SmsFailoverError

CSV_REQUIRED = ("to", "content")
CSV_OPTIONAL = ("contact_id", "media_url", "idempotency_key")
MAX_CONCURRENCY = 100
TOKEN_TTL_S = 3600
AUTH_STATUSES = frozenset({401, 403})


class Exit(IntEnum):
    OK = 0
    SEND_FAILED = 1
    USAGE = 2
    CONFIG = 3
    UNKNOWN = 4


class UsageError(Exception):
    """A mistake in the command line or its input file (exit 2)."""


# -- argument parsing ----------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (argparse would print the whole usage)
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_argument("-v", "--verbose", action="store_true", help="log routing decisions to stderr")

    parser = _Parser(prog="smsfailover", description="Send SMS/MMS with failover from the origin to the edge.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    send = commands.add_parser("send", parents=[common], help="send one message")
    send.add_argument("--workspace", required=True)
    send.add_argument("--to", required=True, help="the recipient, E.164 or a friendlier form")
    send.add_argument("--content", help="the text (may be omitted with --media-url)")
    send.add_argument("--media-url", action="append", default=[], dest="media_urls", metavar="URL")
    send.add_argument("--contact-id")
    send.add_argument("--idempotency-key", help="reuse to retry safely (default: a new key)")

    status = commands.add_parser("status", parents=[common], help="failover status of a workspace")
    status.add_argument("--workspace", required=True)

    settings = commands.add_parser("settings", parents=[common], help="show or change the failover setting")
    settings.add_argument("--workspace", required=True)
    toggle = settings.add_mutually_exclusive_group()
    toggle.add_argument("--enable", action="store_true")
    toggle.add_argument("--disable", action="store_true")

    commands.add_parser("reset-breaker", parents=[common], help="close this client's circuit breaker")

    unknowns = commands.add_parser("unknowns", parents=[common], help="messages whose outcome is still unknown")
    unknowns.add_argument("--workspace", required=True)
    unknowns.add_argument(
        "--mark-failed", metavar="MESSAGE_ID", help="an operator's decision (operator token): failed, send anew"
    )

    broadcast = commands.add_parser("broadcast", parents=[common], help="send one message per CSV row")
    broadcast.add_argument("--workspace", required=True)
    broadcast.add_argument("--csv", required=True, type=Path, dest="csv_path", metavar="FILE")
    broadcast.add_argument("--concurrency", type=_concurrency, default=5)
    broadcast.add_argument("--broadcast-id", help="names the run; re-running it sends nothing twice")

    token = commands.add_parser("token", parents=[common], help="mint a token (needs the signing key)")
    token.add_argument("--workspace")
    kind = token.add_mutually_exclusive_group()
    kind.add_argument("--service", action="store_true", help="a service token, with SMSFAILOVER_SERVICE_KEY")
    kind.add_argument("--operator", action="store_true", help="an operator token, with SMSFAILOVER_SERVICE_KEY")
    token.add_argument("--ttl-s", type=int, default=TOKEN_TTL_S, help=argparse.SUPPRESS)
    return parser


def _concurrency(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_CONCURRENCY}")
    return value


# -- entry point ---------------------------------------------------------------------------------------------


ClientFactory = Callable[[ClientConfig], FailoverClient]


def main(argv: Sequence[str] | None = None, *, make_client: ClientFactory = FailoverClient) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _fail(Exit.USAGE, str(exc))
    _configure_logging(verbose=args.verbose)
    try:
        return asyncio.run(_dispatch(args, make_client))
    except UsageError as exc:
        return _fail(Exit.USAGE, str(exc))
    except ConfigurationError as exc:
        return _fail(Exit.CONFIG, f"configuration: {exc}", args)
    except MessageRejected as exc:
        exit_code = Exit.CONFIG if exc.status in AUTH_STATUSES else Exit.SEND_FAILED
        where = f" ({exc.field})" if exc.field else ""
        return _fail(exit_code, f"rejected: {exc.code}{where}: {exc}", args, error=exc.code)
    except SendFailed as exc:
        return _fail(Exit.SEND_FAILED, f"failed: {exc}", args, error="send_failed")
    except SmsFailoverError as exc:
        return _fail(Exit.SEND_FAILED, f"error: {exc}", args)
    except KeyboardInterrupt:
        return _fail(Exit.SEND_FAILED, "interrupted")


def _configure_logging(*, verbose: bool) -> None:
    logger = logging.getLogger("smsfailover")
    logger.propagate = False  # no stray warning lines on stderr unless asked for
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    else:
        logger.addHandler(logging.NullHandler())
        warnings.simplefilter("ignore")  # e.g. PyJWT's key-length warning: stderr carries one error line only


def _fail(exit_code: Exit, line: str, args: argparse.Namespace | None = None, *, error: str = "") -> int:
    if args is not None and getattr(args, "json", False):
        _print_json({"error": {"code": error or exit_code.name.lower(), "message": line}})
    print(line.replace("\n", " "), file=sys.stderr)
    return int(exit_code)


async def _dispatch(args: argparse.Namespace, make_client: ClientFactory) -> int:
    if args.command == "token":
        return _token(args)
    config = ClientConfig.from_env()
    async with make_client(config) as client:
        if args.command == "send":
            return await _send(client, args)
        if args.command == "status":
            return _show(args, await client.get_sms_failover_status(args.workspace), _status_text)
        if args.command == "settings":
            return await _settings(client, args)
        if args.command == "unknowns":
            return await _unknowns(client, args)
        if args.command == "reset-breaker":
            await client.reset_shared_circuit_breaker()
            shared = config.breaker_redis_url is not None
            return _show(args, {"reset": True, "origin_url": config.origin_url, "shared": shared}, _reset_text)
        return await _broadcast(client, args)


# -- commands ------------------------------------------------------------------------------------------------


async def _send(client: FailoverClient, args: argparse.Namespace) -> int:
    result = await client.send_message(
        to=args.to,
        content=args.content,
        workspace_id=args.workspace,
        contact_id=args.contact_id,
        media_urls=args.media_urls or None,
        idempotency_key=args.idempotency_key,
    )
    _show(args, result.as_dict(), _result_text)
    return int(Exit.UNKNOWN if result.status == "unknown" else Exit.OK)


async def _unknowns(client: FailoverClient, args: argparse.Namespace) -> int:
    if args.mark_failed:
        marked = await client.mark_unknown_failed(args.workspace, args.mark_failed)
        return _show(args, marked, lambda m: f"{m.get('id')}: {m.get('status')} ({(m.get('error') or {}).get('code')})")
    listing = await client.list_unknowns(args.workspace)
    _show(args, listing, _unknowns_text)
    return int(Exit.UNKNOWN if listing.get("data") else Exit.OK)


async def _settings(client: FailoverClient, args: argparse.Namespace) -> int:
    if args.enable or args.disable:
        settings = await client.set_failover_enabled(args.workspace, bool(args.enable))
    else:
        settings = await client.get_settings(args.workspace)
    return _show(args, settings, _settings_text)


def _token(args: argparse.Namespace) -> int:
    fleet = args.service or args.operator  # CONTRACT §4: `token --workspace WS [--service]`; WS is then unused
    if not fleet and not args.workspace:
        raise UsageError("smsfailover token: --workspace is required unless --service or --operator is given")
    from smsfailover.core.auth import issue_token
    from smsfailover.core.config import signing_keys_from_env

    keys = signing_keys_from_env()
    name = "SMSFAILOVER_SERVICE_KEY" if fleet else "SMSFAILOVER_JWT_SECRET"
    key = keys.service if fleet else keys.workspace
    if not key:
        raise ConfigurationError(f"no signing key: set {name} (or SMSFAILOVER_ENV=development with var/dev-secret)")
    if fleet:
        token = issue_token(key, service=args.service, operator=args.operator, ttl_s=args.ttl_s)
    else:
        token = issue_token(key, workspace_id=args.workspace, ttl_s=args.ttl_s)
    if args.json:
        _print_json({"token": token, "workspace_id": None if fleet else args.workspace})
    else:
        print(token)
    return int(Exit.OK)


# -- broadcast -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1 for the first row after the header
    to: str
    content: str | None
    contact_id: str | None
    media_urls: tuple[str, ...]
    idempotency_key: str


@dataclass(slots=True)
class BroadcastSummary:
    broadcast_id: str
    rows: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    replayed: int = 0
    failed: list[dict[str, object]] = field(default_factory=list)
    unknown: list[dict[str, object]] = field(default_factory=list)

    def record(self, row: Row, result: SendResult) -> None:
        if result.status == "unknown":
            self.unknown.append({"row": row.number, "idempotency_key": row.idempotency_key})
            return
        self.by_endpoint[result.endpoint] += 1
        if result.attempts and result.attempts[-1].outcome == "replayed":
            self.replayed += 1

    def record_failure(self, row: Row, exc: SmsFailoverError) -> None:
        failure: dict[str, object] = {"row": row.number, "idempotency_key": row.idempotency_key}
        if isinstance(exc, MessageRejected):
            failure.update(code=exc.code, status=exc.status, field=exc.field)
        else:
            failure["code"] = "send_failed"
        failure["message"] = str(exc)
        self.failed.append(failure)

    def as_dict(self) -> dict[str, object]:
        return {
            "broadcast_id": self.broadcast_id,
            "rows": self.rows,
            "sent": sum(self.by_endpoint.values()),
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "replayed": self.replayed,
            "failed": sorted(self.failed, key=lambda f: int(str(f["row"]))),
            "unknown": sorted(self.unknown, key=lambda u: int(str(u["row"]))),
        }

    def exit_code(self) -> Exit:
        if self.failed:
            statuses = {f.get("status") for f in self.failed}
            return Exit.CONFIG if statuses <= AUTH_STATUSES else Exit.SEND_FAILED
        return Exit.UNKNOWN if self.unknown else Exit.OK


def row_key(broadcast_id: str, number: int) -> str:
    """The default per-row idempotency key: stable for a broadcast id and row, so a re-run replays."""
    digest = hashlib.sha256(f"{broadcast_id}\x00{number}".encode()).hexdigest()
    return f"bc_{digest[:40]}"


def read_rows(path: Path, broadcast_id: str) -> list[Row]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse_rows(handle, broadcast_id)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path} is not a readable UTF-8 CSV file: {exc}") from None


def _parse_rows(handle: TextIO, broadcast_id: str) -> list[Row]:
    reader = csv.DictReader(handle)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in CSV_REQUIRED if name not in header]
    unknown = [name for name in header if name not in (*CSV_REQUIRED, *CSV_OPTIONAL)]
    if missing or unknown:
        wanted = ",".join(CSV_REQUIRED)
        raise UsageError(
            f"the CSV needs a header row with {wanted} (optional: {','.join(CSV_OPTIONAL)}); "
            f"missing {missing or 'nothing'}, unexpected {unknown or 'nothing'}"
        )
    reader.fieldnames = header
    rows = []
    for number, record in enumerate(reader, start=1):
        if None in record:
            raise UsageError(f"row {number} has more fields than the header")
        values = {name: (value or "").strip() for name, value in record.items()}
        rows.append(
            Row(
                number=number,
                to=values["to"],
                content=record.get("content") or None,
                contact_id=values.get("contact_id") or None,
                media_urls=tuple(values.get("media_url", "").split()),
                idempotency_key=values.get("idempotency_key") or row_key(broadcast_id, number),
            )
        )
    return rows


def _default_broadcast_id(path: Path) -> str:
    """Without --broadcast-id the file's content names the run: re-running one file sends nothing twice."""
    try:
        return "file-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


async def _broadcast(client: FailoverClient, args: argparse.Namespace) -> int:
    broadcast_id = args.broadcast_id or _default_broadcast_id(args.csv_path)
    rows = read_rows(args.csv_path, broadcast_id)
    client.token_for(args.workspace)  # a missing token is a configuration error before any row is sent
    summary = BroadcastSummary(broadcast_id, rows=len(rows))
    semaphore = asyncio.Semaphore(args.concurrency)

    with _progress(len(rows)) as advance:

        async def one(row: Row) -> None:
            async with semaphore:
                try:
                    result = await client.send_message(
                        to=row.to,
                        content=row.content,
                        workspace_id=args.workspace,
                        contact_id=row.contact_id,
                        media_urls=row.media_urls or None,
                        idempotency_key=row.idempotency_key,
                    )
                except (MessageRejected, SendFailed) as exc:
                    summary.record_failure(row, exc)
                else:
                    summary.record(row, result)
                advance()

        await asyncio.gather(*(one(row) for row in rows))
    _show(args, summary.as_dict(), _summary_text)
    return int(summary.exit_code())


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise (keeps pipes and logs clean)."""
    from rich.console import Console  # the cli extra, imported only here
    from rich.progress import Progress

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda: None
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("sending", total=total)
        yield lambda: bar.advance(task)


# -- output --------------------------------------------------------------------------------------------------


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _show(args: argparse.Namespace, value: dict[str, Any], text: Any) -> int:
    if args.json:
        _print_json(value)
    else:
        print(text(value))
    return int(Exit.OK)


def _result_text(result: dict[str, Any]) -> str:
    if result["status"] == "unknown":
        return (
            f"unknown outcome via {result['endpoint']} (key {result['idempotency_key']}): "
            "not re-sent; check the message list before retrying with a new key"
        )
    refresh = " (refresh message lists)" if result["requires_refresh"] else ""
    return (
        f"{result['status']} {result['message_id']} via {result['endpoint']}{refresh}; "
        f"{result['segments']} segment(s) {result['encoding']}, key {result['idempotency_key']}, "
        f"{result['latency_ms']:.0f} ms"
    )


def _status_text(status: dict[str, Any]) -> str:
    lines = [
        f"workspace {status.get('workspace_id')}: "
        f"failover {'enabled' if status.get('enabled') else 'disabled'}"
        f", ledger {status.get('ledger', '?')}, origin {'up' if status.get('origin_reachable') else 'down'}",
        f"breaker (this client): {status['breaker']['state']}",
    ]
    for name, endpoint in sorted((status.get("endpoints") or {}).items()):
        if isinstance(endpoint, dict):
            lines.append(
                f"  {name}: healthy={endpoint.get('healthy')} requests={endpoint.get('requests')} "
                f"success_rate={endpoint.get('success_rate')} p95_ms={endpoint.get('p95_ms')}"
            )
    return "\n".join(lines)


def _unknowns_text(listing: dict[str, Any]) -> str:
    rows = listing.get("data") or []
    if not rows:
        return f"workspace {listing.get('workspace_id')}: no unknown outcomes"
    lines = [f"workspace {listing.get('workspace_id')}: {len(rows)} unknown outcome(s)"]
    for row in rows:
        checked = f", checked {row['checked_at']}" if row.get("checked_at") else ""
        detail = f": {row['detail']}" if row.get("detail") else ""
        lines.append(f"  {row['id']}  key {row['idempotency_key']}  {row['resolution']}{detail}{checked}")
    return "\n".join(lines)


def _settings_text(settings: dict[str, Any]) -> str:
    state = "enabled" if settings.get("sms_failover_enabled") else "disabled"
    return f"workspace {settings.get('workspace_id')}: SMS failover {state}"


def _reset_text(value: dict[str, Any]) -> str:
    if value.get("shared"):
        return (
            f"shared circuit breaker for {value['origin_url']} closed for every process (SMSFAILOVER_BREAKER_REDIS_URL)"
        )
    return f"circuit breaker for {value['origin_url']} closed (breakers live in each client process)"


def _summary_text(summary: dict[str, Any]) -> str:
    endpoints = ", ".join(f"{name} {count}" for name, count in summary["by_endpoint"].items()) or "none"
    lines = [
        f"broadcast {summary['broadcast_id']}: {summary['rows']} rows, sent {summary['sent']} ({endpoints}), "
        f"{summary['replayed']} already sent before, {len(summary['failed'])} failed, "
        f"{len(summary['unknown'])} unknown"
    ]
    lines += [f"  row {f['row']}: failed {f['code']}: {f['message']}" for f in summary["failed"]]
    lines += [f"  row {u['row']}: unknown outcome (key {u['idempotency_key']})" for u in summary["unknown"]]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
