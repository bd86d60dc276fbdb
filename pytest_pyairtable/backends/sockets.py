"""Who listens on a TCP port of this machine: whether what answered a probe is the
service the run started, and who holds a port that is taken.

The listening sockets, with their inodes, come from the kernel's socket diagnostics
(netlink ``SOCK_DIAG``, asked for listeners only: ~0.1 ms), or else from /proc/net/tcp
and tcp6 (state 0A), which the kernel builds by walking every socket's hash bucket
(~50 ms each on a machine with a thousand sockets in TIME_WAIT). A process holds a
socket when one of its /proc/<pid>/fd links reads ``socket:[<inode>]``. Checking a
service's own processes reads only their descriptors; naming an unknown holder reads
every process's, and is done only for an error.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

from .procfs import markers

_LISTEN = "0A"


def _address(hexed: str, v6: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hexed)
    if v6:  # four host-order 32-bit words
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        return ipaddress.IPv6Address(raw)
    return ipaddress.IPv4Address(raw[::-1])


def _accepts(listen: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> bool:
    """Whether a socket listening on ``listen`` takes a connection to ``host``."""
    if listen.is_unspecified:
        return True
    if isinstance(listen, ipaddress.IPv6Address) and listen.ipv4_mapped is not None:
        listen = listen.ipv4_mapped
    try:
        return listen == ipaddress.ip_address(host)
    except ValueError:
        return False


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_REQUEST = struct.Struct("=BBBBI48s")  # inet_diag_req_v2: family, protocol, ext, pad, states, id
_MESSAGE = struct.Struct("=BBBB2s2s16s16sIQIIIII")  # inet_diag_msg


def _diag_listeners() -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, int]]:
    """(address, port, inode) of every listening TCP socket, from the kernel's socket
    diagnostics; raises OSError where they cannot be had."""
    found = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
        for family in (socket.AF_INET, socket.AF_INET6):
            request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN, b"")
            header = _HEADER.pack(
                _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP,
                family, 0,
            )  # fmt: skip
            diag.sendto(header + request, (0, 0))
            done = False
            while not done:
                data = diag.recv(1 << 16)
                offset = 0
                while offset + _HEADER.size <= len(data):
                    length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
                    if kind == _NLMSG_DONE:
                        done = True
                        break
                    if kind == _NLMSG_ERROR or length < _HEADER.size:
                        raise OSError("socket diagnostics refused the request")
                    fields = _MESSAGE.unpack_from(data, offset + _HEADER.size)
                    sport, src, inode = fields[4], fields[6], fields[-1]
                    raw = src[:4] if family == socket.AF_INET else src
                    address = ipaddress.ip_address(raw)
                    found.append((address, int.from_bytes(sport, "big"), inode))
                    offset += (length + 3) & ~3
    return found


def listeners(port: int, host: str = "127.0.0.1") -> set[int]:
    """Inodes of the sockets listening on ``port`` that a connection to ``host`` can
    reach (this network namespace's)."""
    try:
        return {
            inode
            for address, bound, inode in _diag_listeners()
            if bound == port and inode and _accepts(address, host)
        }
    except OSError:
        return _table_listeners("/proc/net", port, host)  # no netlink diagnostics here


def listening_in(pid: int, port: int, host: str = "127.0.0.1") -> bool:
    """Whether a socket of ``pid``'s network namespace (a container's) listens on
    ``port`` for ``host``: the kernel's tables of that namespace, small unless it is the
    host's."""
    return bool(_table_listeners(f"/proc/{pid}/net", port, host))


def _table_listeners(net: str, port: int, host: str) -> set[int]:
    found = set()
    for table, v6 in ((f"{net}/tcp", False), (f"{net}/tcp6", True)):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                address, _, hexport = local.partition(":")
                wanted = state == _LISTEN and int(hexport, 16) == port and inode != "0"
                if wanted and _accepts(_address(address, v6), host):
                    found.add(int(inode))
    return found


def sockets_of(pids: Iterable[int]) -> set[int]:
    """Inodes of the sockets the processes ``pids`` hold."""
    found = set()
    for pid in pids:
        fds = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fds):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"{fds}/{fd}")
                    if link.startswith("socket:["):
                        found.add(int(link[8:-1]))
    return found


def holders(inodes: set[int]) -> list[int]:
    """The processes that hold any of the sockets ``inodes`` (those visible to us)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and sockets_of([int(entry)]) & inodes:
            found.append(int(entry))
    return sorted(found)


def describe(pid: int) -> str:
    """``pid 123 (postgres -D /x; service 'db' of pytest-pyairtable run R)``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        command = " ".join(a.decode(errors="replace") for a in argv if a)[:120]
    except OSError:
        command = "?"
    marked = markers(pid)
    if marked is not None:
        run, service = marked
        whose = f"service '{service}' of" if service else "a helper of"
        command += f"; {whose} pytest-pyairtable run {run}"
    return f"pid {pid} ({command})"


def holder_of(port: int, host: str = "127.0.0.1", *, inodes: set[int] | None = None) -> str:
    """Who holds ``port``, said for an error message."""
    found = holders(inodes if inodes is not None else listeners(port, host))
    if not found:
        return "a process this user cannot see (another user's, or another namespace's)"
    return ", ".join(describe(pid) for pid in found[:3])


def foreign_listeners(port: int, host: str, pids: Iterable[int]) -> set[int] | None:
    """The sockets listening on ``port`` (for ``host``) that ``pids`` do not hold:
    empty when all are theirs, None when nothing listens there."""
    listening = listeners(port, host)
    if not listening:
        return None
    return listening - sockets_of(pids)


def namespace_pids(pid: int) -> set[int] | None:
    """The processes in ``pid``'s PID namespace (a container's), or None when it is this
    process's own (``pid: host``: nothing sets the container's apart)."""
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/pid")
        if namespace == os.readlink("/proc/self/ns/pid"):
            return None
    except OSError:
        return set()  # gone
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.add(int(entry))
    return found
