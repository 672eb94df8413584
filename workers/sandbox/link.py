"""The judge's link to the candidate: requests out (pickled: the judge's own data), answers back
in the tagged encoding, decoded as plain data; the stand-ins for what is not plain data (an
opaque value, the candidate's exception, its functions). Standard library only (run in the
server)."""

from __future__ import annotations

import builtins
import pickle
from typing import TYPE_CHECKING

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.candidate import REPLY_TAGS
    from boundary.workers.sandbox.compare import plain_loads
    from boundary.workers.sandbox.framing import Closed, Reader, Timeout, TooLarge, send
    from boundary.workers.sandbox.values import Undecodable
if TYPE_CHECKING:
    from boundary.workers.sandbox.judge import Judge


MAX_REPLY = 128 << 20
"""Largest answer the judge decodes from a candidate (bytes): a bigger one fails its test (and a
reference solution's is dropped, with a note)."""


class Gone(BaseException):
    """The candidate process died, or answered with something that is not an answer."""


class Slow(BaseException):
    """The candidate did not answer before the deadline."""


class Raised(Exception):
    """The candidate's function raised ``name`` (not a builtin exception type)."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name


def _reraise(name: str, message: str) -> BaseException:
    """The candidate's exception as the builtin type of that name when there is one, so test
    code that expects, say, a ValueError sees one."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
        try:
            error = kind(message)
            error.candidate_type = name  # type: ignore[attr-defined]
            return error
        except Exception:  # noqa: BLE001 - an exception type with a strange constructor
            pass
    return Raised(name, message)


class Link:
    """The judge's end of the socket to the candidate. Every answer is decoded as plain data."""

    def __init__(self, fd: int):
        self.fd = fd
        self.reader = Reader(fd)
        self.broken: BaseException | None = None

    def receive(self, deadline: float) -> tuple[bytes, bytes]:
        """The next answer: (tag, payload)."""
        if self.broken is not None:
            raise self.broken
        try:
            data = self.reader.frame(deadline, MAX_REPLY)
        except Timeout:
            self.broken = Slow()
            raise self.broken from None
        except TooLarge as exc:
            return b"T", str(exc).encode()
        except (Closed, OSError):
            self.broken = Gone("the candidate process died")
            raise self.broken from None
        tag = data[:1]
        if tag not in REPLY_TAGS:
            self.broken = Gone("answered out of protocol")
            raise self.broken
        return tag, data[1:]

    def send(self, message: tuple) -> None:
        if self.broken is not None:
            raise self.broken
        try:
            send(self.fd, pickle.dumps(message, protocol=5))
        except (Closed, OSError):
            self.broken = Gone("the candidate process died")
            raise self.broken from None

    def request(self, message: tuple, deadline: float) -> tuple[bytes, bytes]:
        self.send(message)
        return self.receive(deadline)

    def call(self, name: str, args: tuple, kwargs: dict, deadline: float) -> object:
        return self.answer(*self.request(("call", name, tuple(args), dict(kwargs)), deadline))

    def answer(self, tag: bytes, payload: bytes) -> object:
        """A call's result: the value, an Opaque stand-in, or the candidate's exception raised."""
        if tag == b"O":
            try:
                return plain_loads(payload)
            except Undecodable as exc:
                return Opaque(f"undecodable data ({exc})", None, "<undecodable>")
        if tag == b"T":
            return Opaque(f"{payload.decode()}: too large to compare", None, "<too large>")
        if tag in (b"R", b"U"):
            answer = self.decode(payload)
            if tag == b"R" and isinstance(answer, tuple) and len(answer) == 2:
                raise _reraise(str(answer[0]), str(answer[1]))
            if tag == b"U" and isinstance(answer, tuple) and len(answer) == 3 and answer[1] in (True, False, None):
                return Opaque(f"a {str(answer[0])[:200]} object", answer[1], str(answer[2])[:200])
        self.broken = Gone("answered out of protocol")
        raise self.broken

    def decode(self, payload: bytes) -> object:
        """A protocol message (not a return value): undecodable means the link is broken."""
        try:
            return plain_loads(payload)
        except Undecodable as exc:
            self.broken = Gone(f"answered with undecodable data ({exc})")
            raise self.broken from None


class Opaque:
    """Stands for a value the candidate returned that is not plain data (a ``re.Match``, an
    object of its own class): equal to nothing but itself, true or false as the candidate's
    process said (what returning True or False would have achieved), and otherwise unusable."""

    __slots__ = ("what", "truth", "text")

    def __init__(self, what: str, truth: bool | None, text: str):
        self.what, self.truth, self.text = what, truth, text

    def __bool__(self) -> bool:
        if self.truth is None:
            raise TypeError(f"the truth value of {self.what} returned by the candidate is unknown")
        return self.truth

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return self.text


class Remote:
    """Stands for one of the candidate's functions in the judge's test code."""

    def __init__(self, judge: Judge, name: str):
        self._judge, self._name = judge, name

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._judge.link.call(self._name, args, kwargs, self._judge.call_deadline)

    def __repr__(self) -> str:
        return f"<candidate function {self._name}>"
