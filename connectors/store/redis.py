"""The latest store on Redis: one hash of records, a sorted set of changes, a version counter and
an epoch.

Every key carries the prefix as a hash tag (`{prefix}:records`, ...): each script touches
several keys, which Redis Cluster accepts only when they hash to one slot. The epoch is a random
id the first write after the store was created (or wiped) sets: the publisher compares it with
the one it saw, so a wipe is noticed even after more writes than its cursor.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis
import redis.cluster

from bethos.exceptions import StoreError
from connectors.store.base import Change, StoreEntry, check_limit

# Entries per script call: each is atomic, a larger write is several calls in order.
MAX_ENTRIES_PER_CALL = 5_000

# KEYS: records, changes, version, epoch. ARGV: epoch if none is set, then
# (vin, "1" with a value | "0" for a tombstone, value)...
WRITE_SCRIPT = """
redis.call('SETNX', KEYS[4], ARGV[1])
local version = 0
for i = 2, #ARGV, 3 do
  local vin = ARGV[i]
  version = redis.call('INCR', KEYS[3])
  if ARGV[i + 1] == '1' then
    redis.call('HSET', KEYS[1], vin, ARGV[i + 2])
  else
    redis.call('HDEL', KEYS[1], vin)
  end
  redis.call('ZADD', KEYS[2], version, vin)
end
return version
"""

# KEYS: records, changes. ARGV: exclusive lower bound "(cursor", limit.
# Returns (vin, version, value | nil) triples. HMGET goes in slices: unpack() of thousands of
# fields overflows the Lua stack.
CHANGES_SCRIPT = """
local found = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf',
                         'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local vins = {}
