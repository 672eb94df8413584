"""The benchmark's test code as the judge runs it: every ``assert`` rewritten to record its own
outcome, and the names the code reads that it does not bind. Standard library only (run in the
server; the host uses ``free_names`` to build plans)."""

from __future__ import annotations

import ast

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.candidate import shorten


RECORD_FN = "__boundary_assert__"
"""Name the rewritten asserts call (see ``rewrite_asserts``)."""


class _AssertRewriter(ast.NodeTransformer):
    def __init__(self, source: str):
        self.source = source

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        text = ast.get_source_segment(self.source, node) or f"assert on line {node.lineno}"
        thunk = ast.Lambda(
            args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                               defaults=[]),
            body=node.test,
        )
        call = ast.Call(ast.Name(RECORD_FN, ast.Load()), [ast.Constant(shorten(text, 160)), thunk], [])
        return ast.copy_location(ast.Expr(call), node)


def rewrite_asserts(source: str, filename: str = "<tests>"):  # noqa: ANN201 - a code object
    """Compile test code with every ``assert T`` turned into ``RECORD_FN(text, lambda: T)``."""
    tree = _AssertRewriter(source).visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")


def free_names(source: str) -> list[str]:
    """Names the code reads that it does not bind itself (candidates for the program's names)."""
    tree = ast.parse(source)
    loaded: dict[str, None] = {}
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded[node.id] = None
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return [name for name in loaded if name not in bound]
