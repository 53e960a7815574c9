"""Reading a process's listening sockets from /proc, against real sockets."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

from devstack.stack.sockets import listeners

# Listens on the wildcard (TCP), loopback (TCP, both families) and binds a UDP socket; one TCP
# socket is connected, not listening; prints the ports in that order.
SOCKETS = """
import socket, time
made = []
def sock(family, kind, address):
    s = socket.socket(family, kind)
    s.bind(address)
    if kind == socket.SOCK_STREAM:
        s.listen()
    made.append(s)
    return s
sock(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 0))
sock(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 0))
sock(socket.AF_INET6, socket.SOCK_STREAM, ("::1", 0))
sock(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 0))
client = socket.create_connection(made[1].getsockname())
print(" ".join(str(s.getsockname()[1]) for s in made), flush=True)
time.sleep(60)
"""


def test_every_listening_socket_of_a_process_with_its_address() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SOCKETS], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        wildcard, loopback, loopback6, udp = map(int, proc.stdout.readline().split())
        found = {
            (lst.protocol, str(lst.address), lst.port, lst.on_loopback)
            for lst in listeners([proc.pid])
        }
    finally:
        proc.kill()
        proc.wait()
    assert found == {
        ("tcp", "0.0.0.0", wildcard, False),
        ("tcp", "127.0.0.1", loopback, True),
        ("tcp6", "::1", loopback6, True),
        ("udp", "127.0.0.1", udp, True),
    }
    assert listeners([proc.pid]) == []  # gone


def test_an_ipv4_mapped_address_reads_as_ipv4() -> None:
    from devstack.stack.sockets import _address

    assert _address("0000000000000000FFFF00000100007F") == ipaddress.ip_address("127.0.0.1")
    assert _address("00000000000000000000000000000000") == ipaddress.ip_address("::")
    assert _address("0100007F") == ipaddress.ip_address("127.0.0.1")
