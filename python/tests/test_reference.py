"""The guide's Python reference is what tools/python-reference.py generates from the installed
package: a renamed keyword or a new function shows up as a difference here."""

import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_python_reference_page_is_the_generated_one():
    generated = runpy.run_path(str(REPO / "tools/python-reference.py"))["reference"]()
    committed = (REPO / "docs/book/src/python-reference.md").read_text(encoding="utf-8")
    assert generated == committed, (
        "docs/book/src/python-reference.md differs from the package; regenerate it with\n"
        "  target/pyenv/bin/python tools/python-reference.py docs/book/src/python-reference.md"
    )
