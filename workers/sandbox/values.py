"""Plain values from the candidate to the judge, in a tagged encoding. Standard library only.
The decoder executes nothing, sets no attribute and imports nothing; anything it cannot read
raises ``Undecodable``. Why not pickle or marshal, and the wire format: docs/sandbox.md.

Its text also runs in the sandbox's one namespace with the other in-sandbox modules: its
private names start with ``_value_``."""

from __future__ import annotations

import collections
import datetime
import decimal
import itertools
import re
import struct
import sys

VALUE_MAX_DEPTH = 200
"""Deepest nesting of containers either side accepts (containers, counting the outermost):
deep enough for any honest answer, shallow enough that nothing recursive (a tuple's hash, the
judge's comparison) comes near Python's recursion limit."""

VALUE_MAX_BYTES = 128 << 20
"""Largest encoding either side accepts (bytes): the judge's limit on one answer
(``server.MAX_REPLY``), so the encoder gives up on a value that could never be delivered (a
list holding itself a thousand times over, say) instead of building it."""

VALUE_MAX_INT_BYTES = 1 << 20
"""Largest magnitude of one int (bytes, about 2.5 million decimal digits): bounds the work of a
single ``int.from_bytes`` and of every comparison with the result."""

_VALUE_FACTORIES = (None, int, float, str, bytes, list, dict, set, frozenset, tuple, bool,
                    collections.Counter, collections.OrderedDict, collections.deque)
"""The only default factories a defaultdict may carry, by index on the wire: the judge's own
classes, so a decoded defaultdict can call nothing of the candidate's."""

_VALUE_DECIMAL_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|Infinity|s?NaN[0-9]*)\Z")
"""What a Decimal's text may be (``str`` of a Decimal always matches); checked before
``decimal.Decimal`` sees it, so no other spelling it would accept gets in."""


class Unencodable(Exception):
    """A value that is not plain data (an object of another class, a subclass of a builtin, a
    function, a cycle, nesting deeper than ``VALUE_MAX_DEPTH``...)."""


class Undecodable(Exception):
    """Bytes that are not one well-formed encoded value: the only exception ``decode_value``
    raises."""


_value_i64 = struct.Struct("<q")
_value_f64 = struct.Struct("<d")
_value_c128 = struct.Struct("<dd")
_value_u32 = struct.Struct("<I")
_value_len = struct.Struct("<I")
_value_maxlen = struct.Struct("<q")
_value_date = struct.Struct("<HBB")
_value_time = struct.Struct("<BBBIB")
_value_datetime = struct.Struct("<HBBBBBIB")
_value_delta = struct.Struct("<iii")
_value_packed_head = struct.Struct("<BBI")

_VALUE_PACK_MIN = 8
"""Shortest list (or tuple, set, frozenset) of ints, floats or strs sent packed (elements): below it
the type scan costs more than it saves."""

_VALUE_LITTLE = sys.byteorder == "little"
"""Whether packed arrays can be read with a native ``memoryview.cast`` (else ``struct``)."""

# --------------------------------------------------------------------------------------------
# Encoder (the candidate's side).

_VALUE_SEQUENCE_TAGS = {list: b"l", tuple: b"t", set: b"u", frozenset: b"U"}
_VALUE_MAPPING_TAGS = {dict: b"d", collections.Counter: b"C", collections.OrderedDict: b"O"}
_VALUE_PACK_CODES = {list: 0x6C, tuple: 0x74, set: 0x75, frozenset: 0x55}


def encode_value(value: object) -> bytes:
    """``value`` encoded for ``decode_value``; Unencodable unless it is plain data."""
    kind = type(value)
    if kind is int and -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
        return b"i" + _value_i64.pack(value)
    if kind is str and len(value) < 0x10000:
        data = value.encode("utf-8", "surrogatepass")
        return b"s" + _value_len.pack(len(data)) + data
    if value is None:
        return b"N"
    out = bytearray()
    try:
        _value_put(out, value, 0, set())
    except RecursionError:
        raise Unencodable("a value nested too deeply for the interpreter's stack") from None
    if len(out) > VALUE_MAX_BYTES:
        raise Unencodable(f"a value of more than {VALUE_MAX_BYTES} bytes encoded")
    return bytes(out)


