"""Executes the notebooks in ``notebooks/`` top to bottom (CPU, tiny checkpoint) and checks their outputs."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is needed to run the notebooks (pip install nbformat)")
nbclient = pytest.importorskip("nbclient", reason="nbclient is needed to run the notebooks (pip install nbclient)")
kernelspec = pytest.importorskip(
    "jupyter_client.kernelspec", reason="jupyter_client is needed to run the notebooks (pip install ipykernel)"
)
pytest.importorskip("ipykernel", reason="ipykernel is needed to run the notebooks (pip install ipykernel)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"
CELL_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel runs this interpreter, the bundled tiny checkpoint, and does not oversubscribe the CPUs."""
    monkeypatch.delenv("CRDR_CHECKPOINT", raising=False)
    # Kernel specs of this environment (ipykernel's python3 -> sys.executable) before user-level ones.
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as conftest does for the workers themselves


def execute(name: str) -> nbformat.NotebookNode:
    """Runs ``notebooks/<name>.ipynb`` in a fresh python3 kernel from the repository root; returns it executed."""
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    # Proves the kernel is this environment's Python (not another python3 kernel spec on the machine).
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint('kernel prefix:', sys.prefix)"))
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    assert f"kernel prefix: {sys.prefix}" in stdout(nb), "the notebook ran in another Python environment"
    return nb


def stdout(nb: nbformat.NotebookNode) -> str:
    """Everything the code cells printed, plus their plain-text results."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            elif output.output_type in {"execute_result", "display_data"}:
                parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", []))


def test_python3_kernel_is_this_interpreter() -> None:
    spec = kernelspec.KernelSpecManager().get_kernel_spec(KERNEL)
    # jupyter_client replaces a bare "python" by sys.executable when it launches the kernel.
    assert spec.argv[0] in {"python", "python3", sys.executable}, spec.argv


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_notebooks_are_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None and cell.outputs == [], f"{path.name}: clear the outputs"


def test_notebook_set() -> None:
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == {"realism_control", "rd_curves", "bitstream_inspection"}


def test_realism_control() -> None:
    nb = execute("realism_control")
    text = stdout(nb)
    rates = {float(q): float(bpp) for q, bpp in re.findall(r"q=(\d+): \d+ bytes, (\d+\.\d+) bpp", text)}
    assert set(rates) == {0.0, 2.0, 4.0}, text
    assert rates[0.0] < rates[4.0]
    assert "max |decoded - forward| at q=2, beta=5.12: 0.00e+00" in text
    assert "PSNR beta=0" in text and "PSNR beta=5.12" in text
    assert images(nb) >= 2  # the q x beta grid and the zoomed crops


def test_rd_curves() -> None:
    nb = execute("rd_curves")
    text = stdout(nb)
    assert "evaluated 6 grid points on 3 images" in text
    assert re.search(r"official Kodak: 34 rows", text)
    assert re.search(r"ours: +6 rows, bpp \d+\.\d+\.\.\d+\.\d+, PSNR", text)
    assert images(nb) >= 1  # the RD figure
    assert "removed the temporary folder" in text


def test_bitstream_inspection() -> None:
    nb = execute("bitstream_inspection")
    text = stdout(nb)
    assert re.search(r"magic: CRDR\n\s+version: 1\n", text)
    assert re.search(r"q=2: \d+\.\d+ bpp in the file, \d+\.\d+ bpp estimated", text)
    assert "refused: this bitstream was made with another model" in text
    assert "one flipped bit: checksum mismatch: the bitstream is corrupt" in text
    assert "truncated: string lengths" in text
    assert "not a .crdr file: not a .crdr bitstream (wrong magic bytes)" in text
    assert "beta=5.12: max |decoded - forward| = 0.00e+00" in text
