"""The pure parts of the Python examples, run natively (`python3 -m pytest` or
`python3 guest-examples/python/test_pure.py`) with a stand-in for the bindings, which exist only
inside a component."""

import importlib.util
import pathlib
import sys
import types

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE / "../../sdk-python"))


def _stub_bindings() -> None:
    """The modules componentize-py generates, with nothing behind them: enough to import."""
    types_mod = types.ModuleType("componentize_py_types")

    class Err(Exception):
        def __init__(self, value):
            self.value = value

    types_mod.Err = Err
    sys.modules["componentize_py_types"] = types_mod
    world = types.ModuleType("wit_world")
    imports = types.ModuleType("wit_world.imports")
    sql = types.ModuleType("wit_world.imports.sql")
    for name in ["Value_Null", "Value_Integer", "Value_Real", "Value_Text", "Value_Blob",
                 "Error_Syntax", "Error_Constraint", "Error_Denied", "Error_Limit",
                 "Error_Other", "PackedRows", "Cursor"]:  # fmt: skip
        setattr(sql, name, type(name, (), {}))
    log = types.ModuleType("wit_world.imports.log")
    log.Level = types.SimpleNamespace(DEBUG=0, INFO=1, WARN=2, ERROR=3)
    imports.sql, imports.log = sql, log
    world.imports = imports
    sys.modules.update({"wit_world": world, "wit_world.imports": imports,
                        "wit_world.imports.sql": sql, "wit_world.imports.log": log})  # fmt: skip


def load(example: str):
    _stub_bindings()
    spec = importlib.util.spec_from_file_location(example.replace("-", "_"), HERE / example / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_split_matches_the_rust_example():
    split = load("split-names").split
    assert split("Ada Lovelace") == ("Ada", "Lovelace")
    assert split("Gabriel  García Márquez") == ("Gabriel", "García Márquez")
    assert split("Zoë\t Brontë ") == ("Zoë", "Brontë")
    assert split("  Søren") == ("Søren", "")
    assert split("") == ("", "")
    # U+001F is whitespace to Python's str.split, not to Rust's char::is_whitespace.
    assert split("a\x1fb c") == ("a\x1fb", "c")
    assert split("a\u3000b") == ("a", "b")


def test_seed_generator_matches_the_rust_example():
    m = load("seed-people")
    rng = m.SplitMix64(0)
    assert rng.next() == 0xE220A8397B1DCDAF
    assert rng.next() == 0x6E789E6AA1B965F4
    for name in m.FIRST_NAMES + m.LAST_NAMES:
        folded = m.ascii_fold(name)
        assert folded and folded.isascii(), name


def test_capitals_by_unicode_rules():
    ok = load("check-capitalized").starts_with_a_capital
    for name in ["Élodie", "Søren", "Zoë", "Łukasz", "Ñuño", "Ada", "", None, "Ωmega"]:
        assert ok(name), name
    for name in ["élodie", "søren", "łukasz", "ñuño", "van", "1st", " Ada", "-"]:
        assert not ok(name), name


def test_the_writer_packs_every_value_as_the_cursor_reads_it():
    load("split-names")
    from strata_sdk import sql
    from strata_sdk.errors import Decode

    class Packed:
        def __init__(self, columns, count, data):
            self.columns, self.count, self.data = columns, count, data

    sent = []
    sql._wit.PackedRows = Packed
    sql._wit.execute_packed = lambda statement, rows: sent.append(rows) or rows.count
    rows = [
        ("Ada", "Lovelace", 1),
        ("", "Søren \u3000", -(1 << 63)),
        (None, 2.5, (1 << 63) - 1),
        (b"\x00\xff", bytearray(b"ab"), True),
        [memoryview(b"m"), -0.0, False],
    ]
    w = sql.Writer("UPDATE t SET a = ?, b = ? WHERE id = ?", batch_size=2)
    for row in rows:
        w.push(row)
    assert w.finish() == 5 and [p.count for p in sent] == [2, 2, 1]
    decoded = [r for p in sent for r in sql._decode_batch(p, "q")]
    expected = [tuple(bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in row) for row in rows]
    expected = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in expected]
    assert decoded == expected, decoded
    # Laid out by column: one type a column in one block (integers, reals, texts), anything
    # else (a text holding a NUL, mixed types) value by value.
    assert all(p.data[0] == 0x80 for p in sent)
    for rows in [
        [(1, 2.5, "a", "x\0y"), (2, -0.0, "", "z"), (3, float("inf"), "\u3000", None)],
        [("only one",)],
        [(i, f"First{i} Last{i}") for i in range(1000)],
    ]:
        sent.clear()
        w = sql.Writer("INSERT INTO t VALUES (" + ", ".join("?" * len(rows[0])) + ")")
        for row in rows:
            w.push(row)
        w.finish()
        assert sql._decode_batch(sent[0], "q") == rows

    # A bad value is refused with its place, and leaves nothing of its row behind: a type with
    # no SQL value or a row of the wrong shape by its push, text that is not Unicode or an
    # integer beyond 64 bits when the batch is packed.
    for row, says in [
        (("a", "\ud800", 1), "value 2 of row 2"),
        (("a", "b", 1 << 63), "value 3 of row 2"),
        (("a", "b", object()), "a object has no SQL value"),
        (("a", "b"), "has 2 values where the first had 3"),
        ("abc", "not one str"),
    ]:
        w = sql.Writer("UPDATE t SET a = ?, b = ? WHERE id = ?")
        w.push(("x", "y", 7))
        try:
            w.push(row)
            w.flush()
        except Decode as e:
            assert says in str(e), (says, str(e))
        else:
            raise AssertionError(f"{row!r} was packed")
        sent.clear()
        assert w.finish() == 1
        assert sql._decode_batch(sent[0], "q") == [("x", "y", 7)]


def test_batches_by_column_decode_as_strata_wire_lays_them_out():
    load("split-names")
    from strata_sdk import sql
    from strata_sdk.errors import Decode

    class Packed:
        def __init__(self, columns, count, data):
            self.columns, self.count, self.data = columns, count, data

    sql._wit.PackedRows = Packed
    # strata-wire's the_column_layout_is_the_documented_one: (1, "ab"), (2, "").
    data = bytes([0x80, 2, 0, 0, 0, 2, 0, 0, 0, 1]) + (1).to_bytes(8, "little") + (2).to_bytes(8, "little")
    data += bytes([3, 3, 0, 0, 0]) + b"ab\0"
    assert sql._decode_batch(Packed(2, 2, data), "q") == [(1, "ab"), (2, "")]
    # A mixed column, value by value.
    mixed = bytes([0x80, 1, 0, 0, 0, 2, 0, 0, 0, 0x81, 10, 0, 0, 0, 0, 1]) + (5).to_bytes(8, "little")
    assert sql._decode_batch(Packed(1, 2, mixed), "q") == [(None,), (5,)]
    # Damaged batches are Decode errors, never anything else.
    for cut in range(1, len(data)):
        try:
            sql._decode_batch(Packed(2, 2, data[:cut]), "q")
        except Decode:
            pass
        else:
            raise AssertionError(f"a batch cut at {cut} decoded")

if __name__ == "__main__":
    tests = [fn for name, fn in list(globals().items()) if name.startswith("test_")]
    for fn in tests:
        fn()
    print(f"{len(tests)} passed, 0 failed")