def _value_put(out: bytearray, value: object, depth: int, path: set) -> None:
    """Append ``value``; ``depth`` is the number of containers around it, ``path`` their ids."""
    kind = type(value)
    if kind is int:
        if -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
            out += b"i"
            out += _value_i64.pack(value)
        else:
            _value_put_bigint(out, value)
    elif kind is str:
        data = value.encode("utf-8", "surrogatepass")
        out += b"s"
        out += _value_len.pack(len(data))
        out += data
    elif kind is float:
        out += b"f"
        out += _value_f64.pack(value)
    elif value is None:
        out += b"N"
    elif kind is bool:
        out += b"T" if value else b"F"
    elif kind in _VALUE_SEQUENCE_TAGS:
        _value_put_sequence(out, value, depth, path, _VALUE_SEQUENCE_TAGS[kind])
    elif kind in _VALUE_MAPPING_TAGS:
        _value_put_mapping(out, value, depth, path, _VALUE_MAPPING_TAGS[kind])
    else:
        put = _VALUE_OTHERS.get(kind)
        if put is not None:
            put(out, value, depth, path)
            return
        numpy = sys.modules.get("numpy")
        plain = _value_from_numpy(numpy, value) if numpy is not None else _value_from_numpy
        if plain is _value_from_numpy or type(plain) is kind:
            raise Unencodable(f"a {kind.__module__}.{kind.__qualname__} object")
        _value_put(out, plain, depth, path)


def _value_from_numpy(numpy: object, value: object) -> object:
    """A numpy scalar's or array's plain value, or this function itself if ``value`` is
    neither (a sentinel no value can be)."""
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    return _value_from_numpy


def _value_put_bigint(out: bytearray, value: int) -> None:
    magnitude = -value if value < 0 else value
    size = (magnitude.bit_length() + 7) >> 3
    if size > VALUE_MAX_INT_BYTES:
        raise Unencodable(f"an int of more than {VALUE_MAX_INT_BYTES} bytes")
    out += b"I\x01" if value < 0 else b"I\x00"
    out += _value_len.pack(size)
    out += magnitude.to_bytes(size, "little")


def _value_put_int(out: bytearray, value: object) -> None:
    if type(value) is not int:
        raise Unencodable(f"a range bound of type {type(value).__name__}")
    if -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
        out += b"i"
        out += _value_i64.pack(value)
    else:
        _value_put_bigint(out, value)


def _value_enter(out: bytearray, value: object, depth: int, path: set) -> int:
    """Checks on entering a container; its id joins ``path``. Returns the depth inside it."""
    if id(value) in path:
        raise Unencodable("a cycle (a container that holds itself)")
    if depth >= VALUE_MAX_DEPTH:
        raise Unencodable(f"a value nested more than {VALUE_MAX_DEPTH} deep")
    if len(out) > VALUE_MAX_BYTES:
        raise Unencodable(f"a value of more than {VALUE_MAX_BYTES} bytes encoded")
    path.add(id(value))
    return depth + 1


def _value_put_items(out: bytearray, items: object, inner: int, path: set) -> None:
    """Append each of ``items``, the common scalars inline (no call per element)."""
    i64, f64, length, put = _value_i64.pack, _value_f64.pack, _value_len.pack, _value_put
    for item in items:
        kind = type(item)
        if kind is int and -0x8000000000000000 <= item <= 0x7FFFFFFFFFFFFFFF:
            out += b"i"
            out += i64(item)
        elif kind is str:
            data = item.encode("utf-8", "surrogatepass")
            out += b"s"
            out += length(len(data))
            out += data
        elif kind is float:
            out += b"f"
            out += f64(item)
        else:
            put(out, item, inner, path)


def _value_put_sequence(out: bytearray, value: object, depth: int, path: set, tag: bytes) -> None:
    inner = _value_enter(out, value, depth, path)
    count = len(value)
    if count >= _VALUE_PACK_MIN:
        first = type(next(iter(value)))
        if (first is int or first is float or first is str) and list(map(type, value)).count(first) == count:
            data = _value_pack(value, count, first)
            if data is not None:
                out += b"P"
                out += data
                path.discard(id(value))
                return
    out += tag
    out += _value_len.pack(count)
    _value_put_items(out, value, inner, path)
    path.discard(id(value))


