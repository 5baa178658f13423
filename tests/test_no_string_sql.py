"""No SQL is built from strings: every query is SQLAlchemy's or has bound parameters.

A test over the sources, so a new f-string query fails CI instead of waiting for review.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("envelope", "catalog", "exchange", "adapters")
RUNNERS = {"execute", "executemany", "executescript", "exec_driver_sql", "text"}


def _is_built(node: ast.AST) -> bool:
    """A string made at run time: an f-string with values, %, + or .format()."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def offenders() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "/v1/" in path.as_posix():
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in RUNNERS and _is_built(node.args[0]):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_query_is_built_from_strings() -> None:
    assert offenders() == []


def test_the_check_finds_a_built_query(tmp_path: Path) -> None:
    tree = ast.parse('conn.execute(f"SELECT * FROM t WHERE a = {value}")')
    call = tree.body[0].value  # type: ignore[attr-defined]
    assert _is_built(call.args[0])
    assert not _is_built(ast.parse('"SELECT * FROM t WHERE a = ?"').body[0].value)  # type: ignore[attr-defined]
