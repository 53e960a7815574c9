"""The sockets a process listens on, read from `/proc` (what `ss -ltunp` shows of it)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The socket tables of /proc/PID/net, and the state that makes a socket a listener in each:
# TCP_LISTEN for TCP, TCP_CLOSE (unconnected, bound) for UDP.
_TABLES = {"tcp": "0A", "tcp6": "0A", "udp": "07", "udp6": "07"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Listener:
    pid: int
    protocol: str  # tcp, tcp6, udp, udp6
    address: IPAddress
    port: int

    @property
    def on_loopback(self) -> bool:
        return self.address.is_loopback

    def __str__(self) -> str:
        return f"{self.protocol} {self.address}:{self.port} (pid {self.pid})"


def _address(hex_address: str) -> IPAddress:
    """/proc/net's hex address, 32-bit words in the host's (little-endian) byte order; an
    IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, a Java socket's) as the IPv4 address."""
    raw = bytes.fromhex(hex_address)
    address = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open; none when it is gone."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listeners(pids: Iterable[int]) -> list[Listener]:
    """Every TCP socket in LISTEN state and every bound, unconnected UDP socket that one of
    `pids` holds."""
    found = []
    for pid in pids:
        inodes = socket_inodes(pid)
        for table, listening in _TABLES.items():
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local, state, inode = fields[1], fields[3], int(fields[9])
                if state == listening and inode in inodes:
                    address, port = local.split(":")
                    found.append(Listener(pid, table, _address(address), int(port, 16)))
    return found