def _value_pack(value: object, count: int, kind: type) -> bytes | None:
    """The packed form (after its tag) of ``count`` elements all of exact type ``kind``, or
    None where they do not fit it (an int past 64 bits, a str holding a NUL)."""
    container = _VALUE_PACK_CODES[type(value)]
    if kind is str:
        text = "\x00".join(value)
        if text.count("\x00") != count - 1:
            return None
        data = text.encode("utf-8", "surrogatepass")
        return _value_packed_head.pack(container, 0x73, count) + _value_len.pack(len(data)) + data
    code = "q" if kind is int else "d"
    try:
        data = struct.pack(f"<{count}{code}", *value)
    except (struct.error, OverflowError):
        return None
    return _value_packed_head.pack(container, ord(code), count) + data


def _value_put_mapping(out: bytearray, value: dict, depth: int, path: set, tag: bytes) -> None:
    inner = _value_enter(out, value, depth, path)
    out += tag
    out += _value_len.pack(len(value))
    _value_put_pairs(out, value, inner, path)
    path.discard(id(value))


def _value_put_pairs(out: bytearray, value: dict, inner: int, path: set) -> None:
    _value_put_items(out, itertools.chain.from_iterable(dict.items(value)), inner, path)


def _value_put_defaultdict(out: bytearray, value: collections.defaultdict, depth: int, path: set) -> None:
    factory = value.default_factory
    for index, known in enumerate(_VALUE_FACTORIES):  # noqa: B007 - index is used after the loop
        if factory is known:
            break
    else:
        raise Unencodable("a defaultdict whose default factory is not a plain type")
    inner = _value_enter(out, value, depth, path)
    out += b"D"
    out.append(index)
    out += _value_len.pack(len(value))
    _value_put_pairs(out, value, inner, path)
    path.discard(id(value))


def _value_put_deque(out: bytearray, value: collections.deque, depth: int, path: set) -> None:
    inner = _value_enter(out, value, depth, path)
    out += b"q"
    out += _value_maxlen.pack(-1 if value.maxlen is None else value.maxlen)
    out += _value_len.pack(len(value))
    _value_put_items(out, value, inner, path)
    path.discard(id(value))


def _value_put_leaf(tag: bytes, encode: object) -> object:
    """An encoder for a type without elements: ``tag``, then ``encode(value)``."""

    def put(out: bytearray, value: object, depth: int, path: set) -> None:
        out += tag
        out += encode(value)

    return put


def _value_put_blob(tag: bytes) -> object:
    def put(out: bytearray, value: object, depth: int, path: set) -> None:
        out += tag
        out += _value_len.pack(len(value))
        out += value

    return put


def _value_put_range(out: bytearray, value: range, depth: int, path: set) -> None:
    out += b"r"
    _value_put_int(out, value.start)
    _value_put_int(out, value.stop)
    _value_put_int(out, value.step)


def _value_put_decimal(out: bytearray, value: decimal.Decimal, depth: int, path: set) -> None:
    text = str(value).encode("ascii")
    out += b"m"
    out += _value_len.pack(len(text))
    out += text


def _value_delta_fields(delta: datetime.timedelta) -> bytes:
    return _value_delta.pack(delta.days, delta.seconds, delta.microseconds)


def _value_put_zone(out: bytearray, zone: object) -> None:
    if zone is None:
        out += b"\x00"
        return
    if type(zone) is not datetime.timezone:
        raise Unencodable(f"a time zone of type {type(zone).__qualname__} (only fixed offsets)")
    offset = zone.utcoffset(None)
    name = zone.tzname(None)
    if name == datetime.timezone(offset).tzname(None):
        out += b"\x01"
        out += _value_delta_fields(offset)
    else:
        data = name.encode("utf-8", "surrogatepass")
        out += b"\x02"
        out += _value_delta_fields(offset)
        out += _value_len.pack(len(data))
        out += data


def _value_put_date(out: bytearray, value: datetime.date, depth: int, path: set) -> None:
    out += b"x"
    out += _value_date.pack(value.year, value.month, value.day)


