"""The tagged encoding of plain values from candidate to judge (workers/sandbox/values.py)."""

from __future__ import annotations

import ast
import collections
import datetime
import decimal
import math
import pathlib
import random
import struct
import sys
import time

import pytest

from boundary.workers.sandbox import values
from boundary.workers.sandbox.client import SERVER_MODULES, ZYGOTE_MODULES
from boundary.workers.sandbox.values import VALUE_MAX_DEPTH, Undecodable, Unencodable, decode_value, encode_value

SANDBOX = pathlib.Path(values.__file__).parent
UTC = datetime.UTC
EST = datetime.timezone(datetime.timedelta(hours=-5), "EST")


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def roundtrip(value: object) -> object:
    decoded = decode_value(encode_value(value))
    assert type(decoded) is type(value)
    return decoded


def same_bits(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b)


CASES = [
    None, True, False,
    0, 1, -1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 10**3000, -(10**3000),
    1.5, math.inf, -math.inf, 1e-308, 5e-324,
    1 + 2j, complex(-0.0, math.inf),
    "", "hello", "é✓😀", "\ud800 lone \udfff", "nul\x00inside",
    b"", b"\x00\xff", bytearray(), bytearray(b"abc"),
    [], [1, "a", None], list(range(100)), [1.5] * 20, [2**70] * 10, ["x", "y\x00z"] * 5, [True] * 10,
    ["a", "", "é", "\ud800"] * 3,
    (), (1,), tuple(range(10)), tuple("abcdefghij"),
    set(), {1, 2, 3}, set(range(50)), frozenset(), frozenset({"a", (1, 2)}), frozenset(range(20)),
    {}, {"b": 1, "a": 2}, {1: [2, {3: (4,)}]}, {(1, 2): frozenset({3}), None: b"x", 1.5: True},
    {str(i): i for i in range(30)},
    range(0), range(10), range(-5, 100, 7), range(10**30, -(10**30), -(10**20)),
    collections.Counter(), collections.Counter("mississippi"), collections.Counter({"a": -2, "b": 0.5}),
    collections.OrderedDict(), collections.OrderedDict([("z", 1), ("a", 2)]),
    collections.deque(), collections.deque([1, [2], "3"]), collections.deque(range(5), maxlen=5),
    collections.deque(maxlen=0), collections.deque([1], maxlen=2**40),
    decimal.Decimal("0"), decimal.Decimal("-0"), decimal.Decimal("1.50"), decimal.Decimal("-1.2E+30"),
    decimal.Decimal("123456789012345678901234567890.000001"), decimal.Decimal("-Infinity"),
    decimal.Decimal("1E-999999"),
    datetime.date(1, 1, 1), datetime.date(9999, 12, 31), datetime.date(2024, 2, 29),
    datetime.time(), datetime.time(23, 59, 59, 999999), datetime.time(1, 2, 3, 4, UTC),
    datetime.time(12, tzinfo=EST, fold=1),
    datetime.datetime(2024, 3, 10, 2, 30), datetime.datetime(2024, 3, 10, 2, 30, fold=1),
    datetime.datetime(2000, 1, 1, tzinfo=UTC), datetime.datetime(1999, 12, 31, 23, 59, 59, 1, EST),
    datetime.datetime(2020, 6, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=23, minutes=59))),
    datetime.timedelta(), datetime.timedelta(days=-1, microseconds=1), datetime.timedelta.max, datetime.timedelta.min,
    UTC, EST, datetime.timezone(datetime.timedelta(minutes=-90)), datetime.timezone(-datetime.timedelta(hours=23)),
]


@pytest.mark.parametrize("value", CASES, ids=lambda v: type(v).__name__)
def test_roundtrip(value):
    decoded = roundtrip(value)
    assert decoded == value and type(decoded) is type(value)
    if isinstance(value, (set, frozenset)):  # iteration order follows insertion where str hashes collide
        assert sorted(map(repr, decoded)) == sorted(map(repr, value))
    else:
        assert repr(decoded) == repr(value)  # order, maxlen, tz names, Decimal exponents


