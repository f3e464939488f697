#!/usr/bin/env python3
"""Checks the library's module graph: no import cycles between top-level modules or between
the files of one module, and none of the arrows from a lower concern to a higher one that the
restructuring removed. Exit 1 and a list of offending edges when one comes back.

Usage: python3 tools/imports.py [-v]   (-v prints every top-level edge)
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "infodisent", "src")
# A lower concern must not import a higher one.
FORBIDDEN = [("explain", "metrics"), ("explain", "report"), ("mi", "explain"), ("onnx", "engine"),
             ("head", "train"), ("head", "explain"), ("draw", "explain"), ("cache", "explain"),
             ("report", "serve"), ("explain", "serve"), ("cache", "serve"),
             # A backbone is built in `backbone`, never taken from extraction.
             ("serve", "extract"), ("predict", "extract"), ("metrics", "extract"),
             ("explain", "extract"), ("backbone", "extract")]


def modules():
    mods = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel == ["lib"]:
                continue
            text = open(os.path.join(dirpath, f)).read()
            cut = text.find("#[cfg(test)]")
            text = text if cut < 0 else text[:cut]
            mods["::".join(rel)] = re.sub(r"//[^\n]*", "", text)
    return mods


def edges(mods):
    def resolve(target):
        while target not in mods and "::" in target:
            target = target.rsplit("::", 1)[0]
        return target if target in mods else None

    out = set()
    for name, text in mods.items():
        parent = name.split("::")[:-1]
        targets = re.findall(r"crate::([a-z_]+(?:::[a-z_]+)?)", text)
        targets += ["::".join(parent + [t]) for t in re.findall(r"super::([a-z_]+)", text)]
        for group in re.findall(r"super::\{([^}]*)\}", text):
            targets += ["::".join(parent + [t]) for t in re.findall(r"\b([a-z_]+)\b", group)]
        for t in targets:
            t = resolve(t)
            if t and t != name:
                out.add((name, t))
    return out


def cyclic(graph_edges):
    adjacent = {}
    for a, b in graph_edges:
        adjacent.setdefault(a, set()).add(b)
    found = []
    for a, b in sorted(graph_edges):
        seen, stack = {b}, [b]
        while stack:
            x = stack.pop()
            if x == a:
                found.append((a, b))
                break
            for y in adjacent.get(x, ()):
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
    return found


def main():
    mods = modules()
    all_edges = edges(mods)
    top = lambda m: m.split("::")[0]
    top_edges = {(top(a), top(b)) for a, b in all_edges if top(a) != top(b)}
    problems = [f"cycle: {a} -> {b}" for a, b in cyclic(top_edges)]
    for package in sorted({top(m) for m in mods}):
        inner = {(a, b) for a, b in all_edges
                 if top(a) == package == top(b) and package not in (a, b)}
        problems += [f"cycle inside {package}: {a} -> {b}" for a, b in cyclic(inner)]
    problems += [f"lower concern imports higher: {a} -> {b}"
                 for a, b in FORBIDDEN if (a, b) in top_edges]
    if "-v" in sys.argv:
        for a, b in sorted(top_edges):
            print(f"{a} -> {b}")
    for p in problems:
        print(p)
    print(f"{len(mods)} modules, {len(top_edges)} edges between top-level modules, "
          f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
