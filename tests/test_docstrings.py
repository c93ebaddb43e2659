"""Every public function, method and class in clconv/ says what it does in a docstring.

Public: a name without a leading underscore, at module level or on a public class (nested
classes of public classes too). Functions inside functions are helpers and are not held to it;
nor are property setters and deleters (the getter carries the docstring)."""

from __future__ import annotations

import ast
from pathlib import Path

import clconv

PACKAGE = Path(clconv.__file__).parent


def _is_accessor(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """``@name.setter`` / ``@name.deleter``: the property's getter has the docstring."""
    return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list)


def undocumented(tree: ast.Module, where: str) -> list[str]:
    """``where:line name`` of each public function, method or class of ``tree`` without a docstring."""
    missing = []
    scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
    while scopes:
        prefix, body = scopes.pop()
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            if not isinstance(node, ast.ClassDef) and _is_accessor(node):
                continue
            name = prefix + node.name
            if not (ast.get_docstring(node) or "").strip():
                missing.append(f"{where}:{node.lineno} {name}")
            if isinstance(node, ast.ClassDef):
                scopes.append((name + ".", node.body))
    return missing


def test_the_check_finds_what_is_missing():
    source = '''
class Shown:
    """Has one."""

    def method(self):
        pass

    def _private(self):
        pass

    @property
    def value(self):
        """Has one."""

    @value.setter
    def value(self, v):
        pass

    class Inner:
        pass


class _Hidden:
    def method(self):
        pass


def function():
    def helper():
        pass


async def waits():
    """Has one."""
'''
    found = undocumented(ast.parse(source), "m")
    assert sorted(m.split()[1] for m in found) == ["Shown.Inner", "Shown.method", "function"]
    assert "m:5 Shown.method" in found  # where, as the failure message says it


def test_every_public_function_and_class_has_a_docstring():
    paths = sorted(PACKAGE.rglob("*.py"))
    assert len(paths) > 50  # the walk found the package
    missing = [m for p in paths for m in undocumented(ast.parse(p.read_text()), str(p.relative_to(PACKAGE)))]
    assert not missing, f"{len(missing)} without a docstring:\n" + "\n".join(missing)
