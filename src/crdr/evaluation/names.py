"""Names shared by the result tables, the plots and the CLI parser (importable without pandas or matplotlib)."""

from __future__ import annotations

#: The paper's 17 rate points q = 0, 0.25, ..., 4 and the two realism levels of its figures (Fig. 5): the grid of
#: its results (conf/evaluate.yaml's ``grid`` lists the same values).
PAPER_Q: tuple[float, ...] = tuple(i / 4 for i in range(17))
PAPER_BETA: tuple[float, ...] = (0.0, 3.84)
DEFAULT_METRICS = ("PSNR", "FID", "LPIPS", "DISTS")
#: Official result sets: lower-case key -> the name in the official CSV files (rd_results_<name>.csv).
OFFICIAL_DATASETS = {"kodak": "kodak", "clic": "CLIC", "clic_reproduce": "CLIC_reproduce", "div2k": "DIV2K"}
