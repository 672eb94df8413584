"""Framing: every message between the host, the server, the judge, the zygote and a candidate
is a 4-byte big-endian length and the payload; every read can have a deadline. Standard
library only: the host imports this module and the sandbox runs its text (see docs/sandbox.md)."""

from __future__ import annotations

import math
import os
import select
import struct
import time
from collections.abc import Callable, Sequence

MAX_FRAME = 256 << 20
"""Largest message accepted from a trusted peer (bytes)."""

# BOOTSTRAP reads frames with its own few lines: it runs before any module exists (it is what
# receives them), so it cannot use this one.
BOOTSTRAP = (
    "import os,sys\n"
    "def _read(n):\n"
    "    b=b''\n"
    "    while len(b)<n:\n"
    "        c=os.read(0,n-len(b))\n"
    "        if not c: raise SystemExit(3)\n"
    "        b+=c\n"
    "    return b\n"
    "def _frame(): return _read(int.from_bytes(_read(4),'big'))\n"
    "__boundary_sources__=[_frame() for _ in range(int.from_bytes(_read(4),'big'))]\n"
    "for _source in __boundary_sources__: exec(compile(_source,'<boundary-sandbox>','exec'))\n"
)
"""What ``python -S -c`` runs: read a count, then that many sources (``bundle``) from fd 0, and
run them in order in one namespace, keeping their text (the server starts the zygote with the
first few). The host writes the sources, then waits for the server's first message before
writing anything else, so nothing meant for the server is consumed here."""


class Closed(Exception):
    """The other end closed the channel (or died)."""


class Timeout(Exception):
    """Nothing complete arrived before the deadline."""


class TooLarge(Exception):
    """A message above the size limit."""


_LEN = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    """``payload`` with its length in front."""
    return _LEN.pack(len(payload)) + payload


def bundle(sources: Sequence[bytes]) -> bytes:
    """What ``BOOTSTRAP`` reads: the number of sources, then each one framed."""
    return _LEN.pack(len(sources)) + b"".join(map(frame, sources))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Closed(str(exc)) from None


def send(fd: int, payload: bytes) -> None:
    write_all(fd, frame(payload))


def wait_readable(fd: int, deadline: float | None) -> None:
    """Return when ``fd`` has something to read (or was closed); Timeout at ``deadline``."""
    if deadline is None:
        return
    wait = deadline - time.monotonic()
    if wait <= 0:
        raise Timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    if not poller.poll(math.ceil(wait * 1000)):
        raise Timeout


def read_exact(fd: int, size: int, deadline: float | None = None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        wait_readable(fd, deadline)
        try:
            chunk = os.read(fd, min(remaining, 1 << 20))
        except InterruptedError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("end of stream")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(read: Callable[[int, float | None], bytes], deadline: float | None = None,
               limit: int | None = MAX_FRAME) -> bytes:
    """The next message, read with ``read(size, deadline)`` (a descriptor's ``read_exact``, or a
    host channel's); TooLarge above ``limit`` (None: no limit)."""
    (size,) = _LEN.unpack(read(4, deadline))
    if limit is not None and size > limit:
        raise TooLarge(f"message of {size} bytes (limit {limit})")
    return read(size, deadline)


def recv(fd: int, deadline: float | None = None, limit: int = MAX_FRAME) -> bytes:
    return read_frame(lambda size, when: read_exact(fd, size, when), deadline, limit)


class Reader:
    """Frames from one descriptor, read in large chunks: one poll and one read per message in
    the usual case. Only for a channel carrying strict request/answer traffic (it may read
    ahead), and never for one that also carries descriptors."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def frame(self, deadline: float | None = None, limit: int = MAX_FRAME) -> bytes:
        """The next message. One over ``limit`` is read and thrown away (within the deadline),
        then TooLarge is raised: the channel stays in step."""
        while True:
            if len(self.buffer) >= 4:
                size = int.from_bytes(self.buffer[:4], "big")
                if size > limit:
                    self._discard(4 + size, deadline)
                    raise TooLarge(f"a message of {size} bytes (limit {limit})")
                if len(self.buffer) >= 4 + size:
                    data = bytes(self.buffer[4:4 + size])
                    del self.buffer[:4 + size]
                    return data
                want = 4 + size - len(self.buffer)
            else:
                want = 4 - len(self.buffer)
            self._fill(deadline, max(want, 1 << 16))

    def _discard(self, size: int, deadline: float | None) -> None:
        while len(self.buffer) < size:
            size -= len(self.buffer)
            self.buffer.clear()
            self._fill(deadline, min(size, 1 << 24))
        del self.buffer[:size]

    def _fill(self, deadline: float | None, size: int) -> None:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not self.poller.poll(math.ceil(wait * 1000)):
                raise Timeout
        try:
            chunk = os.read(self.fd, min(size, 1 << 24))
        except InterruptedError:
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("end of stream")
        self.buffer += chunk
