"""``crdr evaluate``: the Hydra app over conf/evaluate.yaml (see that file for every option). Light: the
evaluation itself (crdr.evaluation.pipeline, torch and the metrics) is imported when the app runs, so
``crdr evaluate --help`` and config errors come at once."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from crdr.cli.hydra_app import run_hydra_app
from crdr.data.fetch import dataset_folder, verify
from crdr.data.manifest import ManifestError, find_manifest
from crdr.io.errors import ConfigError

log = logging.getLogger("crdr.evaluate")


def resolve_dataset(dataset: str, data_root: str | Path) -> tuple[Path, str | None]:
    """The folder of ``dataset`` and its name in the official CSVs (None for a folder of one's own).

    ``dataset`` is an existing folder, or a set fetched by ``crdr data fetch`` into ``data_root``, named as
    in the official CSVs (``kodak``, ``CLIC``, ``DIV2K``) or as for ``crdr data`` (``clic2020-test``, ...).
    A named set must be complete (every image present with its recorded size): results on a partial set
    would not be comparable with published ones.
    """
    if Path(dataset).exists():
        return Path(dataset), None
    try:
        manifest = find_manifest(dataset)
    except ManifestError:
        raise FileNotFoundError(f"dataset {dataset!r}: no such folder, and not a known set") from None
    if manifest.evaluation_name is None:
        raise ConfigError(f"{manifest.name} is a training set; evaluate on kodak, CLIC or DIV2K")
    problems = verify(manifest, data_root, full=False)
    if problems:
        raise FileNotFoundError(
            f"dataset {dataset}: {problems[0]} (run: crdr data fetch {manifest.name} --root {data_root})"
        )
    return dataset_folder(manifest, Path(data_root)), manifest.evaluation_name


def run(cfg: DictConfig) -> list[dict[str, str]]:
    """Evaluates the grid, writes CSVs and plots into ``cfg.output_dir``; returns the summary rows."""
    folder, official_name = resolve_dataset(str(cfg.dataset), cfg.data_root)
    from crdr.evaluation.pipeline import evaluate_dataset  # torch and the metrics: not for --help

    return evaluate_dataset(cfg, folder, official_name)


def main(overrides: Sequence[str] | None = None) -> None:
    """Runs the app; ``overrides`` replace the command-line arguments (``crdr evaluate`` passes its own)."""
    if overrides is not None:
        sys.argv = [f"{Path(sys.argv[0]).name} evaluate", *overrides]
    run_hydra_app("evaluate", run, log)


if __name__ == "__main__":
    main()