def _value_put_time(out: bytearray, value: datetime.time, depth: int, path: set) -> None:
    out += b"h"
    out += _value_time.pack(value.hour, value.minute, value.second, value.microsecond, value.fold)
    _value_put_zone(out, value.tzinfo)


def _value_put_datetime(out: bytearray, value: datetime.datetime, depth: int, path: set) -> None:
    out += b"X"
    out += _value_datetime.pack(value.year, value.month, value.day, value.hour, value.minute, value.second,
                                value.microsecond, value.fold)
    _value_put_zone(out, value.tzinfo)


def _value_put_timedelta(out: bytearray, value: datetime.timedelta, depth: int, path: set) -> None:
    out += b"g"
    out += _value_delta_fields(value)


def _value_put_timezone(out: bytearray, value: datetime.timezone, depth: int, path: set) -> None:
    out += b"z"
    _value_put_zone(out, value)


_VALUE_OTHERS = {
    complex: _value_put_leaf(b"c", lambda z: _value_c128.pack(z.real, z.imag)),
    bytes: _value_put_blob(b"b"),
    bytearray: _value_put_blob(b"B"),
    collections.defaultdict: _value_put_defaultdict,
    collections.deque: _value_put_deque,
    range: _value_put_range,
    decimal.Decimal: _value_put_decimal,
    datetime.date: _value_put_date,
    datetime.time: _value_put_time,
    datetime.datetime: _value_put_datetime,
    datetime.timedelta: _value_put_timedelta,
    datetime.timezone: _value_put_timezone,
}
"""Encoders for the plain types not handled inline in ``_value_put``, by exact type."""

# --------------------------------------------------------------------------------------------
# Decoder (the judge's side): iterative, every length checked before it is used.

_VALUE_ROOT = -1
"""The kind of the decoder's outermost frame, which holds the one value being decoded."""


def decode_value(data: bytes) -> object:
    """The value ``data`` encodes, built of plain types only; Undecodable for anything else
    (and never another exception)."""
    if type(data) is not bytes:
        if type(data) not in (bytearray, memoryview):
            raise Undecodable(f"a {type(data).__name__}, not bytes")
        try:
            data = bytes(data)
        except Exception as exc:  # noqa: BLE001 - a memoryview of another format
            raise Undecodable(f"unreadable data ({type(exc).__name__})") from None
    if len(data) > VALUE_MAX_BYTES:
        raise Undecodable(f"{len(data)} bytes (limit {VALUE_MAX_BYTES})")
    try:
        return _value_decode(data)
    except Undecodable:
        raise
    except Exception as exc:  # noqa: BLE001 - a short read, a bad field: all malformed input
        raise Undecodable(f"malformed data ({type(exc).__name__}: {str(exc)[:100]})") from None


def _value_decode(data: bytes) -> object:
    size = len(data)
    if not size:
        raise Undecodable("no data")
    i64, f64, length = _value_i64.unpack_from, _value_f64.unpack_from, _value_len.unpack_from
    first = data[0]
    if first == 0x69 and size == 9:  # a lone small int: the commonest answer
        return i64(data, 1)[0]
    stack = []
    items = []
    append = items.append
    remaining = 1
    kind = _VALUE_ROOT
    extra = None
    pos = 0
    while True:
        tag = data[pos]
        pos += 1
        if tag == 0x69:  # i
            append(i64(data, pos)[0])
            pos += 8
        elif tag == 0x73:  # s
            end = pos + 4 + length(data, pos)[0]
            if end > size:
                raise Undecodable("a str longer than the data")
            append(data[pos + 4:end].decode("utf-8", "surrogatepass"))
            pos = end
        elif tag == 0x66:  # f
            append(f64(data, pos)[0])
            pos += 8
        elif tag == 0x4E:  # N
            append(None)
        elif tag == 0x54:  # T
            append(True)
        elif tag == 0x46:  # F
            append(False)
        elif tag in _VALUE_CONTAINERS:
            inner = None
            if tag == 0x44:  # D: the factory byte first
                inner = _VALUE_FACTORIES[data[pos]]
                pos += 1
            elif tag == 0x71:  # q: the maxlen first
                inner = _value_maxlen.unpack_from(data, pos)[0]
                pos += 8
                if inner < -1:
                    raise Undecodable("a deque with a negative maxlen")
            count = length(data, pos)[0]
            pos += 4
            if tag in _VALUE_PAIRED:
                count *= 2
            if count > size - pos:  # each element takes a byte at least
                raise Undecodable(f"a container of {count} elements in {size - pos} bytes")
            if len(stack) >= VALUE_MAX_DEPTH:
                raise Undecodable(f"a value nested more than {VALUE_MAX_DEPTH} deep")
            if count:
                stack.append((items, remaining, kind, extra))
                items = []
                append = items.append
                remaining = count
                kind = tag
                extra = inner
                continue
            append(_value_build(tag, [], inner))
        elif tag == 0x50:  # P
            if len(stack) >= VALUE_MAX_DEPTH:
                raise Undecodable(f"a value nested more than {VALUE_MAX_DEPTH} deep")
            value, pos = _value_read_packed(data, pos)
            append(value)
        else:
            read = _VALUE_READERS.get(tag)
            if read is None:
                raise Undecodable(f"an unknown tag {tag:#04x} at byte {pos - 1}")
            value, pos = read(data, pos)
            append(value)
        remaining -= 1
        while not remaining:
            if kind == _VALUE_ROOT:
                if pos != size:
                    raise Undecodable(f"{size - pos} bytes after the value")
                return items[0]
            value = _value_build(kind, items, extra)
            items, remaining, kind, extra = stack.pop()
            append = items.append
            append(value)
            remaining -= 1


