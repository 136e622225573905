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
    decoded = [r for p in sent for r in sql._decode(p, "q")]
    expected = [tuple(bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in row) for row in rows]
    expected = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in expected]
    assert decoded == expected, decoded

    # A bad value is refused with its place, and leaves nothing of its row behind.
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
        except Decode as e:
            assert says in str(e), (says, str(e))
        else:
            raise AssertionError(f"{row!r} was packed")
        sent.clear()
        assert w.finish() == 1
        assert sql._decode(sent[0], "q") == [("x", "y", 7)]


if __name__ == "__main__":
    tests = [fn for name, fn in list(globals().items()) if name.startswith("test_")]
    for fn in tests:
        fn()
    print(f"{len(tests)} passed, 0 failed")
