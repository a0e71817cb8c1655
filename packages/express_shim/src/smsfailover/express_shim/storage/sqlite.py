"""SQLite for the origin: WAL, one writer thread that groups commits, reader threads on their own connections.

Why a writer thread: sqlite3 blocks, so nothing touches the database on the event loop. Why grouped commits:
each commit is an fsync; under load the writer takes every write that queued up while it was busy and commits
them together (each inside its own SAVEPOINT, so one failing statement fails only its own caller).
Why batched hand-offs: every crossing between the loop and a thread costs a GIL hand-over (measured: a
queue put per write took 0.2 ms under load; a read through a thread pool cost 0.1 ms of CPU, a batched one
0.015 ms). Writes issued in one loop iteration cross to the writer as one batch, reads to one reader thread as
another, and each batch's results come back in one call_soon_threadsafe.

Why synchronous=FULL: under WAL, NORMAL syncs only at checkpoints, so a power cut can take back a commit the
caller was told about (a claim, then the same message sent again after the restart). FULL syncs the WAL at every
commit; a group is one commit, so that is one sync per group, not per write.
Why a bound on pending writes: while the writer is held up (a slow disk, another process holding the write lock
for up to busy_timeout) every request would queue another write and wait, without limit. At `max_pending_writes`
a request's first write is refused at once, before anything is queued (StorageBusy: 503 storage_busy with
Retry-After), and the client fails over or retries. Writes already queued are never dropped, and a request whose
first write was taken is never refused a later one (storage/admission.py): a send's settle or release gets through.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar, cast

from smsfailover.express_shim.storage.admission import current_admission
from smsfailover.express_shim.storage.base import Params, Statement, StorageBusy, is_read_only

_MAX_GROUP = 256  # writes per commit, so one busy burst cannot hold every caller forever
_READERS = 4
# Writes queued or being committed before a request's first write is refused. Measured here, 2,048 queued writes
# commit in under 0.1 s (FULL), so one taken at the bound lands far inside the client's 2 s origin timeout. Each
# waiting request holds at most one write, so the queue reaches this only when the writer is stalled (a slow disk,
# a lock held elsewhere), never under benchmark 3's 32 clients; a longer queue would hold callers that gave up.
MAX_PENDING_WRITES = 2048


T = TypeVar("T")


@dataclass(slots=True)
class _Job(Generic[T]):
    run: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


@dataclass(slots=True)
class _Outcome:
    job: _Job[object]
    value: object = None
    error: BaseException | None = None


def sqlite_path(url: str) -> str:
    """`sqlite:///var/x.db` -> `var/x.db` (relative), `sqlite:////abs/x.db` -> `/abs/x.db`."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    return url[len("sqlite:///") :]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, object]]:
    return [dict(row) for row in cursor.fetchall()]


