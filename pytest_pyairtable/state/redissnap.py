"""A Redis service's dataset, snapshotted once and put back before a test.

Snapshot: every key of every logical database, ``DUMP`` with its ``PTTL``. Restore, in
one ``MULTI``/``EXEC`` (other clients see the old dataset or the new, never half):
``SELECT n`` + ``FLUSHDB`` for each database that has keys, then ``RESTORE`` of every
snapshotted key, its TTL counting again from the reset. The commands are encoded once,
at the snapshot, and sent in one write. Measured against the alternatives in
benchmarks/reset.py: ``DEBUG RELOAD`` is faster on big datasets but is disabled by
default since Redis 7 and reloads whatever RDB file the server last wrote; restarting
from an RDB file drops every client. ``FLUSHDB``, not ``FLUSHALL``: with save points
set, FLUSHALL also writes an RDB file.

Clients stay connected (their pub/sub subscriptions, client names, blocked BLPOPs);
config, ACL users, scripts and functions are not part of the dataset and stay as they
are.
"""

from __future__ import annotations

import base64
from typing import Any

from ..support.errors import ResetError

Entry = tuple[bytes, int, bytes]  # key, TTL in ms (0: none), DUMP payload


class RedisSnapshot:
    def __init__(self, service: str, url: str, key: str) -> None:
        self.service = service
        self.url = url
        self.key = key
        self.entries: dict[int, list[Entry]] = {}
        self._body = b""
        self._count = 0
        self._conn: Any = None

    def _pool(self, db: int | None = None) -> Any:
        """The URL's connection settings; ``db`` replaces the URL's own database."""
        import redis

        pool = redis.ConnectionPool.from_url(
            self.url, decode_responses=False, socket_timeout=60, socket_connect_timeout=10
        )
        if db is None:
            return pool
        options = {**pool.connection_kwargs, "db": db}
        return redis.ConnectionPool(connection_class=pool.connection_class, **options)

    def _client(self, db: int | None = None) -> Any:
        import redis

        return redis.Redis(connection_pool=self._pool(db))

    def _fail(self, what: str, exc: Exception) -> ResetError:
        return ResetError(f"service '{self.service}': {what} failed: {exc}")

    def take(self) -> None:
        import redis

        try:
            entries: dict[int, list[Entry]] = {}
            for db in self._databases():
                client = self._client(db)
                try:
                    keys = list(client.scan_iter(count=1000))
                    pipe = client.pipeline(transaction=False)
                    for key in keys:
                        pipe.pttl(key)
                        pipe.dump(key)
                    replies = pipe.execute()
                finally:
                    client.close()
                pairs = zip(replies[::2], replies[1::2], strict=True)
                entries[db] = [
                    (key, max(int(ttl), 0), payload)
                    for key, (ttl, payload) in zip(keys, pairs, strict=True)
                    if payload is not None and ttl != -2  # gone since the scan
                ]
        except redis.RedisError as exc:
            raise self._fail("the snapshot (DUMP of every key)", exc) from None
        self.load(entries)

    def load(self, entries: dict[int, list[Entry]]) -> None:
        self.entries = entries
        commands: list[tuple[Any, ...]] = []
        for db, items in sorted(entries.items()):
            commands.append(("SELECT", db))
            commands.extend(("RESTORE", key, ttl, payload) for key, ttl, payload in items)
        pool = self._pool()
        packer = pool.connection_class(**pool.connection_kwargs)
        self._body = b"".join(packer.pack_commands(commands)) if commands else b""
        self._count = len(commands)

    def _databases(self) -> list[int]:
        """The logical databases that have keys now (INFO keyspace lists only those)."""
        client = self._client()
        try:
            return sorted(int(name[2:]) for name in client.info("keyspace"))
        finally:
            client.close()

    def restore(self) -> None:
        import redis

        try:
            try:
                results = self._exchange()
            except (redis.ConnectionError, redis.TimeoutError):
                self.close()  # the server was restarted (a fault test): once more, anew
                results = self._exchange()
        except redis.RedisError as exc:
            self.close()
            raise self._fail("the restore (FLUSHDB and RESTORE)", exc) from None
        errors = [r for r in results or () if isinstance(r, Exception)]
        if results is None or errors:
            raise ResetError(
                f"service '{self.service}': the restore transaction failed: "
                f"{errors[0] if errors else 'EXEC was aborted'}"
            )

    def _exchange(self) -> Any:
        """INFO keyspace, then the transaction in one write; on a connection kept
        between resets (a new one costs more than a small restore)."""
        if self._conn is None:
            pool = self._pool()
            self._conn = pool.connection_class(**pool.connection_kwargs)
        conn = self._conn
        conn.send_command("INFO", "keyspace")
        info = conn.read_response()
        text = info.decode() if isinstance(info, bytes) else str(info)
        now = {
            int(line[2:].split(":", 1)[0]) for line in text.splitlines() if line.startswith("db")
        }
        flush: list[tuple[Any, ...]] = []
        for db in sorted(now | set(self.entries)):
            flush += [("SELECT", db), ("FLUSHDB",)]
        head = b"".join(conn.pack_commands([("MULTI",), *flush]))
        tail = b"".join(conn.pack_commands([("EXEC",)]))
        conn.send_packed_command([head, self._body, tail])
        for _ in range(1 + len(flush) + self._count):
            conn.read_response()  # +OK, then +QUEUED each
        return conn.read_response()

    # -- an xdist worker's own logical databases -----------------------------------

    def copy_into(self, numbers: dict[int, int], *, fresh: bool) -> None:
        """Each snapshotted database ``shared`` put into database ``numbers[shared]`` (a
        worker's), in one MULTI: flushed, then every key restored. ``fresh``: the first
        time, when a database that already holds keys is not ours to flush."""
        import redis

        pool = self._pool()
        conn = pool.connection_class(**pool.connection_kwargs)
        try:
            if fresh:
                for target in numbers.values():
                    conn.send_packed_command(conn.pack_commands([("SELECT", target), ("DBSIZE",)]))
                    conn.read_response()
                    if int(conn.read_response()):
                        raise ResetError(
                            f"service '{self.service}': its logical database {target}, meant "
                            "for an xdist worker, holds keys this run did not put there. Fix: "
                            "give the server more databases (`--databases 64` in its command) "
                            "or run with --pyairtable-shared-db."
                        )
            commands: list[tuple[Any, ...]] = [("MULTI",)]
            for shared, target in sorted(numbers.items()):
                commands += [("SELECT", target), ("FLUSHDB",)]
                commands += [("RESTORE", k, ttl, v) for k, ttl, v in self.entries.get(shared, [])]
            commands.append(("EXEC",))
            conn.send_packed_command(conn.pack_commands(commands))
            for _ in commands[:-1]:
                conn.read_response()
            results = conn.read_response()
        except redis.RedisError as exc:
            raise self._fail("the copy for an xdist worker (FLUSHDB and RESTORE)", exc) from None
        finally:
            conn.disconnect()
        errors = [r for r in results or () if isinstance(r, Exception)]
        if results is None or errors:
            raise ResetError(
                f"service '{self.service}': the copy for an xdist worker failed: "
                f"{errors[0] if errors else 'EXEC was aborted'}"
            )

    def flush(self, numbers: list[int]) -> None:
        """Empty the workers' databases this run filled (the end of the run)."""
        if not numbers:
            return
        client = self._client()
        try:
            pipe = client.pipeline(transaction=False)
            for number in numbers:
                pipe.execute_command("SELECT", number)
                pipe.execute_command("FLUSHDB")
            pipe.execute()
        finally:
            client.connection_pool.disconnect()  # its connection has another database selected

    def close(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None

    # -- a kept stack's snapshot outlives the run, in a file -----------------------

    def to_json(self) -> dict[str, Any]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        return {
            str(db): [[b64(key), ttl, b64(payload)] for key, ttl, payload in items]
            for db, items in self.entries.items()
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self.load(
            {
                int(db): [
                    (base64.b64decode(key), int(ttl), base64.b64decode(payload))
                    for key, ttl, payload in items
                ]
                for db, items in data.items()
            }
        )