_VALUE_CONTAINERS = frozenset(b"ltuUdCODq")
"""Tags of the containers whose elements follow as encoded values."""

_VALUE_PAIRED = frozenset(b"dCOD")
"""Container tags whose count is of pairs (key, value)."""


def _value_pairs(items: list) -> object:
    return zip(items[0::2], items[1::2])


def _value_build(kind: int, items: list, extra: object) -> object:
    """The container ``kind`` of the decoded ``items`` (a TypeError for an unhashable key)."""
    if kind == 0x6C:  # l
        return items
    if kind == 0x74:  # t
        return tuple(items)
    if kind == 0x64:  # d
        return dict(_value_pairs(items))
    if kind == 0x75:  # u
        return set(items)
    if kind == 0x55:  # U
        return frozenset(items)
    if kind == 0x43:  # C
        counter = collections.Counter()
        dict.update(counter, _value_pairs(items))
        return counter
    if kind == 0x4F:  # O
        return collections.OrderedDict(_value_pairs(items))
    if kind == 0x44:  # D
        return collections.defaultdict(extra, _value_pairs(items))
    if kind == 0x71:  # q
        return collections.deque(items, None if extra == -1 else extra)
    raise Undecodable(f"an unknown container {kind:#04x}")


_VALUE_PACKED_KINDS = {0x6C: list, 0x74: tuple, 0x75: set, 0x55: frozenset}


def _value_read_packed(data: bytes, pos: int) -> tuple:
    kind, code, count = _value_packed_head.unpack_from(data, pos)
    pos += 6
    build = _VALUE_PACKED_KINDS.get(kind)
    if build is None or code not in (0x71, 0x64, 0x73):
        raise Undecodable("a packed array of an unknown kind")
    if code == 0x73:  # strs joined by NULs, which none of them holds
        raw, end = _value_read_blob(data, pos)
        values = raw.decode("utf-8", "surrogatepass").split("\x00")
        if len(values) != count:
            raise Undecodable(f"a packed array of {len(values)} strs, not {count}")
        return (values if build is list else build(values)), end
    end = pos + 8 * count
    if end > len(data):
        raise Undecodable(f"a packed array of {count} elements in {len(data) - pos} bytes")
    if _VALUE_LITTLE:
        values = memoryview(data)[pos:end].cast("q" if code == 0x71 else "d").tolist()
    else:
        values = list(struct.unpack_from(f"<{count}{chr(code)}", data, pos))
    return (values if build is list else build(values)), end


def _value_read_blob(data: bytes, pos: int) -> tuple:
    end = pos + 4 + _value_len.unpack_from(data, pos)[0]
    if end > len(data):
        raise Undecodable("a length past the end of the data")
    return data[pos + 4:end], end


