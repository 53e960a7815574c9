"""The latest store on Redis: one hash of records, a sorted set of changes, a version counter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import cast

import redis

from bethos.exceptions import StoreError
from connectors.store.base import Change, StoreEntry, check_limit

# Entries per script call: each is atomic, a larger write is several calls in order.
MAX_ENTRIES_PER_CALL = 5_000

# KEYS: records, changes, version. ARGV: (vin, "1" with a value | "0" for a tombstone, value)...
WRITE_SCRIPT = """
local version = 0
for i = 1, #ARGV, 3 do
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


class RedisStore:
    """`LatestStore` on Redis: hash `P:records`, sorted set `P:changes`, counter `P:version`."""

    def __init__(self, url: str, key_prefix: str, password: str | None = None) -> None:
        self._secrets = [password] if password else []
        try:
            self._client = redis.Redis.from_url(
                url, password=password, socket_timeout=5, socket_connect_timeout=5
            )
        except ValueError as exc:
            raise StoreError(self._redact(f"redis url is invalid: {exc}")) from None
        options = self._client.connection_pool.connection_kwargs
        if options.get("password"):  # one given in the URL wins over `password`
            self._secrets.append(str(options["password"]))
        where = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        self._where = f"redis at {where}"
        self._records = f"{key_prefix}:records"
        self._changes = f"{key_prefix}:changes"
        self._version = f"{key_prefix}:version"
        # Script objects run EVALSHA and load the script again on NOSCRIPT.
        self._write_script = self._client.register_script(WRITE_SCRIPT)
        self._changes_script = self._client.register_script(CHANGES_SCRIPT)

    def write(self, entries: Sequence[StoreEntry]) -> int:
        version = 0
        keys = [self._records, self._changes, self._version]
        for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
            args: list[str | bytes] = []
            for vin, value in entries[start : start + MAX_ENTRIES_PER_CALL]:
                args += (vin, "0", b"") if value is None else (vin, "1", value)
            with self._failing("write"):
                version = int(self._write_script(keys=keys, args=args))
        return version

    def changes_since(self, cursor: int, limit: int) -> list[Change]:
        check_limit(limit)
        with self._failing("read changes"):
            reply = self._changes_script(
                keys=[self._records, self._changes], args=[f"({cursor}", limit]
            )
        return [
            Change(reply[i].decode(), int(reply[i + 1]), reply[i + 2])
            for i in range(0, len(reply), 3)
        ]

    def get(self, vin: str) -> bytes | None:
        with self._failing("get"):
            return cast("bytes | None", self._client.hget(self._records, vin))

    def count(self) -> int:
        with self._failing("count"):
            return cast(int, self._client.hlen(self._records))

    def head(self) -> int:
        with self._failing("read the version"):
            return int(cast("bytes | None", self._client.get(self._version)) or 0)

    def close(self) -> None:
        with self._failing("close"):
            self._client.close()

    @contextlib.contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StoreError(self._redact(f"{self._where}: {what} failed: {exc}")) from None

    def _redact(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message
