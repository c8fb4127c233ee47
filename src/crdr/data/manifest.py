"""Dataset manifests: where each set comes from, what it holds and how to check it.

A manifest is a JSON file (the shipped ones are in ``crdr/data/manifests/``)::

    {"name": "kodak", "evaluation_name": "kodak", "folder": "kodak", "num_images": 24,
     "sources": [{"url": ..., "size": 736501, "sha256": ..., "extract_to": "", "images": null}, ...],
     "files": {"kodim01.png": {"size": 736501, "sha256": ...}, ...}}

A source is either one image (placed as ``<folder>/<basename of url>``) or a ``.zip``/``.tar``/
``.tar.gz``/``.tgz`` archive whose images go to ``<folder>/<extract_to>/``. ``size``/``sha256`` of a
source are null when the publisher gives none; ``files`` is null when the per-image list is not
known in advance (it is then recorded at extraction, see :mod:`crdr.data.fetch`), and a file's
entry is null when only its name is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_SHA256_HEX = frozenset("0123456789abcdef")


class ManifestError(ValueError):
    """A manifest that does not follow the schema above."""


@dataclass(frozen=True)
class FileDigest:
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class Source:
    """One download: an image or an archive of images."""

    url: str
    size: int | None
    sha256: str | None
    extract_to: str = ""
    images: int | None = None

    @property
    def filename(self) -> str:
        return PurePosixPath(unquote(urlparse(self.url).path)).name

    @property
    def is_archive(self) -> bool:
        return self.filename.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class DatasetManifest:
    name: str
    title: str
    folder: str
    sources: tuple[Source, ...]
    files: dict[str, FileDigest | None] | None
    num_images: int | None
    evaluation_name: str | None = None
    homepage: str = ""
    licence: str = ""
    digests_from: str = ""

    @property
    def download_size(self) -> int | None:
        """Bytes to download, or None when a source's size is unknown."""
        sizes = [s.size for s in self.sources]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]


def _digest(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _SHA256_HEX:
        raise ManifestError(f"{where}: sha256 must be 64 lower-case hex digits, got {value!r}")
    return value


def _size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{where}: size must be a non-negative integer, got {value!r}")
    return value


def _relative(value: Any, where: str) -> str:
    """A relative POSIX path inside the dataset folder ('' is the folder itself)."""
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected a path string, got {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ManifestError(f"{where}: {value!r} must be a relative path inside the dataset folder")
    return "" if value in ("", ".") else path.as_posix()


def parse_manifest(data: dict[str, Any], origin: str = "manifest") -> DatasetManifest:
    """Validates and converts a manifest's JSON object."""
    try:
        name, folder = data["name"], _relative(data["folder"], f"{origin}: folder")
        raw_sources = data["sources"]
    except KeyError as err:
        raise ManifestError(f"{origin}: missing key {err}") from None
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{origin}: name must be a non-empty string, got {name!r}")
    if not folder or "/" in folder:
        raise ManifestError(f"{origin}: folder must be one folder name, got {data['folder']!r}")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ManifestError(f"{origin}: sources must be a non-empty list")
    sources = []
    for i, raw in enumerate(raw_sources):
        where = f"{origin}: sources[{i}]"
        url = raw.get("url") if isinstance(raw, dict) else None
        if not isinstance(url, str) or urlparse(url).scheme not in ("http", "https"):
            raise ManifestError(f"{where}: url must be an http(s) URL, got {url!r}")
        source = Source(
            url=url,
            size=_size(raw.get("size"), where),
            sha256=_digest(raw.get("sha256"), where),
            extract_to=_relative(raw.get("extract_to", ""), where),
            images=_size(raw.get("images"), where),
        )
        if not source.filename:
            raise ManifestError(f"{where}: the url names no file")
        sources.append(source)
    names = [s.filename for s in sources]
    if len(set(names)) != len(names):
        raise ManifestError(f"{origin}: two sources download to the same file name")
    files = data.get("files")
    if files is not None:
        if not isinstance(files, dict):
            raise ManifestError(f"{origin}: files must be an object of path -> {{size, sha256}} or null")
        if not all(entry is None or isinstance(entry, dict) for entry in files.values()):
            raise ManifestError(f"{origin}: each entry of files is {{size, sha256}} or null")
        files = {
            _relative(path, f"{origin}: files"): None
            if entry is None
            else FileDigest(_size(entry.get("size"), f"{origin}: {path}"), _digest(entry.get("sha256"), path))
            for path, entry in files.items()
        }
    text = {key: data.get(key, "") for key in ("title", "homepage", "licence", "digests_from")}
    evaluation_name = data.get("evaluation_name")
    if not all(isinstance(v, str) for v in text.values()) or not isinstance(evaluation_name, str | None):
        raise ManifestError(f"{origin}: title, homepage, licence, digests_from and evaluation_name are strings")
    return DatasetManifest(
        name=name,
        title=text["title"] or name,
        folder=folder,
        sources=tuple(sources),
        files=files,
        num_images=_size(data.get("num_images"), f"{origin}: num_images"),
        evaluation_name=evaluation_name,
        homepage=text["homepage"],
        licence=text["licence"],
        digests_from=text["digests_from"],
    )


def load_manifest_file(path: str | Path) -> DatasetManifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{path}: not a readable JSON manifest ({err})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest is a JSON object")
    return parse_manifest(data, str(path))


def shipped_manifests() -> dict[str, DatasetManifest]:
    """The manifests shipped with crdr, by name (``kodak``, ``clic2020-test``, ``div2k-valid``, ``openimages``)."""
    folder = resources.files("crdr.data") / "manifests"
    manifests = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            manifest = parse_manifest(json.loads(entry.read_text()), f"crdr/data/manifests/{entry.name}")
            manifests[manifest.name] = manifest
    return manifests


def find_manifest(name: str) -> DatasetManifest:
    """A shipped manifest by its name or its evaluation name (``kodak``, ``CLIC``, ``DIV2K``)."""
    manifests = shipped_manifests()
    for manifest in manifests.values():
        if name in (manifest.name, manifest.evaluation_name):
            return manifest
    raise ManifestError(f"unknown dataset {name!r}; known: {', '.join(manifests)}")
