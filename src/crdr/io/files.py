"""Atomic file writes: a reader or a kill never sees a partial file."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

PathLike = str | Path

#: The image files crdr reads (searched case-insensitively in folders).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: Bytes per read when streaming files (hashing, copying, downloading).
CHUNK_BYTES = 1 << 20


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import: os.umask can only be read by setting it


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    The result gets the permissions of a freshly created file (0666 minus the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, newline="")
    return Path(path)


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_csv_atomic(path: PathLike, header: Sequence[str], rows: Sequence[Sequence]) -> Path:
    """Writes a CSV table (header, then rows) atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def writable_dir(path: PathLike) -> Path:
    """Creates ``path`` if needed and checks that files can be written in it (before any work is done)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise OSError(f"cannot write to the output folder {path}: {err.strerror or err}") from None
    return path


def expand_paths(inputs: Sequence[PathLike], suffixes: Sequence[str]) -> list[Path]:
    """Files as given, and the files below folders (recursively, sorted) whose suffix is one of
    ``suffixes`` (case-insensitive). A missing path is a FileNotFoundError."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in suffixes and p.is_file()))
        elif item.exists():
            found.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or directory")
    return found
