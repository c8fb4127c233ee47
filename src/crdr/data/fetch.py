"""Fetching a dataset into ``<root>/<folder>`` and verifying it later.

Layout under ``root`` (what ``conf/data`` and ``crdr evaluate dataset=NAME`` expect)::

    kodak/kodim01.png ... kodim24.png
    clic2020-test/professional/*.png (250)  clic2020-test/mobile/*.png (178)
    div2k-valid/0801.png ... 0900.png
    openimages/train_0/*.jpg ... openimages/train_9/*.jpg
    downloads/   archives while they are fetched (removed after extraction unless kept)

Single images are downloaded straight into the dataset folder; archives into ``downloads/``,
verified, then their images extracted. ``<folder>/crdr-dataset.json`` records every file written
with its size and SHA-256 and which sources are done, so an interrupted fetch continues where it
stopped and ``verify`` can check sets whose manifest has no per-image digests (those digests are
then as trustworthy as the pinned archive digests they were extracted from).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crdr.data.archives import extract_images
from crdr.data.download import Progress, check_file, download
from crdr.data.manifest import DatasetManifest, FileDigest, Source
from crdr.io.files import IMAGE_SUFFIXES, sha256_file, write_text_atomic

log = logging.getLogger("crdr.data")

RECORD_NAME = "crdr-dataset.json"
LOCK_NAME = ".crdr-fetch.lock"
DOWNLOADS = "downloads"

#: ``progress_for(label, total_bytes_or_None)`` gives the callback of one download.
ProgressFactory = Callable[[str, int | None], Progress]


@dataclass
class _Record:
    """The contents of ``crdr-dataset.json``."""

    name: str
    #: Source file name -> the images it gave (paths relative to the dataset folder).
    sources_done: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False

    @classmethod
    def load(cls, folder: Path, name: str) -> _Record:
        path = folder / RECORD_NAME
        if not path.exists():
            return cls(name)
        try:
            data = json.loads(path.read_text())
            return cls(name, dict(data["sources_done"]), dict(data["files"]), bool(data["complete"]))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s is unreadable; starting the record again", path)
            return cls(name)

    def save(self, folder: Path) -> None:
        data = {
            "name": self.name,
            "written_by": "crdr data fetch",
            "updated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "complete": self.complete,
            "sources_done": self.sources_done,
            "files": dict(sorted(self.files.items())),
        }
        write_text_atomic(folder / RECORD_NAME, json.dumps(data, indent=1) + "\n")


def dataset_folder(manifest: DatasetManifest, root: Path) -> Path:
    return Path(root) / manifest.folder


def manual_instructions(manifest: DatasetManifest, root: Path) -> str:
    """What to download by hand and where to put it, for machines without network."""
    folder = dataset_folder(manifest, root)
    lines = [f"Without network, download these file(s) by hand from {manifest.homepage or 'the URLs below'}:"]
    for source in manifest.sources:
        where = Path(root) / DOWNLOADS if source.is_archive else folder
        lines.append(f"  {source.url}  ->  {where / source.filename}")
    lines.append(f"then run `crdr data fetch {manifest.name} --root {root}` again to verify (and extract) them.")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Options:
    """How ``fetch`` downloads (see its arguments)."""

    timeout: float
    keep_downloads: bool
    progress_for: ProgressFactory | None


def _fetch_source(source: Source, manifest: DatasetManifest, root: Path, record: _Record, options: _Options) -> None:
    folder = dataset_folder(manifest, root)
    dest = (Path(root) / DOWNLOADS if source.is_archive else folder) / source.filename
    if dest.exists():
        problem = check_file(dest, source.size, source.sha256)
        if problem is not None:
            raise ValueError(f"{dest} is there but has {problem}; delete it (or replace it) and run again")
        log.info("%s: using %s", manifest.name, dest)
    else:
        log.info("%s: downloading %s", manifest.name, source.url)
        progress = None if options.progress_for is None else options.progress_for(source.filename, source.size)
        download(source.url, dest, size=source.size, sha256=source.sha256, timeout=options.timeout, progress=progress)
    if source.is_archive:
        log.info("%s: extracting %s", manifest.name, dest.name)
        prefix = f"{source.extract_to}/" if source.extract_to else ""
        written = []
        for extracted in extract_images(dest, folder / source.extract_to, source.images):
            written.append(prefix + extracted.path)
            record.files[written[-1]] = {"size": extracted.size, "sha256": extracted.sha256}
        if not options.keep_downloads:
            dest.unlink()
    else:
        written = [source.filename]
        digest = source.sha256 or sha256_file(dest)  # a pinned digest was checked on download or above
        record.files[source.filename] = {"size": dest.stat().st_size, "sha256": digest}
    record.sources_done[source.filename] = written
    record.save(folder)


def _intact(paths: list[str], folder: Path, record: _Record) -> bool:
    """Whether every image a finished source gave is still there with its recorded size."""
    for path in paths:
        entry, file = record.files.get(path, {}), folder / path
        if not file.is_file() or file.stat().st_size != entry.get("size"):
            return False
    return True


def _fetch_missing(manifest: DatasetManifest, root: Path, record: _Record, options: _Options) -> None:
    folder = dataset_folder(manifest, root)
    record.complete = False
    # A source is fetched again when an image it gave is missing or changed size since.
    needed = [
        s
        for s in manifest.sources
        if s.filename not in record.sources_done or not _intact(record.sources_done[s.filename], folder, record)
    ]
    _check_free_space(root, needed)
    for source in needed:
        _fetch_source(source, manifest, root, record, options)
    # Downloads were checked against the manifest and extracted images hashed into the record just now.
    problems = verify(manifest, root, full=False, record=record)
    if problems:
        raise ValueError(f"{manifest.name} does not verify after fetching: " + "; ".join(problems[:5]))
    record.complete = True
    record.save(folder)


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Holds an advisory lock on the dataset folder: two fetches of one set would share .part files."""
    with open(folder / LOCK_NAME, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(f"another `crdr data fetch` is working on {folder}; wait for it to finish") from None
        yield


def fetch(
    manifest: DatasetManifest,
    root: str | Path,
    *,
    timeout: float = 20.0,
    keep_downloads: bool = False,
    progress_for: ProgressFactory | None = None,
) -> Path:
    """Downloads, verifies and extracts ``manifest`` into ``<root>/<folder>``; returns that folder.

    Sources finished by an earlier run are skipped, a partial download is resumed. Raises
    ``DownloadError`` (no network: see :func:`manual_instructions`), ``ChecksumError``,
    ``ArchiveError`` or ``ValueError`` when the result does not verify.
    """
    root = Path(root)
    folder = dataset_folder(manifest, root)
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder):
        record = _Record.load(folder, manifest.name)
        if record.complete and not verify(manifest, root, full=False):
            log.info("%s: already complete in %s", manifest.name, folder)
            return folder
        _fetch_missing(manifest, root, record, _Options(timeout, keep_downloads, progress_for))
    with contextlib.suppress(OSError):  # not there, or another set's archives are in it
        (root / DOWNLOADS).rmdir()
    return folder


