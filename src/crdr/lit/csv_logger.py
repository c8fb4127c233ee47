"""A CSV metrics log that a resumed run continues instead of deleting."""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from crdr.io.files import atomic_path


class ContinuingExperimentWriter(ExperimentWriter):
    """Keeps an existing ``metrics.csv``. The first save of this process drops the old rows from its
    first logged step on (the stopped run's iterations after its checkpoint, which are logged anew)
    and widens the header to the union of old and new columns; then rows are appended as usual.

    Whole-file rewrites (that one, and Lightning's when a new column appears) go to a temporary
    file renamed over ``metrics.csv``: a kill leaves the old or the new file, never a cut one. An
    append cut by a kill leaves one partial last line, which a resumed run drops.
    """

    def __init__(self, log_dir: str) -> None:
        self._continuing = False
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning deletes metrics.csv here
        self._continuing = self._fs.isfile(self.metrics_file_path)

    def save(self) -> None:
        if self._continuing and self.metrics:
            self._continuing = False
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                reader = csv.DictReader(f)
                old_keys, rows = list(reader.fieldnames or []), list(reader)
            first_new = min((int(m["step"]) for m in self.metrics if "step" in m), default=None)
            if first_new is not None:  # rows without a readable step (a line cut by a kill) go too
                rows = [r for r in rows if (step := _step(r)) is not None and step < first_new]
            self.metrics_keys = sorted(set(old_keys) | set(self.metrics_keys))
            self._write_all(self.metrics_keys, rows)
        super().save()

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:  # Lightning's rewrites in place
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        self._write_all(fieldnames, rows)

    def _write_all(self, fieldnames: list[str], rows: list[dict[str, str]]) -> None:
        """metrics.csv replaced in one rename (a local folder, as the checkpoints' ``atomic_path``)."""
        with atomic_path(self.metrics_file_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)


def _step(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


class ContinuingCsvLogger(CSVLogger):
    """Lightning's ``CSVLogger`` whose ``metrics.csv`` survives a resume (see ``ContinuingExperimentWriter``)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
