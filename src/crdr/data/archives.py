"""Safe extraction of the images in a zip or tar archive.

Only regular files with an image suffix are written; their folder shared by every image of the
archive (``DIV2K_valid_HR/``, ``train_0/``) is stripped, so images land directly under the target
folder. Members with absolute paths or ``..``, links, devices and macOS resource forks are never
written. Each image is written beside its final name and renamed when complete, and its size and
SHA-256 are returned for the dataset's record.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from crdr.io.files import CHUNK_BYTES, IMAGE_SUFFIXES, atomic_path

#: No image of the supported sets is near this; a member declaring more is refused (zip bombs).
MAX_IMAGE_BYTES = 1 << 30


class ArchiveError(ValueError):
    """An archive that cannot be read or holds unsafe or unexpected members."""


@dataclass(frozen=True)
class _Member:
    path: PurePosixPath
    size: int
    handle: Any


@dataclass(frozen=True)
class ExtractedFile:
    path: str  # relative to the target folder, POSIX separators
    size: int
    sha256: str


def _is_image(path: PurePosixPath) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("._") and "__MACOSX" not in path.parts


def _safe(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ArchiveError(f"{archive}: member {name!r} points outside the target folder")
    return path


def _zip_members(archive: zipfile.ZipFile, where: Path) -> list[_Member]:
    members = []
    for info in archive.infolist():
        path = _safe(info.filename, where)
        if not info.is_dir() and _is_image(path):
            members.append(_Member(path, info.file_size, info))
    return members


def _tar_members(archive: tarfile.TarFile, where: Path) -> list[_Member]:
    members = []
    for info in archive.getmembers():
        path = _safe(info.name, where)
        if _is_image(path):
            if not info.isfile():
                raise ArchiveError(f"{where}: member {info.name!r} is a link or special file, not an image file")
            members.append(_Member(path, info.size, info))
    return members


@contextmanager
def _open_archive(path: Path) -> Iterator[tuple[list[_Member], Callable[[Any], IO[bytes]]]]:
    """The image members of ``path`` and a function that opens one of them for reading."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                yield _zip_members(archive, path), archive.open
        else:
            with tarfile.open(path, "r:*") as archive:
                yield _tar_members(archive, path), archive.extractfile
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise ArchiveError(f"{path}: damaged or not a zip/tar archive ({err})") from None


def _common_folder(paths: list[PurePosixPath]) -> PurePosixPath:
    if not paths:
        return PurePosixPath()
    common = paths[0].parent.parts
    for path in paths[1:]:
        parts = path.parent.parts
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return PurePosixPath(*common)


def _copy_limited(source: IO[bytes], dest: Path, limit: int, name: str) -> tuple[int, str]:
    digest, written = hashlib.sha256(), 0
    with open(dest, "wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > limit:
                raise ArchiveError(f"{name}: more bytes than the archive declares ({limit})")
            digest.update(chunk)
            out.write(chunk)
    return written, digest.hexdigest()


def extract_images(archive_path: Path, target: Path, expected_images: int | None = None) -> list[ExtractedFile]:
    """Extracts the images of ``archive_path`` into ``target``; returns what was written.

    Raises ``ArchiveError`` for an unreadable archive, an unsafe member, a member above
    ``MAX_IMAGE_BYTES``, two members with one name, or another image count than ``expected_images``.
    """
    target.mkdir(parents=True, exist_ok=True)
    with _open_archive(archive_path) as (members, open_member):
        if expected_images is not None and len(members) != expected_images:
            raise ArchiveError(f"{archive_path}: {len(members)} images, the manifest expects {expected_images}")
        root = _common_folder([m.path for m in members])
        names = [m.path.relative_to(root) for m in members]
        if len(set(names)) != len(names):
            raise ArchiveError(f"{archive_path}: two members have the same name")
        written = []
        for member, name in zip(members, names, strict=True):
            if member.size > MAX_IMAGE_BYTES:
                raise ArchiveError(f"{archive_path}: member {member.path} declares {member.size} bytes")
            with atomic_path(target / name) as tmp, open_member(member.handle) as source:
                size, digest = _copy_limited(source, tmp, member.size, str(member.path))
                if size != member.size:
                    raise ArchiveError(f"{archive_path}: member {member.path} is truncated")
            written.append(ExtractedFile(name.as_posix(), size, digest))
    return written
