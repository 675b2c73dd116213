#!/usr/bin/env bash
# scripts/check-includes.sh [-v] [ROOT] — the #include graph of reactor/,
# config/, proxy/, admin/ and src/ (quoted includes only) must keep the floors:
#   * no cycle between modules (a module is foo.c + foo.h + foo-t.h), so
#     following a connection never climbs back to a file it left;
#   * layers point down only: reactor < config < proxy < admin < src;
#     reactor/ includes nothing above it, and config/ takes from reactor/ only
#     types-only headers (*-t.h); src/ (the program: CLI, signals, the
#     --healthcheck client) may include every layer and none includes it;
#   * proxy/runtime.h (the composition root) is included in proxy/ only by
#     proxy/runtime.c and proxy/runtime_reload.c (admin/ and src/ drive it):
#     nothing on the data path;
#   * a foo-t.h holds types only (HAProxy's rule): no function, no variable;
#     the verbs go in foo.h.
# -v prints the module graph. Exit 1 with one line per violation. Needs only
# python3 (stdlib). Run by scripts/test.sh.
set -euo pipefail
verbose=0
if [ "${1:-}" = "-v" ]; then
  verbose=1
  shift
fi
root=${1:-"$(dirname "$0")/.."}
exec python3 - "$root" "$verbose" <<'PY'
import os
import re
import sys

root, verbose = sys.argv[1], sys.argv[2] == "1"
LAYERS = {"reactor": 0, "config": 1, "proxy": 2, "admin": 3, "src": 4}
RUNTIME_H = "proxy/runtime.h"
RUNTIME_OK = {"proxy/runtime.c", "proxy/runtime_reload.c"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')

files = []
for layer in LAYERS:
    for dirpath, _, names in os.walk(os.path.join(root, layer)):
        for n in names:
            if n.endswith((".c", ".h")):
                files.append(os.path.relpath(os.path.join(dirpath, n), root))
files.sort()


def resolve(src, inc):
    """As the compiler does: the including file's folder, then the root (-I.)."""
    for cand in (os.path.join(os.path.dirname(src), inc), inc):
        cand = os.path.normpath(cand)
        if os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def module(path):
    base = os.path.splitext(path)[0]
    return base[:-2] if base.endswith("-t") else base


errors = []
edges = {}  # module -> {module: "file:line"}
for f in files:
    edges.setdefault(module(f), {})
    with open(os.path.join(root, f), encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            where = f"{f}:{lineno}"
            dst = resolve(f, m.group(1))
            if dst is None:
                errors.append(f"{where}: \"{m.group(1)}\" not found")
                continue
            src_layer, dst_layer = f.split("/")[0], dst.split("/")[0]
            if dst_layer not in LAYERS:
                errors.append(f"{where}: includes {dst}, outside the layers")
                continue
            if LAYERS[dst_layer] > LAYERS[src_layer]:
                errors.append(f"{where}: {src_layer}/ includes {dst} from a layer above it")
            elif src_layer == "config" and dst_layer == "reactor" and not dst.endswith("-t.h"):
                errors.append(f"{where}: config/ takes only types-only headers (*-t.h) "
                              f"from reactor/, not {dst}")
            if dst == RUNTIME_H and src_layer == "proxy" and f not in RUNTIME_OK | {RUNTIME_H}:
                errors.append(f"{where}: includes {RUNTIME_H}: in proxy/ only runtime.c may "
                              "(the composition root is not on the data path)")
            if module(dst) != module(f):
                edges[module(f)].setdefault(module(dst), where)



def declarations(text):
    """Top-level function declarations or definitions and extern variables."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"\\\n", " ", text)
    text = "\n".join(ln for ln in text.split("\n") if not ln.lstrip().startswith("#"))
    found, depth, stmt, body = [], 0, "", False
    for ch in text:
        if ch == "{":
            if depth == 0 and re.search(r"\)\s*$", stmt):
                found.append(stmt)
                body = True
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and body:
                stmt, body = "", False
        elif ch == ";" and depth == 0:
            st = " ".join(stmt.split())
            if st and not st.startswith("typedef") and ("(" in st or st.startswith("extern")):
                found.append(st)
            stmt = ""
        elif depth == 0:
            stmt += ch
    return [" ".join(f.split()) for f in found]


for f in files:
    if f.endswith("-t.h"):
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            for d in declarations(fh.read()):
                errors.append(f"{f}: a types-only header declares \"{d[:70]}\": "
                              f"move it to {f[:-4]}.h")

# Cycles: Tarjan's strongly connected components; report one cycle per
# component, with the include that makes each step.
index, low, on_stack, stack, sccs = {}, {}, set(), [], []


def strongconnect(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, {})):
        if w not in index:
            strongconnect(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in sorted(edges):
    if v not in index:
        strongconnect(v)


def one_cycle(comp):
    """A path from comp[0] back to itself inside the component (BFS)."""
    members, start = set(comp), comp[0]
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, {})):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                path.reverse()
                return path + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


for comp in sccs:
    cyc = one_cycle(comp)
    steps = ", ".join(f"{a} -> {b} ({edges[a][b]})" for a, b in zip(cyc, cyc[1:]))
    errors.append(f"include cycle between {', '.join(comp)}: {steps}")

if verbose:
    for v in sorted(edges):
        if edges[v]:
            print(f"{v} -> {' '.join(sorted(edges[v]))}")

for e in errors:
    print(e, file=sys.stderr)
if errors:
    print(f"include graph: {len(errors)} violation(s)", file=sys.stderr)
    sys.exit(1)
print(f"include graph: {len(files)} files, {len(edges)} modules, no cycle, layers kept")
PY