class _Lane:
    """Jobs issued in one loop iteration, handed to the thread(s) serving this lane as one batch."""

    def __init__(self) -> None:
        self.batches: queue.SimpleQueue[list[_Job[object]] | None] = queue.SimpleQueue()
        self._pending: list[_Job[object]] = []  # this loop iteration's jobs, not yet handed over

    def add(self, job: _Job[object]) -> None:
        if not self._pending:
            job.loop.call_soon(self.hand_over)
        self._pending.append(job)

    def hand_over(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self.batches.put(batch)


class SqliteDatabase:
    dialect: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, path: str, *, max_pending_writes: int = MAX_PENDING_WRITES) -> None:
        if max_pending_writes < 1:
            raise ValueError(f"max_pending_writes must be at least 1, not {max_pending_writes}")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = _connect(path)
        self._writer.execute("PRAGMA journal_mode = WAL")
        self._writer.execute("PRAGMA synchronous = FULL")  # WAL + FULL: every commit is on disk when it returns
        self.max_pending_writes = max_pending_writes
        self._pending_writes = 0  # issued and not yet committed (or failed); changed on the loop and the writer
        self._pending_lock = threading.Lock()
        self._writes, self._reads = _Lane(), _Lane()
        self._thread = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._thread.start()
        # Several readers, so one long read (a status page's window) holds up only the batch it came with.
        self._readers = [
            threading.Thread(target=self._read_loop, name=f"sqlite-reader-{n}", daemon=True) for n in range(_READERS)
        ]
        for reader in self._readers:
            reader.start()
        self._closed = False
        self.commits = 0  # grouped commits so far (observability and tests)

    @classmethod
    def from_url(cls, url: str, *, max_pending_writes: int = MAX_PENDING_WRITES) -> SqliteDatabase:
        return cls(sqlite_path(url), max_pending_writes=max_pending_writes)

    @property
    def pending_writes(self) -> int:
        """Writes issued and not yet committed or failed (observability and tests)."""
        return self._pending_writes

    # -- the SqlExecutor seam ------------------------------------------------------------------------------
    async def fetch(self, sql: str, params: Params = ()) -> list[dict[str, object]]:
        frozen = tuple(params)
        if is_read_only(sql):
            return await self._submit(self._reads, lambda conn: _rows(conn.execute(sql, frozen)))
        return await self._submit(self._writes, lambda conn: _rows(conn.execute(sql, frozen)))

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._submit(self._writes, lambda conn: conn.execute(sql, tuple(params)).rowcount)

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        frozen = [(sql, tuple(params)) for sql, params in statements]
        return await self._submit(self._writes, lambda conn: [conn.execute(sql, p).rowcount for sql, p in frozen])

    async def script(self, sql: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for statement in split_statements(sql):
                conn.execute(statement)

        await self._submit(self._writes, run)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writes.hand_over()  # writes and reads issued in this loop iteration still happen
        self._reads.hand_over()
        self._writes.batches.put(None)
        for _reader in self._readers:
            self._reads.batches.put(None)
        await asyncio.to_thread(self._thread.join, 30)
        for reader in self._readers:
            await asyncio.to_thread(reader.join, 30)

    # -- internals -------------------------------------------------------------------------------------------
    def _admit_write(self) -> None:
        """Count the write in, or refuse it (before anything is queued) when the bound is reached, unless its request
        already had a write taken: that one finishes work that was accepted."""
        admission = current_admission()
        with self._pending_lock:
            if self._pending_writes >= self.max_pending_writes and not (admission and admission.admitted):
                raise StorageBusy(self._pending_writes, self.max_pending_writes)
            self._pending_writes += 1
        if admission is not None:
            admission.admitted = True

    async def _submit(self, lane: _Lane, run: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if lane is self._writes:
            self._admit_write()
        lane.add(cast("_Job[object]", _Job(run, future, loop)))
        return await future

    def _read_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        while (batch := self._reads.batches.get()) is not None:
            try:
                conn = conn or _connect(self.path)  # on first use, so a failure reaches the callers
            except Exception as exc:
                self._deliver([_Outcome(job, error=exc) for job in batch])
                continue
            self._deliver([_run_read(conn, job) for job in batch])
        if conn is not None:
            conn.close()

    def _write_loop(self) -> None:
        while True:
            first = self._writes.batches.get()
            if first is None:
                break
            group = list(first)
            stop = False
            while len(group) < _MAX_GROUP:
                try:
                    nxt = self._writes.batches.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.extend(nxt)
            try:
                outcomes = self._run_group(group)
            finally:
                with self._pending_lock:
                    self._pending_writes -= len(group)
            self._deliver(outcomes)
            if stop:
                break
        self._writer.close()

    @staticmethod
    def _deliver(outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome.job.loop, []).append(outcome)
        for loop, mine in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(_resolve, mine)

    def _run_group(self, group: list[_Job[object]]) -> list[_Outcome]:
        conn = self._writer
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.run(conn)
                except Exception as exc:  # this caller's failure only: undo its statements, keep the rest
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append(_Outcome(job, error=exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append(_Outcome(job, value))
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # the commit itself failed: nobody's write happened
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [_Outcome(job, error=exc) for job in group]
        return outcomes


def _run_read(conn: sqlite3.Connection, job: _Job[object]) -> _Outcome:
    try:
        return _Outcome(job, job.run(conn))
    except Exception as exc:  # this caller's failure only
        return _Outcome(job, error=exc)


def _resolve(outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        future = outcome.job.future
        if future.done():  # its caller was cancelled; the write itself still happened
            continue
        if outcome.error is None:
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome.error)


def split_statements(sql: str) -> list[str]:
    """Split a DDL script on `;` (migrations hold no semicolons inside literals)."""
    return [part.strip() for part in sql.split(";") if part.strip() and not _only_comments(part)]


def _only_comments(part: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in part.splitlines())
