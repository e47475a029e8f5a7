# Copyright (c) bevt contributors. All rights reserved.
"""The package's import graph: no cycle, and the dependency direction
``converters -> models`` (models never import converter code)."""
import ast
import os
import os.path as osp
from typing import Dict, List, Set

from bevt.testing import REPO_ROOT


def import_graph(root: str) -> Dict[str, Set[str]]:
    """{module: bevt modules it imports} over ``root/bevt``, counting
    imports at any level (inside functions too)."""
    modules = {}
    for folder, _, files in os.walk(osp.join(root, 'bevt')):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                module = osp.relpath(path, root)[:-3].replace(os.sep, '.')
                modules[module.removesuffix('.__init__')] = path
    graph = {}
    for module, path in modules.items():
        package = module if path.endswith('__init__.py') \
            else module.rsplit('.', 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split('.')
                    parts = parts[:len(parts) - node.level + 1]
                    if node.module:
                        parts.append(node.module)
                    name = '.'.join(parts)
                else:
                    name = node.module or ''
                names = [name] + [f'{name}.{a.name}' for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deps.update(n for n in names if n in modules and n != module)
        graph[module] = deps
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module."""
    order, low, stack, found = {}, {}, [], []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for dep in graph[node]:
            if dep not in order:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], order[dep])
        if low[node] == order[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in order:
            visit(node)
    return found


def test_cycles_are_found():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert cycles(graph) == [['a', 'b', 'c']]
    assert cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycle_in_bevt():
    graph = import_graph(REPO_ROOT)
    assert 'bevt.models.backbones.bevt_swin' in graph
    assert cycles(graph) == []


def test_models_import_no_converter():
    graph = import_graph(REPO_ROOT)
    wrong = [(module, dep) for module, deps in graph.items()
             if module.startswith('bevt.models') for dep in deps
             if dep.startswith('bevt.utils.checkpoint_convert')]
    assert wrong == []
