"""The datasets of the paper: manifests, verified resumable downloads, extraction (``crdr data``)."""

from crdr.datasets.archives import ArchiveError, extract_images
from crdr.datasets.download import ChecksumError, DownloadError, download
from crdr.datasets.fetch import dataset_folder, fetch, manual_instructions, verify
from crdr.datasets.manifest import DatasetManifest, ManifestError, find_manifest, load_manifest_file, shipped_manifests

__all__ = [
    "ArchiveError",
    "ChecksumError",
    "DatasetManifest",
    "DownloadError",
    "ManifestError",
    "dataset_folder",
    "download",
    "extract_images",
    "fetch",
    "find_manifest",
    "load_manifest_file",
    "manual_instructions",
    "shipped_manifests",
    "verify",
]
