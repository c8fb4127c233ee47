"""Pretrained weight files found offline (never downloaded) and checked by SHA-256 prefix."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from crdr.io.files import sha256_file

#: Every pretrained file crdr reads: (its name in the torch hub cache, the prefix of its SHA-256).
ALEXNET_FILE = ("alexnet-owt-7be5be79.pth", "7be5be79")
VGG16_FILE = ("vgg16-397923af.pth", "397923af")
FIDELITY_INCEPTION_FILE = ("weights-inception-2015-12-05-6726825d.pth", "6726825d")
PYTORCH_FID_INCEPTION_FILE = ("pt_inception-2015-12-05-6726825d.pth", "6726825d")

#: What each known file is for (used in error messages).
KNOWN_FILES: dict[str, str] = {
    ALEXNET_FILE[0]: "torchvision AlexNet ImageNet weights, the LPIPS (alex) backbone",
    VGG16_FILE[0]: "torchvision VGG16 ImageNet weights, the LPIPS (vgg) and DISTS backbone",
    FIDELITY_INCEPTION_FILE[0]: "torch-fidelity FID Inception-v3 weights, for FID/KID",
    PYTORCH_FID_INCEPTION_FILE[0]: "pytorch-fid FID Inception-v3 weights, for FID/KID",
}

# (resolved path, mtime_ns, size) -> hex SHA-256
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (as resolved by ``torch.hub.get_dir()`` at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, cached per (path, mtime, size) so repeated checks do not re-read it."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def pretrained_file(
    filename: str,
    sha256_prefix: str,
    path: str | os.PathLike | None = None,
    *,
    purpose: str | None = None,
) -> Path:
    """Locates a pretrained weight file without any network access and checks its hash.

    Args:
        filename: the canonical file name (as in the torch hub cache), e.g. ``"vgg16-397923af.pth"``.
        sha256_prefix: the leading hex digits its SHA-256 must start with.
        path: an explicit file (or a folder holding ``filename``); default
            ``$TORCH_HOME/hub/checkpoints/<filename>``.
        purpose: what the file is for, for the error message (default: from :data:`KNOWN_FILES`).

    Returns:
        The path of the file.

    Raises:
        FileNotFoundError: the file is missing (one line naming the file, the folder to put it in and its use).
        ValueError: its SHA-256 does not start with ``sha256_prefix``.
    """
    if path is None:
        target = checkpoints_dir() / filename
    else:
        target = Path(path)
        if target.is_dir():
            target = target / filename
    what = purpose or KNOWN_FILES.get(filename, "pretrained weights")
    if not target.is_file():
        raise FileNotFoundError(
            f"{filename} ({what}) not found at {target}; put the file in {target.parent} "
            f"(or pass its path explicitly); nothing is downloaded"
        )
    digest = file_sha256(target)
    if not digest.lower().startswith(sha256_prefix.lower()):
        raise ValueError(
            f"{target}: SHA-256 {digest[:12]}... does not match {filename} (expected hash prefix {sha256_prefix})"
        )
    return target


def weight_identity(filename: str, sha256_prefix: str, path: str | os.PathLike | None = None) -> str:
    """A weight file as run.json records it, ``"<filename> sha256 <first 16 hex digits>"``: the file
    :func:`pretrained_file` finds (same arguments, same checks)."""
    return f"{filename} sha256 {file_sha256(pretrained_file(filename, sha256_prefix, path))[:16]}"
