"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient) and its last
cell shows the rendered explanation."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_notebook_renders_an_explanation(tmp_path):
    nb = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    last = nb.cells[-1].outputs
    html = next(o["data"]["text/html"] for o in last if "text/html" in o.get("data", {}))
    assert "data:image/png;base64," in html and "channels carry 95%" in html
    printed = "".join(o.get("text", "") for o in nb.cells[-3].outputs)
    assert "positive map (28, 28)" in printed, printed
    assert (tmp_path / "runs/quickstart/head").is_dir()
