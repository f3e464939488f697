#!/usr/bin/env python3
"""Writes the Python package's reference (docs/book/src/python-reference.md) from the installed
package itself: every public function, class, method and property with its signature and
docstring, so the page cannot drift from the code. A test compares the committed page with this
output.

Usage: python tools/python-reference.py [OUT.md]   (prints to stdout without OUT)
"""

from __future__ import annotations

import inspect
import sys

import infodisent

HEADER = """# Python reference

Generated from the installed package (`python tools/python-reference.py`); a test fails when
this page and the package differ. [From Python](python.md) is the guide; every call here runs
the library function the command line runs, with the CLI's defaults. Paths may be `str` or
`os.PathLike`. What `Explanation.to_dict()` returns (and `infodisent explain --json` prints per
image) is specified by the JSON Schema [`explanation.schema.json`](explanation.schema.json).
"""


def signature(obj: object, name: str) -> str:
    try:
        sig = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        sig = "(...)"
    sig = sig.replace("(self, ", "(").replace("(self)", "()").replace("(cls, ", "(")
    # The compiled module's signatures mark positional-only with `/` and show defaults it
    # computes (the CLI's) as `...`.
    sig = sig.replace("(/, ", "(").replace("(/)", "()").replace("=Ellipsis", "=...")
    return f"{name}{sig}"


def doc(obj: object) -> str:
    text = inspect.getdoc(obj) or ""
    return text.strip()


def member_lines(cls: type) -> list[str]:
    lines: list[str] = []
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, (property,)) or type(member).__name__ == "getset_descriptor":
            lines += [f"- **`{name}`** (property): {' '.join(doc(member).split())}"]
        elif callable(member) or isinstance(member, (staticmethod, classmethod)):
            func = getattr(cls, name)
            text = " ".join(doc(func).split())
            lines += [f"- **`{signature(func, name)}`**: {text}"]
    return lines


def reference() -> str:
    out = [HEADER]
    names = sorted(n for n in infodisent.__all__ if n != "__version__")
    classes = [n for n in names if inspect.isclass(getattr(infodisent, n))]
    errors = [n for n in classes if issubclass(getattr(infodisent, n), BaseException)]
    functions = [n for n in names if n not in classes and callable(getattr(infodisent, n))]
    modules = [n for n in names if inspect.ismodule(getattr(infodisent, n))]
    out.append("## Functions\n")
    for n in functions:
        f = getattr(infodisent, n)
        out.append(f"### `{signature(f, 'infodisent.' + n)}`\n\n{doc(f)}\n")
    out.append("## Classes\n")
    for n in classes:
        if n in errors:
            continue
        cls = getattr(infodisent, n)
        out.append(f"### `infodisent.{n}`\n\n{doc(cls)}\n")
        if "__new__" in cls.__dict__ and n == "Backbone":
            out.append(f"- **`{signature(cls, n)}`**: loads the model (`...`: the CLI's default).")
        out += member_lines(cls)
        out.append("")
    for n in modules:
        mod = getattr(infodisent, n)
        out.append(f"## `infodisent.{n}`\n\n{doc(mod)}\n")
        own = [k for k, v in vars(mod).items() if not k.startswith("_")
               and inspect.isfunction(v) and v.__module__ == mod.__name__]
        for fn in sorted(own):
            f = getattr(mod, fn)
            out.append(f"### `{signature(f, f'infodisent.{n}.{fn}')}`\n\n{doc(f)}\n")
    out.append("## Exceptions\n")
    for n in errors:
        cls = getattr(infodisent, n)
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        out.append(f"- **`{n}({bases})`**: {' '.join(doc(cls).split())}")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    text = reference()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
