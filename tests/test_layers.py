"""The layers of DESIGN.md hold: no import cycles inside ``netring`` or ``netring_testkit`` (lazy
imports inside functions count too) and ``netring`` never imports ``netring_testkit``.

Run as a script (``python tests/test_layers.py``) to print the import graph's cycles.
"""
import ast
import os
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("netring", "netring_testkit")


def _modules():
    """``{dotted name: path}`` of every module of the two packages."""
    out = {}
    for pkg in PACKAGES:
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(dirpath, f)
    return out


def _resolve(mod, is_pkg, node):
    """Absolute module name an ``ImportFrom`` node's ``module`` refers to."""
    if not node.level:
        return node.module
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph():
    """``{module: set of modules of the two packages it imports anywhere in its body}``."""
    mods = _modules()
    graph = {}
    for mod, path in mods.items():
        is_pkg = path.endswith("__init__.py")
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, is_pkg, node)
                names = ["%s.%s" % (target, a.name) if "%s.%s" % (target, a.name) in mods else target
                         for a in node.names]
            else:
                continue
            for name in names:
                # ``import a.b.c`` depends on the module a.b.c (its parents are imported as a side
                # effect, not a dependency of this module's code); a name that is no .py module here
                # (the compiled ``netring._core``, another distribution) is no edge.
                if name in mods and name != mod:
                    deps.add(name)
        graph[mod] = deps
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], "import cycles (lazy imports count): %s" % "; ".join(" <-> ".join(c) for c in found)


def test_netring_never_imports_testkit():
    bad = sorted("%s -> %s" % (m, d) for m, deps in import_graph().items() if m.split(".")[0] == "netring"
                 for d in deps if d.split(".")[0] == "netring_testkit")
    assert bad == []


if __name__ == "__main__":
    g = import_graph()
    for c in cycles(g):
        print("cycle:", " <-> ".join(c))
        for m in c:
            print("   %s -> %s" % (m, ", ".join(sorted(d for d in g[m] if d in c))))
