"""SQL on the connection of the step being applied: the component's only door to the database.

Values are plain Python: ``None``, ``int`` (64-bit), ``float``, ``str`` and ``bytes`` (``bool``
is sent as 0 or 1, ``bytearray``/``memoryview`` as bytes). A row is a tuple of values in the
order of the query's columns. Every call raises a subclass of `SqlError` named after the WIT's
error case (`Syntax`, `Constraint`, `Denied`, `Limit`, `Other`) when it fails.

- `execute`, `query`, `query_one`: one statement.
- `stream`: a query read in batches through a cursor, for results larger than memory.
- `execute_many` and `Writer`: one statement run for many rows, packed and sent in batches (the
  fast path for bulk writes).
"""

from __future__ import annotations

import struct
from array import array
from itertools import chain
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from componentize_py_types import Err
from wit_world.imports import sql as _wit

from .errors import Constraint, Decode, Denied, Limit, Other, SqlError, Syntax

#: A value as the SDK gives and takes it.
Value = Union[None, int, float, str, bytes]
#: A row: the values of one result row, in column order.
Row = Tuple[Value, ...]
#: Positional parameters for the `?` of a statement.
Params = Sequence[Any]

#: Rows per host call when reading with `stream` or writing with `Writer`/`execute_many`.
DEFAULT_BATCH_ROWS = 1000

__all__ = [
    "Value",
    "Row",
    "Params",
    "DEFAULT_BATCH_ROWS",
    "execute",
    "execute_many",
    "query",
    "query_one",
    "stream",
    "Rows",
    "Writer",
]

_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
# A text or blob's tag and length; an integer's tag and value.
_TEXT_HEADER = struct.Struct("<BI").pack
_INT_VALUE = struct.Struct("<Bq").pack
_REAL_VALUE = struct.Struct("<Bd").pack
# Packed rows laid out by column (strata-wire's `COLUMNS`): the header (the layout's byte, the
# numbers of columns and rows), and the flag in `next-packed`'s `max-rows` that asks for them.
# Python reads and writes a column with a few calls into C (`array`, `str.join`, `str.split`)
# where the row layout costs Python bytecode per value.
_COLUMNS_HEADER = struct.Struct("<BII")
_COLUMNS = 0x80
_VALUES = 0x81
_COLUMNS_FLAG = 1 << 31
# The most rows the host returns per cursor call (strata_wire::MAX_ROWS_PER_CALL): the most a
# batch asks for, so that no count reaches the flag above.
MAX_BATCH_ROWS = 100_000
_INT_TYPES = frozenset((int, bool))
_SQL_TYPES = frozenset((type(None), int, float, str, bytes, bool, bytearray, memoryview))
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

_CASES = {
    _wit.Error_Syntax: Syntax,
    _wit.Error_Constraint: Constraint,
    _wit.Error_Denied: Denied,
    _wit.Error_Limit: Limit,
    _wit.Error_Other: Other,
}


def _raise(err: Err, statement: str) -> SqlError:
    case = err.value
    return _CASES.get(type(case), Other)(getattr(case, "value", str(case)), statement)


def _to_wit(value: Any, where: str) -> "_wit.Value":
    if value is None:
        return _wit.Value_Null()
    if isinstance(value, bool):
        return _wit.Value_Integer(int(value))
    if isinstance(value, int):
        _check_int(value, where)
        return _wit.Value_Integer(value)
    if isinstance(value, float):
        return _wit.Value_Real(value)
    if isinstance(value, str):
        _check_text(value, where)
        return _wit.Value_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _wit.Value_Blob(bytes(value))
    raise Decode(f"{where}: a {type(value).__name__} has no SQL value (use None, int, float, str or bytes)")


def _check_int(value: int, where: str) -> None:
    if not _I64_MIN <= value <= _I64_MAX:
        raise Decode(f"{where}: {value} does not fit in a 64-bit integer")


