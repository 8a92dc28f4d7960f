"""Layout checks for issue 10: module sizes, function lengths, private names across modules.

usage: python /tmp/layout_check.py [paths...]   (default: keras_convviz tb_plugin)
"""
import ast, os, sys

MAX_MODULE, MAX_FUNC = 400, 60
roots = sys.argv[1:] or ["keras_convviz", "tb_plugin"]
files = []
for root in roots:
    if root.endswith(".py"):
        files.append(root); continue
    for d, _, fs in os.walk(root):
        files += [os.path.join(d, f) for f in fs if f.endswith(".py")]
ours = {"keras_convviz", "tb_plugin"}
problems = 0
defined = {}  # module path -> private top-level names
for path in sorted(files):
    src = open(path).read()
    n = len(src.splitlines())
    if n > MAX_MODULE:
        print(f"MODULE {path}: {n} lines"); problems += 1
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNC:
                print(f"FUNC {path}:{node.lineno} {node.name}: {length} lines"); problems += 1
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod.split(".")[0] in ours:
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        print(f"PRIVATE-IMPORT {path}:{node.lineno} {mod}.{alias.name}"); problems += 1
    # attribute access to a private name of another object: x._name where x is not self/cls
    own_attrs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            print(f"PRIVATE-ATTR? {path}:{node.lineno} .{node.attr}")
print(f"{problems} problems (PRIVATE-ATTR? lines are for review: Keras/TF internals may be unavoidable)")
