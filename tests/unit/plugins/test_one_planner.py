"""Issue 19's structural guard: no module, action or helper of the collection writes, moves or deletes a file except
through the write planner. Every call that can change the file system is found in the plugins' source (by its
syntax tree, not by text) and must stand in planner.py, or in files.py's primitives that only the planner calls."""

from __future__ import annotations

import ast
import pathlib

import pytest

PLUGINS = pathlib.Path(__file__).resolve().parents[3] / "plugins"
ALLOWED = {"module_utils/_pki/core/planner.py", "module_utils/_pki/core/files.py"}
# Calls that change the file system, by module and name.
CHANGING = {
    "os": {"rename", "replace", "unlink", "remove", "rmdir", "mkdir", "makedirs", "symlink", "link", "chmod", "chown",
           "fchmod", "fchown", "truncate", "ftruncate", "utime", "mkfifo", "removedirs", "renames", "lchown"},
    "shutil": {"rmtree", "copy", "copy2", "copyfile", "copytree", "move", "copyfileobj", "chown"},
    "tempfile": {"mkdtemp", "mkstemp", "NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"},
}
# The planner's own primitives: only the planner may call them.
PRIMITIVES = {"write_atomic", "stage_file", "discard_staged", "apply_attributes", "remove_stale_temporaries"}
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}


def _writes(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.attr in CHANGING.get(func.value.id, ()):
                found.append(f"{func.value.id}.{func.attr} (line {node.lineno})")
            if func.value.id == "os" and func.attr == "open":
                flags = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr in WRITE_FLAGS}
                if flags:
                    found.append(f"os.open with {', '.join(sorted(flags))} (line {node.lineno})")
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in PRIMITIVES:
            found.append(f"{name} (line {node.lineno})")
        if name == "open":
            modes = [k.value for k in node.keywords if k.arg == "mode"]
            mode = node.args[1] if len(node.args) > 1 else (modes[0] if modes else None)
            if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                found.append(f"open(..., {mode.value!r}) (line {node.lineno})")
    return found


SOURCES = sorted(str(p.relative_to(PLUGINS)) for p in PLUGINS.rglob("*.py"))


@pytest.mark.parametrize("source", SOURCES)
def test_nothing_writes_but_the_planner(source):
    if source in ALLOWED:
        return
    found = _writes(ast.parse((PLUGINS / source).read_text()))
    assert found == [], f"{source} changes files outside the write planner: {found}"


def test_the_guard_finds_what_it_looks_for():
    """The scanner itself, on code that does each thing it must refuse."""
    code = ("import os, shutil\nos.rename(a, b)\nshutil.rmtree(c)\nwrite_atomic(p, d, a, w)\n"
            "open(p, 'w')\nos.open(p, os.O_WRONLY | os.O_CREAT)\nopen(p)\nos.path.join(a, b)\n")
    assert [f.split(" (")[0] for f in _writes(ast.parse(code))] == [
        "os.rename", "shutil.rmtree", "write_atomic", "open(..., 'w')", "os.open with O_CREAT, O_WRONLY"]


def test_the_planner_is_where_the_writes_are():
    assert _writes(ast.parse((PLUGINS / "module_utils/_pki/core/planner.py").read_text()))