def _check_free_space(root: Path, sources: list[Source]) -> None:
    # An archive needs its own size plus about as much again for the extracted images.
    needed = sum(s.size * (2 if s.is_archive else 1) for s in sources if s.size is not None)
    free = shutil.disk_usage(root).free
    if needed > free:
        raise OSError(f"{root}: {free / 1e9:.1f} GB free, fetching needs about {needed / 1e9:.1f} GB")


def _expected_files(manifest: DatasetManifest, record: _Record) -> dict[str, FileDigest | None] | None:
    """Every file the set must hold with its digest: the manifest's where it pins one, else the record's."""
    recorded = {path: FileDigest(entry.get("size"), entry.get("sha256")) for path, entry in record.files.items()}
    if manifest.files is None:
        return recorded or None
    return {path: digest if digest is not None else recorded.get(path) for path, digest in manifest.files.items()}


def verify(
    manifest: DatasetManifest, root: str | Path, *, full: bool = True, record: _Record | None = None
) -> list[str]:
    """Problems with ``<root>/<folder>`` (an empty list when it is complete and intact).

    Checks that exactly the expected images are there (by name and count) and, for each, its size
    and (with ``full``) its SHA-256. Sets with neither shipped nor recorded digests get the count check.
    """
    folder = dataset_folder(manifest, Path(root))
    if not folder.is_dir():
        return [f"{folder} does not exist"]
    record = record or _Record.load(folder, manifest.name)
    present = {
        p.relative_to(folder).as_posix(): p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    }
    problems = []
    if manifest.num_images is not None and len(present) != manifest.num_images:
        problems.append(f"{len(present)} images in {folder}, expected {manifest.num_images}")
    expected = _expected_files(manifest, record)
    if expected is None:
        if not present:
            problems.append(f"no images in {folder}")
        return problems
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(present) - set(expected))
    if missing:
        problems.append(f"{len(missing)} missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"{len(extra)} unexpected: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    for name in sorted(set(expected) & set(present)):
        digest = expected[name]
        if digest is not None:
            problem = check_file(present[name], digest.size, digest.sha256 if full else None)
            if problem is not None:
                problems.append(f"{name}: {problem}")
    return problems
