"""No function in the library is longer than 80 lines of code (issue 10): a longer one does several things.

A function's code lines are the lines from its ``def`` to its end, less its docstring, blank lines and lines
that hold only a comment. A function in ``kdh_ai/cli/`` (the typer commands) counts from its body: a command's
option declarations (``Annotated[..., typer.Option(...)]``) are in its signature, and they are help text, not
logic.
"""

from __future__ import annotations

import ast
from pathlib import Path


LIBRARY = Path(__file__).resolve().parents[1] / "kdh_ai"
MAX_CODE_LINES = 80

# Functions still over the limit, each being split by another change of issue 10. Remove a name when its
# split lands; the list must end empty.
ALLOWED: dict[str, str] = {}


def code_lines(source_lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef, *, from_body: bool) -> int:
    """Lines of code of ``node``: from its ``def`` (or its first body statement) to its end, without its
    docstring, blank lines and comment-only lines."""
    first = node.body[0]
    docstring: set[int] = set()
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        docstring = set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    start = first.lineno if from_body else node.lineno
    count = 0
    for number in range(start, (node.end_lineno or node.lineno) + 1):
        text = source_lines[number - 1].strip()
        if number not in docstring and text and not text.startswith("#"):
            count += 1
    return count


def function_lengths(root: Path = LIBRARY) -> dict[str, int]:
    """``{"kdh_ai/path.py:name": code lines}`` of every function and method (nested ones included)."""
    lengths: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        rel = path.relative_to(root.parent).as_posix()
        in_cli = path.parent.name == "cli"
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{rel}:{node.name}"
                lengths[key] = max(lengths.get(key, 0), code_lines(lines, node, from_body=in_cli))
    return lengths


def test_no_function_is_longer_than_80_code_lines() -> None:
    lengths = function_lengths()
    assert len(lengths) > 500, "the library's functions were not found"
    too_long = {k: n for k, n in lengths.items() if n > MAX_CODE_LINES and k not in ALLOWED}
    assert not too_long, (f"functions over {MAX_CODE_LINES} lines of code: {too_long}; split them at the seams "
                          "their comments mark (one function, one job)")


def test_allowed_exceptions_are_still_needed() -> None:
    """An allowed function that has become short (or is gone) must leave the list (empty since issue 10)."""
    lengths = function_lengths()
    stale = {name: lengths.get(name) for name in ALLOWED
             if lengths.get(name) is None or lengths[name] <= MAX_CODE_LINES}
    assert not stale, f"{stale} are now short or gone: remove them from ALLOWED in tests/test_function_length.py"


def test_the_count_leaves_out_docstrings_comments_and_cli_signatures(tmp_path: Path) -> None:
    pkg = tmp_path / "kdh_ai"
    (pkg / "cli").mkdir(parents=True)
    body = "\n".join(f"    x{i} = {i}  # code" for i in range(3))
    (pkg / "a.py").write_text(f'def f():\n    """Doc.\n\n    More.\n    """\n\n    # a comment\n{body}\n')
    (pkg / "cli" / "c.py").write_text(f"def command(\n    a: int = 1,\n    b: int = 2,\n):\n{body}\n")
    assert function_lengths(pkg) == {"kdh_ai/a.py:f": 4, "kdh_ai/cli/c.py:command": 3}