def test_roundtrip_keeps_order_and_factories():
    value = {"z": 1, "a": [collections.OrderedDict([("y", 1), ("b", 2)])]}
    decoded = roundtrip(value)
    assert list(decoded) == ["z", "a"] and list(decoded["a"][0]) == ["y", "b"]
    for factory in values._VALUE_FACTORIES:
        d = collections.defaultdict(factory, {1: 2, "k": [3]})
        out = roundtrip(d)
        assert out.default_factory is factory and out == d
    out = roundtrip(collections.defaultdict(list, {1: collections.defaultdict(int)}))
    assert out[2] == [] and out[1]["x"] == 0


def test_floats_exact():
    for x in (-0.0, 0.0, math.nan, -math.nan, 0.1, 1e308):
        assert same_bits(roundtrip(x), x)
        assert same_bits(roundtrip([x] * 10)[3], x)  # packed
        assert same_bits(roundtrip([x, "s"])[0], x)  # not packed
    z = roundtrip(complex(math.nan, -0.0))
    assert math.isnan(z.real) and same_bits(z.imag, -0.0)
    assert roundtrip(decimal.Decimal("NaN123")).is_nan() and str(roundtrip(decimal.Decimal("-sNaN"))) == "-sNaN"


def test_output_types_are_exact():
    value = [1, True, 1.0, "s", b"b", (1,), {1}, frozenset(), {1: 2}, [1] * 10, (1.0,) * 10, {"a"} | set("bcdefghi")]
    decoded = decode_value(encode_value(value))
    assert [type(x) for x in decoded] == [type(x) for x in value]
    assert type(decode_value(encode_value(collections.Counter("ab")))) is collections.Counter
    assert type(decode_value(encode_value(tuple(range(10))))) is tuple
    assert type(decode_value(encode_value(frozenset("abcdefghijk")))) is frozenset


def test_nested_deep():
    assert roundtrip(nested(150)) == nested(150)
    assert roundtrip(nested(VALUE_MAX_DEPTH)) == nested(VALUE_MAX_DEPTH)
    mixed = 1
    for i in range(150):
        mixed = (mixed,) if i % 3 == 0 else {i: mixed} if i % 3 == 1 else collections.deque([mixed])
    assert roundtrip(mixed) == mixed


def test_shared_references_are_copies():
    inner = [1, 2]
    a, b = roundtrip([inner, inner])
    assert a == b == inner and a is not b


def test_numpy_values_become_plain():
    numpy = pytest.importorskip("numpy")
    value = {"a": numpy.int64(3), "b": numpy.arange(4).reshape(2, 2), "c": numpy.float32(0.5), "d": numpy.bool_(True)}
    assert decode_value(encode_value(value)) == {"a": 3, "b": [[0, 1], [2, 3]], "c": 0.5, "d": True}
    assert type(decode_value(encode_value(numpy.int32(7)))) is int
    with pytest.raises(Unencodable):
        encode_value(numpy.longdouble(1))  # .item() does not give a plain value


