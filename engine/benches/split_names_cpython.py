"""The native CPython baseline of the split_names bench: what a Python user would write with the
standard library's sqlite3, in one transaction: a SELECT, the split in Python, an executemany
UPDATE fed from the query as it streams.

`python3 split_names_cpython.py DATABASE APP_PY` splits with the `split` function (and the
`WHITE_SPACE` it uses) of APP_PY, the Python split-names guest, so both sides run the same
Python loop.
"""

import ast
import sqlite3
import sys


def load_split(app_py):
    """The guest's `split` and what it needs, without importing the guest's SDK."""
    with open(app_py, encoding="utf-8") as f:
        tree = ast.parse(f.read(), app_py)
    keep = [
        node
        for node in tree.body
        if (isinstance(node, ast.ImportFrom) and node.module == "typing")
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WHITE_SPACE" for t in node.targets))
        or (isinstance(node, ast.FunctionDef) and node.name == "split")
    ]
    scope = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), app_py, "exec"), scope)
    return scope["split"]


def main():
    database, app_py = sys.argv[1], sys.argv[2]
    split = load_split(app_py)
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN")
    rows = conn.execute("SELECT id, full_name FROM people")
    changed = conn.executemany(
        "UPDATE people SET first_name = ?, last_name = ? WHERE id = ?",
        ((*split(full_name), id) for id, full_name in rows),
    ).rowcount
    conn.execute("COMMIT")
    conn.close()
    print(changed)


main()
