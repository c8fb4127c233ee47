"""Names shared by the result tables, the plots and the CLI parser (importable without pandas or matplotlib)."""

from __future__ import annotations

DEFAULT_METRICS = ("PSNR", "FID", "LPIPS", "DISTS")
#: Official result sets: lower-case key -> the name in the official CSV files (rd_results_<name>.csv).
OFFICIAL_DATASETS = {"kodak": "kodak", "clic": "CLIC", "clic_reproduce": "CLIC_reproduce", "div2k": "DIV2K"}