def _value_read_bigint(data: bytes, pos: int) -> tuple:
    sign = data[pos]
    size = _value_len.unpack_from(data, pos + 1)[0]
    pos += 5
    if sign > 1:
        raise Undecodable("an int with a bad sign byte")
    if size > VALUE_MAX_INT_BYTES:
        raise Undecodable(f"an int of {size} bytes (limit {VALUE_MAX_INT_BYTES})")
    end = pos + size
    if end > len(data):
        raise Undecodable("an int longer than the data")
    magnitude = int.from_bytes(data[pos:end], "little")
    return (-magnitude if sign else magnitude), end


def _value_read_int(data: bytes, pos: int) -> tuple:
    tag = data[pos]
    if tag == 0x69:
        return _value_i64.unpack_from(data, pos + 1)[0], pos + 9
    if tag == 0x49:
        return _value_read_bigint(data, pos + 1)
    raise Undecodable("a range bound that is not an int")


def _value_read_range(data: bytes, pos: int) -> tuple:
    start, pos = _value_read_int(data, pos)
    stop, pos = _value_read_int(data, pos)
    step, pos = _value_read_int(data, pos)
    return range(start, stop, step), pos


def _value_read_decimal(data: bytes, pos: int) -> tuple:
    raw, pos = _value_read_blob(data, pos)
    text = raw.decode("ascii")
    if not _VALUE_DECIMAL_TEXT.match(text):
        raise Undecodable("a Decimal that is not a number's text")
    value = decimal.Decimal(text)
    if value.is_nan() and "N" not in text:  # an exponent out of range, with the trap off
        raise Undecodable("a Decimal out of range")
    return value, pos


def _value_read_zone(data: bytes, pos: int) -> tuple:
    flag = data[pos]
    pos += 1
    if flag == 0:
        return None, pos
    if flag > 2:
        raise Undecodable("a bad time zone flag")
    offset = datetime.timedelta(*_value_delta.unpack_from(data, pos))
    pos += 12
    if flag == 1:
        return datetime.timezone(offset), pos
    raw, pos = _value_read_blob(data, pos)
    return datetime.timezone(offset, raw.decode("utf-8", "surrogatepass")), pos


def _value_read_date(data: bytes, pos: int) -> tuple:
    return datetime.date(*_value_date.unpack_from(data, pos)), pos + 4


def _value_read_time(data: bytes, pos: int) -> tuple:
    hour, minute, second, micro, fold = _value_time.unpack_from(data, pos)
    zone, end = _value_read_zone(data, pos + 8)
    return datetime.time(hour, minute, second, micro, zone, fold=fold), end


def _value_read_datetime(data: bytes, pos: int) -> tuple:
    year, month, day, hour, minute, second, micro, fold = _value_datetime.unpack_from(data, pos)
    zone, end = _value_read_zone(data, pos + 12)
    return datetime.datetime(year, month, day, hour, minute, second, micro, zone, fold=fold), end


def _value_read_timedelta(data: bytes, pos: int) -> tuple:
    return datetime.timedelta(*_value_delta.unpack_from(data, pos)), pos + 12


def _value_read_timezone(data: bytes, pos: int) -> tuple:
    zone, end = _value_read_zone(data, pos)
    if zone is None:
        raise Undecodable("a timezone value with no offset")
    return zone, end


def _value_read_complex(data: bytes, pos: int) -> tuple:
    return complex(*_value_c128.unpack_from(data, pos)), pos + 16


def _value_read_bytearray(data: bytes, pos: int) -> tuple:
    raw, end = _value_read_blob(data, pos)
    return bytearray(raw), end


_VALUE_READERS = {
    0x49: _value_read_bigint,  # I
    0x63: _value_read_complex,  # c
    0x62: _value_read_blob,  # b
    0x42: _value_read_bytearray,  # B
    0x72: _value_read_range,  # r
    0x6D: _value_read_decimal,  # m
    0x78: _value_read_date,  # x
    0x68: _value_read_time,  # h
    0x58: _value_read_datetime,  # X
    0x67: _value_read_timedelta,  # g
    0x7A: _value_read_timezone,  # z
}
"""Readers of the values without elements not handled inline in ``_value_decode``, by tag:
each takes (data, position after the tag) and returns (value, position after it)."""