def _check_text(value: str, where: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Decode(f"{where}: the text is not valid Unicode ({e.reason} at {e.start})") from None


def _params(params: Params, statement: str) -> List["_wit.Value"]:
    if isinstance(params, (str, bytes)):
        raise Decode(f"the parameters of `{statement}` must be a sequence of values, not one {type(params).__name__}")
    return [_to_wit(v, f"parameter {i + 1} of `{statement}`") for i, v in enumerate(params)]


def _from_wit(value: "_wit.Value") -> Value:
    if isinstance(value, _wit.Value_Null):
        return None
    return value.value


def execute(sql: str, params: Params = ()) -> int:
    """Runs one statement with positional parameters (``?``); returns the rows it changed."""
    try:
        return _wit.execute(sql, _params(params, sql))
    except Err as e:
        raise _raise(e, sql) from None


def query(sql: str, params: Params = ()) -> List[Row]:
    """Runs one query and returns every row; use `stream` for results that may not fit in memory."""
    try:
        rows = _wit.query(sql, _params(params, sql))
    except Err as e:
        raise _raise(e, sql) from None
    return [tuple(_from_wit(v) for v in row) for row in rows]


def query_one(sql: str, params: Params = ()) -> Row:
    """Runs a query that must return exactly one row, and returns it."""
    rows = query(sql, params)
    if len(rows) != 1:
        raise Decode(f"`{sql}` returned {len(rows)} rows where exactly one was expected")
    return rows[0]


def _decode(packed: "_wit.PackedRows", statement: str) -> List[Row]:
    data = packed.data
    columns = packed.columns
    rows: List[Row] = []
    append = rows.append
    pos = 0
    i64 = _I64.unpack_from
    f64 = _F64.unpack_from
    u32 = _U32.unpack_from
    try:
        for _ in range(packed.count):
            row: List[Value] = []
            put = row.append
            for _ in range(columns):
                tag = data[pos]
                pos += 1
                if tag == 3:
                    (n,) = u32(data, pos)
                    pos += 4
                    put(data[pos : pos + n].decode("utf-8"))
                    pos += n
                elif tag == 1:
                    put(i64(data, pos)[0])
                    pos += 8
                elif tag == 0:
                    put(None)
                elif tag == 2:
                    put(f64(data, pos)[0])
                    pos += 8
                elif tag == 4:
                    (n,) = u32(data, pos)
                    pos += 4
                    put(bytes(data[pos : pos + n]))
                    pos += n
                else:
                    raise Decode(f"the rows of `{statement}` hold an unknown value tag {tag}")
            append(tuple(row))
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise Decode(f"the rows of `{statement}` are malformed: {e}") from None
    return rows


def _decode_batch(packed: "_wit.PackedRows", statement: str) -> List[Row]:
    """The rows of a batch in either layout: by column (what `Rows` asks for) or row by row."""
    data = packed.data
    if not data or data[0] != _COLUMNS:
        return _decode(packed, statement)
    try:
        columns, count = struct.unpack_from("<II", data, 1)
        pos = 9
        cols = []
        for _ in range(columns):
            tag = data[pos]
            pos += 1
            if tag == 1 or tag == 2:
                end = pos + 8 * count
                col = array("q" if tag == 1 else "d")
                col.frombytes(data[pos:end])
                pos = end
            elif tag == 3:
                (n,) = _U32.unpack_from(data, pos)
                pos += 4
                col = data[pos : pos + n].decode("utf-8").split("\0") if count else []
                pos += n
            elif tag == _VALUES:
                (n,) = _U32.unpack_from(data, pos)
                pos += 4
                values = _wit.PackedRows(columns=1, count=count, data=data[pos : pos + n])
                col = [row[0] for row in _decode(values, statement)]
                pos += n
            else:
                raise Decode(f"the rows of `{statement}` hold an unknown column tag {tag}")
            if len(col) != count:
                raise Decode(f"the rows of `{statement}` are malformed: a column of {len(col)} values in {count} rows")
            cols.append(col)
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as e:
        raise Decode(f"the rows of `{statement}` are malformed: {e}") from None
    if pos != len(data) or count != packed.count:
        raise Decode(f"the rows of `{statement}` are malformed: the batch does not end where its columns do")
    if not cols:
        return [()] * count
    return list(zip(*cols))


class Rows:
    """The rows of a query, read from the host in batches of `batch_size` rows.

    Iterate over it (each item is a row tuple); `columns` holds the column names. The cursor is
    released when the rows run out, or with `close()` / a ``with`` block.
    """

    def __init__(self, sql: str, params: Params = (), batch_size: int = DEFAULT_BATCH_ROWS) -> None:
        self.sql = sql
        self.batch_size = min(max(1, int(batch_size)), MAX_BATCH_ROWS)
        try:
            self._cursor: Optional["_wit.Cursor"] = _wit.open_cursor(sql, _params(params, sql))
            self.columns: List[str] = self._cursor.columns()
        except Err as e:
            raise _raise(e, sql) from None

    def batches(self) -> Iterator[List[Row]]:
        """The rows a batch at a time, as lists of tuples."""
        while self._cursor is not None:
            try:
                packed = self._cursor.next_packed(self.batch_size | _COLUMNS_FLAG)
            except Err as e:
                self.close()
                raise _raise(e, self.sql) from None
            if packed.count == 0:
                self.close()
                return
            yield _decode_batch(packed, self.sql)

    def __iter__(self) -> Iterator[Row]:
        # Chained in C: no Python frame resumed per row.
        return chain.from_iterable(self.batches())

    def close(self) -> None:
        """Releases the host's cursor (idempotent)."""
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.__exit__(None, None, None)

    def __enter__(self) -> "Rows":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stream(sql: str, params: Params = (), batch_size: int = DEFAULT_BATCH_ROWS) -> Rows:
    """Starts a query and returns its rows as an iterator of tuples, read in batches."""
    return Rows(sql, params, batch_size)


class Writer:
    """One statement run for many rows: rows are packed and sent `batch_size` at a time.

    >>> w = Writer("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?")
    >>> w.push(("Ada", "Lovelace", 1))
    >>> changed = w.finish()

    Call `finish()` (or use a ``with`` block) so the last batch is sent.

    A row of the wrong shape, or holding a value with no SQL value, is refused by its `push`.
    Text that is not valid Unicode (a lone surrogate) and an integer beyond 64 bits are found
    when the batch is packed (by the `push` that fills it, `flush` or `finish`), and the error
    names the row. Either way the refused row is left out and the others stay in the batch.
    """

    def __init__(self, sql: str, batch_size: int = DEFAULT_BATCH_ROWS) -> None:
        self.sql = sql
        self.batch_size = max(1, int(batch_size))
        self._rows: List[tuple] = []
        self._columns: Optional[int] = None
        self.pushed = 0
        self.changed = 0

    def push(self, row: Params) -> None:
        """Adds a row of parameters, and sends the batch if it is full."""
        if type(row) is not tuple or len(row) != self._columns:
            self._check_row(row)
            row = tuple(row)
        if not _SQL_TYPES.issuperset(map(type, row)):
            for i, v in enumerate(row):
                self._push_value(bytearray(), v, i, self.pushed + 1)
        rows = self._rows
        rows.append(row)
        self.pushed += 1
        if len(rows) >= self.batch_size:
            self.flush()

    def _check_row(self, row: Params) -> None:
        if isinstance(row, (str, bytes)):
            raise Decode(f"a row for `{self.sql}` must be a sequence of values, not one {type(row).__name__}")
        if self._columns is None:
            self._columns = len(row)
        elif len(row) != self._columns:
            raise Decode(
                f"row {self.pushed + 1} for `{self.sql}` has {len(row)} values where the first had {self._columns}"
            )

    def _push_value(self, buf: bytearray, v: Any, column: int, row: int) -> None:
        """Packs one value in the row encoding, or says which one has no SQL value."""
        where = f"value {column + 1} of row {row} for `{self.sql}`"
        if isinstance(v, str):
            b = _check_text(v, where)
            buf += _TEXT_HEADER(3, len(b))
            buf += b
        elif v is None:
            buf += b"\x00"
        elif isinstance(v, int):
            _check_int(v, where)
            buf += _INT_VALUE(1, v)
        elif isinstance(v, float):
            buf += _REAL_VALUE(2, v)
        elif isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
            buf += _TEXT_HEADER(4, len(b))
            buf += b
        else:
            raise Decode(f"{where}: a {type(v).__name__} has no SQL value (use None, int, float, str or bytes)")

    def _pack(self) -> bytes:
        """The pending rows laid out by column: a column of one type in one call into C, any
        other column value by value."""
        rows = self._rows
        count = len(rows)
        out = bytearray(_COLUMNS_HEADER.pack(_COLUMNS, self._columns or 0, count))
        for c, col in enumerate(zip(*rows)):
            types = set(map(type, col))
            if types <= _INT_TYPES:
                try:
                    out.append(1)
                    out += array("q", col).tobytes()
                    continue
                except OverflowError:
                    del out[-1:]
            elif types == {float}:
                out.append(2)
                out += array("d", col).tobytes()
                continue
            elif types == {str}:
                joined = "\0".join(col)
                if joined.count("\0") == count - 1:
                    try:
                        b = joined.encode("utf-8")
                    except UnicodeEncodeError:
                        pass
                    else:
                        out.append(3)
                        out += _U32.pack(len(b))
                        out += b
                        continue
            buf = bytearray()
            first = self.pushed - count + 1
            for i, v in enumerate(col):
                try:
                    self._push_value(buf, v, c, first + i)
                except Decode:
                    # Nothing of a refused row stays in the batch.
                    del rows[i]
                    self.pushed -= 1
                    raise
            out.append(_VALUES)
            out += _U32.pack(len(buf))
            out += buf
        return bytes(out)

    def flush(self) -> int:
        """Sends the pending rows now; returns the rows they changed."""
        if not self._rows:
            return 0
        rows = _wit.PackedRows(columns=self._columns or 0, count=len(self._rows), data=self._pack())
        self._rows = []
        try:
            changed = _wit.execute_packed(self.sql, rows)
        except Err as e:
            raise _raise(e, self.sql) from None
        self.changed += changed
        return changed

    def finish(self) -> int:
        """Sends what is left; returns the rows changed in total."""
        self.flush()
        return self.changed

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.finish()


def execute_many(sql: str, rows: Iterable[Params], batch_size: int = DEFAULT_BATCH_ROWS) -> int:
    """Runs one statement once per row of parameters, packed and sent in batches; returns the
    rows changed in total."""
    w = Writer(sql, batch_size)
    for row in rows:
        w.push(row)
    return w.finish()
