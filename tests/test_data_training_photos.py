"""crdr-tiny's training photographs: every one copied with its source and licence, none of them Kodak."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import KODAK
from crdr.data.training_photos import PHOTOS, write_training_photos
from crdr.io.files import sha256_file
from crdr.io.images import read_image


def test_the_photographs_are_copied_unchanged_with_their_sources(tmp_path: Path) -> None:
    written = write_training_photos(tmp_path / "train")
    assert [p.name for p in written] == [p.name for p in PHOTOS] and len(written) == 9
    for photo, path in zip(PHOTOS, written, strict=True):
        assert sha256_file(path) == sha256_file(photo.path())
    sources = (tmp_path / "train" / "SOURCES.md").read_text()
    for photo in PHOTOS:
        assert f"| {photo.name} | {photo.package} ({photo.file}) | {photo.origin} | {photo.licence} |" in sources
    assert write_training_photos(tmp_path / "train") == written  # a rerun keeps what is there


def test_no_training_photograph_is_a_kodak_image(tmp_path: Path) -> None:
    assert len(KODAK) == 3
    kodak = [read_image(p).numpy() for p in KODAK]
    kodak_files = {sha256_file(p) for p in KODAK}
    for path in write_training_photos(tmp_path / "train"):
        assert "kodim" not in path.name.lower() and sha256_file(path) not in kodak_files
        x = read_image(path).numpy()
        for k in kodak:  # nor the same pixels recompressed
            assert x.shape != k.shape or np.abs(x - k).mean() > 0.05