class Five(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class Text(str):
    pass


def _generator():
    yield 1


def test_unencodable():
    cycle: list = []
    cycle.append(cycle)
    loop: dict = {}
    loop["self"] = [loop]
    for bad in [Five(5), [Five(5)], Text("x"), [Text(c) for c in "abcdefghij"], object(), [object()],
                lambda: 0, len, sys, _generator(), cycle, loop, nested(VALUE_MAX_DEPTH + 1),
                collections.defaultdict(lambda: 0), collections.defaultdict(Five), {1: {2: object()}},
                datetime.datetime(2020, 1, 1, tzinfo=_Zone()), type("L", (list,), {})(),
                {1} | {Five(2)}, Ellipsis, NotImplemented, 2 ** (8 * values.VALUE_MAX_INT_BYTES + 1)]:
        with pytest.raises(Unencodable):
            encode_value(bad)


class _Zone(datetime.tzinfo):
    def utcoffset(self, dt):
        return datetime.timedelta(0)


def test_encoder_stops_at_the_size_limit(monkeypatch):
    monkeypatch.setattr(values, "VALUE_MAX_BYTES", 1000)
    value: list = [1]
    for _ in range(40):  # 2**40 leaves by reference: never built out
        value = [value, value]
    with pytest.raises(Unencodable):
        encode_value(value)


SAMPLES = [
    [1, "two", 3.0, None, True, (b"x", bytearray(b"y")), {"k": [1, 2]}],
    {"a": collections.Counter("abc"), "b": collections.defaultdict(list, {1: [2]}),
     "c": collections.deque([1], maxlen=3)},
    [list(range(10)), [0.5] * 9, list("abcdefghi"), {2**80: -(2**70)}, range(1, 10**20, 3), 1j],
    (decimal.Decimal("-1.5E+3"), datetime.datetime(2020, 1, 2, 3, 4, 5, 6, EST), datetime.time(1, tzinfo=UTC),
     datetime.date(2020, 1, 1), datetime.timedelta(-3, 5, 7), datetime.timezone(datetime.timedelta(hours=2))),
]


@pytest.mark.parametrize("value", SAMPLES)
def test_every_truncation_is_undecodable(value):
    data = encode_value(value)
    assert decode_value(data) == value
    for cut in range(len(data)):
        with pytest.raises(Undecodable):
            decode_value(data[:cut])
    for extra in (b"\x00", b"N", data):
        with pytest.raises(Undecodable):
            decode_value(data + extra)


def test_random_bytes_raise_only_undecodable():
    rng = random.Random(20240611)
    tags = b"NTFiIfcsbBltuUdCODqPrmxhXgz"
    start = time.monotonic()
    for i in range(4000):
        if i % 2:
            blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        else:  # mostly valid tags and small lengths, so the decoder gets further in
            blob = bytes(rng.choice(tags) if rng.random() < 0.5 else rng.randrange(4)
                         for _ in range(rng.randrange(1, 60)))
        try:
            decode_value(blob)
        except Undecodable:
            pass
    mutated = bytearray(encode_value(SAMPLES[0] + [SAMPLES[1], SAMPLES[2], SAMPLES[3]]))
    for _ in range(2000):
        blob = bytearray(mutated)
        for _ in range(rng.randrange(1, 4)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        try:
            decode_value(bytes(blob))
        except Undecodable:
            pass
    assert time.monotonic() - start < 4


@pytest.mark.parametrize("blob", [
    b"l" + struct.pack("<I", 2**31) + b"NNNNN",
    b"d" + struct.pack("<I", 2**31) + b"NNNNN",
    b"P" + struct.pack("<BBI", 0x6C, 0x71, 2**31) + b"\x00" * 4,
    b"P" + struct.pack("<BBI", 0x6C, 0x73, 3) + struct.pack("<I", 2**31) + b"a",
    b"s" + struct.pack("<I", 2**31 + 5) + b"abcde",
    b"I\x00" + struct.pack("<I", 2**31) + b"abc",
    b"I\x00" + struct.pack("<I", values.VALUE_MAX_INT_BYTES + 1) + b"\x00" * (values.VALUE_MAX_INT_BYTES + 1),
    b"q" + struct.pack("<qI", 5, 2**31) + b"N",
])
def test_huge_length_claims_fail_fast(blob):
    start = time.monotonic()
    with pytest.raises(Undecodable):
        decode_value(blob)
    assert time.monotonic() - start < 0.5


def _list(*items: bytes) -> bytes:
    return b"l" + struct.pack("<I", len(items)) + b"".join(items)


def _dict(*pairs: bytes) -> bytes:
    return b"d" + struct.pack("<I", len(pairs) // 2) + b"".join(pairs)


def _str(text: str) -> bytes:
    data = text.encode()
    return b"s" + struct.pack("<I", len(data)) + data


@pytest.mark.parametrize("blob", [
    b"", b"?", b"\x00", b"\xff", b"NN", b"i" + b"\x00" * 9, b"i\x00",
    _dict(_list(), b"N"),  # unhashable key
    _dict(_list(b"N"), b"N"),
    b"u" + struct.pack("<I", 1) + _dict(),  # unhashable set element
    b"C" + struct.pack("<I", 1) + _list() + b"N",
    b"D" + bytes([len(values._VALUE_FACTORIES)]) + struct.pack("<I", 0),  # factory out of the table
    b"D\xff" + struct.pack("<I", 0),
    b"q" + struct.pack("<qI", -2, 0),
    b"P" + struct.pack("<BBI", 0x64, 0x71, 1) + b"\x00" * 8,  # packed dict: no such kind
    b"P" + struct.pack("<BBI", 0x6C, 0x78, 1) + b"\x00" * 8,
    b"P" + struct.pack("<BBI", 0x6C, 0x73, 3) + struct.pack("<I", 3) + b"a\x00b",  # 2 strs, not 3
    b"s" + struct.pack("<I", 1) + b"\xff",
    b"s" + struct.pack("<I", 2) + b"\xc0\x80",
    b"b" + struct.pack("<I", 3) + b"ab",
    b"I\x02" + struct.pack("<I", 1) + b"\x01",  # bad sign
    b"r" + b"i" + b"\x00" * 8 + b"i" + b"\x00" * 8 + b"i" + b"\x00" * 8,  # step 0
    b"r" + b"f" + b"\x00" * 8 + b"i" + b"\x00" * 8 + b"i" + b"\x01" + b"\x00" * 7,
    b"m" + struct.pack("<I", 3) + b"1e9",  # fine...
    b"m" + struct.pack("<I", 4) + b"1_00",
    b"m" + struct.pack("<I", 2) + "١".encode(),
    b"m" + struct.pack("<I", 3) + b" 1 ",
    b"m" + struct.pack("<I", 23) + b"1E+99999999999999999999",
    b"x" + struct.pack("<HBB", 2023, 2, 29),
    b"x" + struct.pack("<HBB", 0, 1, 1),
    b"h" + struct.pack("<BBBIB", 24, 0, 0, 0, 0) + b"\x00",
    b"h" + struct.pack("<BBBIB", 1, 0, 0, 0, 2) + b"\x00",
    b"h" + struct.pack("<BBBIB", 1, 0, 0, 0, 0) + b"\x03",
    b"X" + struct.pack("<HBBBBBIB", 2020, 1, 1, 0, 0, 0, 10**6, 0) + b"\x00",
    b"X" + struct.pack("<HBBBBBIB", 2020, 1, 1, 0, 0, 0, 0, 0) + b"\x01" + struct.pack("<iii", 1, 0, 0),  # a day
    b"g" + struct.pack("<iii", 10**9, 0, 0),
    b"z\x00",
    b"z\x02" + struct.pack("<iii", 0, 60, 0) + struct.pack("<I", 1) + b"\xff",
    b"l\x01\x00\x00\x00" * (VALUE_MAX_DEPTH + 1) + b"N",  # one too deep
    b"l\x01\x00\x00\x00" * VALUE_MAX_DEPTH + b"P" + struct.pack("<BBI", 0x6C, 0x71, 0),
    b"l\x01\x00\x00\x00" * 100000 + b"N",
])
def test_malformed_is_undecodable(blob):
    if blob == b"m" + struct.pack("<I", 3) + b"1e9":
        assert decode_value(blob) == decimal.Decimal("1e9")
        return
    with pytest.raises(Undecodable):
        decode_value(blob)


def test_depth_limit_is_exact():
    ok = b"l\x01\x00\x00\x00" * VALUE_MAX_DEPTH + b"N"
    assert decode_value(ok) == nested(VALUE_MAX_DEPTH, None)


def test_not_bytes():
    for bad in (None, 5, "N", [78]):
        with pytest.raises(Undecodable):
            decode_value(bad)
    assert decode_value(bytearray(b"N")) is None and decode_value(memoryview(b"T")) is True


def test_decoder_sets_no_attribute():
    """The pickle attack (BUILD on a class) has no counterpart: whatever bytes arrive, the
    classes the decoder builds with are left as they were."""
    watched = [collections.Counter, collections.OrderedDict, collections.defaultdict, collections.deque, dict, list,
               tuple, set, frozenset, str, int, float, decimal.Decimal, datetime.datetime, datetime.timezone]
    before = {kind: dict(vars(kind)) for kind in watched}
    eq_before, dict_eq, list_eq = collections.Counter.__eq__, dict.__eq__, list.__eq__
    rng = random.Random(7)
    crafted = [
        b"C" + struct.pack("<I", 1) + _str("__eq__") + _str("builtins.str"),
        _dict(_str("__eq__"), _str("str"), _str("__class__"), _str("Counter")),
        b"D\x0b" + struct.pack("<I", 1) + _str("__dict__") + _dict(_str("__eq__"), b"N"),
        b"O" + struct.pack("<I", 1) + _str("__init__") + _str("os.system"),
        b"\x80\x04\x95" + b"ccollections\nCounter\n)\x81}\x8c\x06__eq__\x8c\x03strsb.",  # a pickle
    ]
    for blob in crafted + [bytes(rng.randrange(256) for _ in range(30)) for _ in range(500)]:
        try:
            decode_value(blob)
        except Undecodable:
            pass
    assert collections.Counter.__eq__ is eq_before and dict.__eq__ is dict_eq and list.__eq__ is list_eq
    assert collections.Counter("ab") != collections.Counter("abc")
    for kind in watched:
        assert dict(vars(kind)) == before[kind], kind
    counter = decode_value(crafted[0])
    assert type(counter) is collections.Counter and counter == {"__eq__": "builtins.str"} and not vars(counter)
    assert type(decode_value(crafted[1])) is dict


def test_decoder_uses_nothing_dangerous():
    source = (SANDBOX / "values.py").read_text()
    tree = ast.parse(source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported <= {"annotations", "collections", "datetime", "decimal", "itertools", "re", "struct", "sys"}
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "getattr", "setattr", "delattr", "__import__", "compile", "open", "vars"}


def _top_level_names(path: pathlib.Path) -> tuple[set, set]:
    """(names bound by def, class or assignment; names bound by import) at the top of a file."""
    defined, imported = set(), set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for sub in ast.walk(node):  # names bound in a top-level block are top-level too
                if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    defined.add(sub.name)
                elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    defined.add(sub.id)
                elif isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("boundary.workers.sandbox."):
                    continue  # the host's import of the very objects the shared namespace holds
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    imported |= {(a.asname or a.name).split(".")[0] for a in sub.names}
    return defined, imported


IN_SANDBOX = [pathlib.Path(module.__file__).name for module in (*ZYGOTE_MODULES, *SERVER_MODULES)]
"""The modules whose text runs in the sandbox's one namespace, in order (values.py first)."""


def test_no_name_collides_in_the_shared_namespace():
    """values.py runs first in one namespace with the other in-sandbox modules: a name it
    defines that another also defines (or imports as something else) would be overwritten."""
    assert IN_SANDBOX[0] == "values.py" and {"candidate.py", "server.py"} <= set(IN_SANDBOX)
    mine, my_imports = _top_level_names(SANDBOX / "values.py")
    assert {"encode_value", "decode_value", "Unencodable", "Undecodable", "VALUE_MAX_DEPTH"} <= mine
    for other in IN_SANDBOX[1:]:
        defined, imported = _top_level_names(SANDBOX / other)
        assert not mine & (defined | imported), (other, sorted(mine & (defined | imported)))
        assert not my_imports & defined, (other, sorted(my_imports & defined))


def test_no_two_sandbox_modules_define_one_name():
    """Each in-sandbox module's own names are its alone: one defined twice in the shared
    namespace would be the later module's in both."""
    owner: dict[str, str] = {}
    for name in IN_SANDBOX:
        defined, _imported = _top_level_names(SANDBOX / name)
        clashes = {n: owner[n] for n in defined if n in owner}
        assert not clashes, (name, clashes)
        owner.update(dict.fromkeys(defined, name))


def test_runs_in_a_shared_namespace():
    """As in the sandbox: the source exec'd on its own, by text, then used from the namespace."""
    namespace: dict = {"__name__": "__main__"}
    exec(compile((SANDBOX / "values.py").read_text(), "<boundary-sandbox>", "exec"), namespace)  # noqa: S102
    value = [1, {"a": (2.5, None)}, collections.Counter("ab"), datetime.date(2020, 1, 1)]
    assert namespace["decode_value"](namespace["encode_value"](value)) == value


def test_constants_are_documented():
    tree = ast.parse((SANDBOX / "values.py").read_text())
    body = tree.body
    for i, node in enumerate(body):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
            if node.targets[0].id.startswith("VALUE_"):
                nxt = body[i + 1]
                assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), node.targets[0].id