for i = 1, #found, 2 do
  vins[#vins + 1] = found[i]
end
local out = {}
local n = 0
for first = 1, #vins, 1000 do
  local last = math.min(first + 999, #vins)
  local values = redis.call('HMGET', KEYS[1], unpack(vins, first, last))
  for k = first, last do
    out[n + 1] = vins[k]
    out[n + 2] = tonumber(found[2 * k])
    out[n + 3] = values[k - first + 1]
    n = n + 3
  end
end
return out
"""


class _Script:
    """A Lua script run by its digest (EVALSHA), loaded again when the server lost it.

    redis-py's `Script` retries once, after loading; a second SCRIPT FLUSH (or a failover to a
    replica without it) between the load and the call still failed. Then the text goes itself
    (EVAL), which needs no cache."""

    def __init__(self, client: redis.Redis, text: str) -> None:
        self._client = client
        self._text = text
        self._script = client.register_script(text)

    def __call__(self, keys: list[str], args: Sequence[str | bytes | int]) -> Any:
        try:
            return self._script(keys=keys, args=args)
        except redis.exceptions.NoScriptError:
            # Its stubs type the arguments as text; any encodable value goes.
            keys_and_args = cast("list[str]", [*keys, *args])
            return self._client.eval(self._text, len(keys), *keys_and_args)


def tagged_keys(key_prefix: str) -> tuple[str, str, str, str]:
    """The store's keys, in one Redis Cluster slot: records, changes, version, epoch."""
    tag = "{" + key_prefix + "}"
    return (f"{tag}:records", f"{tag}:changes", f"{tag}:version", f"{tag}:epoch")


class RedisConnection:
    """One client of a Redis server or Redis Cluster, shared by the stores (shards) on it."""

    def __init__(self, url: str, password: str | None = None, cluster: bool = False) -> None:
        self.secrets = [password] if password else []
        kind: type[redis.Redis] | type[redis.cluster.RedisCluster]
        kind = redis.cluster.RedisCluster if cluster else redis.Redis
        try:
            client = kind.from_url(
                url, password=password, socket_timeout=5, socket_connect_timeout=5
            )
        except ValueError as exc:
            raise StoreError(self.redact(f"redis url is invalid: {exc}")) from None
        except redis.RedisError as exc:
            raise StoreError(self.redact(f"redis cluster at {url}: {exc}")) from None
        self.client = client
        self.cluster = cluster
        if isinstance(client, redis.cluster.RedisCluster):
            node = client.get_default_node()
            options = node.redis_connection.connection_pool.connection_kwargs
        else:
            options = client.connection_pool.connection_kwargs
        if options.get("password"):  # one given in the URL wins over `password`
            self.secrets.append(str(options["password"]))
        where = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        self.where = f"redis{' cluster' if cluster else ''} at {where}"

    def redact(self, message: str) -> str:
        for secret in self.secrets:
            message = message.replace(secret, "***")
        return message

    @contextlib.contextmanager
    def failing(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StoreError(self.redact(f"{self.where}: {what} failed: {exc}")) from None

    def close(self) -> None:
        with self.failing("close"):
            self.client.close()


class RedisStore:
    """`LatestStore` on Redis: hash `{P}:records`, sorted set `{P}:changes`, counter
    `{P}:version`, string `{P}:epoch`; on one server, or on a Redis Cluster (`cluster`).
    Its shards share one connection; `connect` opens a store of its own."""

    def __init__(
        self, connection: RedisConnection, key_prefix: str, adopt_untagged: bool = True
    ) -> None:
        self._connection = connection
        self._client = client = connection.client
        self._failing = connection.failing
        self._records, self._changes, self._version, self._epoch = tagged_keys(key_prefix)
        # Before hash tags the keys were `P:records`, `P:changes`, `P:version` (one server only:
        # a cluster refused them); the first call renames a store of that layout.
        self._untagged = (
            None
            if connection.cluster or not adopt_untagged
            else [f"{key_prefix}:{name}" for name in ("records", "changes", "version")]
        )
        # redis-py's cluster client runs scripts too (its stubs type them for the plain client
        # only).
        scripts = cast("redis.Redis", client)
        self._write_script = _Script(scripts, WRITE_SCRIPT)
        self._changes_script = _Script(scripts, CHANGES_SCRIPT)

    @classmethod
    def connect(
        cls, url: str, key_prefix: str, password: str | None = None, cluster: bool = False
    ) -> RedisStore:
        return cls(RedisConnection(url, password, cluster), key_prefix)

    def _adopt_untagged(self) -> None:
        """Rename a store of the untagged layout, once; call it inside `_failing`."""
        if self._untagged is None:
            return
        old = self._untagged
        if not self._client.exists(self._version) and self._client.exists(old[2]):
            tagged = (self._records, self._changes, self._version)
            for before, after in zip(old, tagged, strict=True):
                if self._client.exists(before):
                    self._client.renamenx(before, after)
        self._untagged = None

    def write(self, entries: Sequence[StoreEntry]) -> int:
        version = 0
        keys = [self._records, self._changes, self._version, self._epoch]
        for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
            args: list[str | bytes] = [uuid.uuid4().hex]
            for vin, value in entries[start : start + MAX_ENTRIES_PER_CALL]:
                args += (vin, "0", b"") if value is None else (vin, "1", value)
            with self._failing("write"):
                self._adopt_untagged()
                version = int(self._write_script(keys=keys, args=args))
        return version

    def changes_since(self, cursor: int, limit: int) -> list[Change]:
        check_limit(limit)
        with self._failing("read changes"):
            self._adopt_untagged()
            reply = self._changes_script(
                keys=[self._records, self._changes], args=[f"({cursor}", limit]
            )
        return [
            Change(reply[i].decode(), int(reply[i + 1]), reply[i + 2])
            for i in range(0, len(reply), 3)
        ]

    def get(self, vin: str) -> bytes | None:
        with self._failing("get"):
            self._adopt_untagged()
            return cast("bytes | None", self._client.hget(self._records, vin))

    def count(self) -> int:
        with self._failing("count"):
            self._adopt_untagged()
            return cast(int, self._client.hlen(self._records))

    def head(self) -> int:
        with self._failing("read the version"):
            self._adopt_untagged()
            return int(cast("bytes | None", self._client.get(self._version)) or 0)

    def epoch(self) -> str:
        with self._failing("read the epoch"):
            self._adopt_untagged()
            return (cast("bytes | None", self._client.get(self._epoch)) or b"").decode()

    def close(self) -> None:
        self._connection.close()
