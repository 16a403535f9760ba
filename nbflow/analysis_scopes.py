"""Nested scopes for the static analysis: what a function, class, lambda or comprehension body touches.

Owns ``Scope`` (the bindings, loads and in-place changes of one body), ``function_scope``,
``class_scope`` and ``comprehension_scope`` (each returns the body's free names and the
global names it writes) and ``definition_time_exprs`` (decorators, defaults, annotations:
evaluated where a function is defined, not when it runs). The top-level walk in execution
order, with definite assignment, is ``analysis.py``'s.

Pure: takes AST nodes, returns names. It must not walk top-level statements or know
hidden state (``hidden_rules.py``); which calls change their arguments is ``analysis_rules.py``'s.
"""

from __future__ import annotations

import ast

from .analysis_rules import base_name, call_mutations


class Scope(ast.NodeVisitor):
    """Collects bindings and loads of one function/class/lambda/comprehension body."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.loads: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.mutated: set[str] = set()
        self.nested_free: set[str] = set()
        self.nested_global_writes: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.bound.add(node.id)

    def _mutation_target(self, node: ast.AST) -> None:
        name = base_name(node)
        if name:
            self.loads.add(name)
            self.mutated.add(name)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._target(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.loads.add(node.target.id)
        self._target(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
        self._target(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target)

    def _target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.bound.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                self._target(elt)
        elif isinstance(target, ast.Starred):
            self._target(target.value)
        else:
            self._mutation_target(target)
            self.generic_visit(target)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        for name in call_mutations(node):
            self.loads.add(name)
            self.mutated.add(name)

    def visit_Global(self, node: ast.Global) -> None:
        self.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.declared_nonlocal.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bound.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bound.add(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bound.add(node.rest)
        self.generic_visit(node)

    def _nested(self, free: set[str], global_writes: set[str]) -> None:
        self.nested_free |= free
        self.nested_global_writes |= global_writes

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.bound.add(node.name)
        for expr in definition_time_exprs(node):
            self.visit(expr)
        self._nested(*function_scope(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in definition_time_exprs(node):
            self.visit(expr)
        self._nested(*function_scope(node))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bound.add(node.name)
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._nested(*class_scope(node))

    def _comprehension(self, node: ast.AST) -> None:
        free, walrus = comprehension_scope(node)
        self.loads |= free
        self.bound |= walrus

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension


def definition_time_exprs(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.AST]:
    """Decorators, defaults and annotations: evaluated where the function is defined."""
    args = node.args
    exprs: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if not isinstance(node, ast.Lambda):
        exprs += node.decorator_list
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        exprs += [a.annotation for a in every if a is not None and a.annotation is not None]
        if node.returns is not None:
            exprs.append(node.returns)
    return exprs


def function_scope(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> tuple[set[str], set[str]]:
    """(free names, global names written) of a function or lambda body."""
    scope = Scope()
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    scope.bound |= {a.arg for a in params if a is not None}
    for stmt in node.body if isinstance(node.body, list) else [node.body]:
        scope.visit(stmt)
    local = scope.bound - scope.declared_global - scope.declared_nonlocal
    free = (scope.loads | scope.nested_free) - local
    global_writes = (
        (scope.declared_global & (scope.bound | scope.mutated))
        | (scope.mutated - local)
        | (scope.nested_global_writes - local)
    )
    return free, global_writes


def class_scope(node: ast.ClassDef) -> tuple[set[str], set[str]]:
    """(free names, global names written) of a class body and its methods.

    Names bound in a class body are not visible inside its methods, so the methods'
    free names are kept whole.
    """
    scope = Scope()
    for stmt in node.body:
        scope.visit(stmt)
    local = scope.bound - scope.declared_global
    free = (scope.loads - local) | scope.nested_free
    global_writes = (scope.declared_global & scope.bound) | (scope.mutated - local) | scope.nested_global_writes
    return free, global_writes


def comprehension_scope(node: ast.AST) -> tuple[set[str], set[str]]:
    """(free names, walrus targets bound in the enclosing scope) of a comprehension."""
    generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
    outer = Scope()
    outer.visit(generators[0].iter)
    inner = Scope()
    for i, gen in enumerate(generators):
        if i:
            inner.visit(gen.iter)
        targets = Scope()
        targets._target(gen.target)
        inner.bound |= targets.bound
        for cond in gen.ifs:
            inner.visit(cond)
    if isinstance(node, ast.DictComp):
        inner.visit(node.key)
        inner.visit(node.value)
    else:
        inner.visit(node.elt)  # type: ignore[attr-defined]
    walrus = {n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name)}
    comprehension_local = inner.bound - walrus
    free = outer.loads | outer.nested_free | ((inner.loads | inner.nested_free) - comprehension_local)
    return free, walrus
