"""Atomic writes: the file appears whole or not at all, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from crdr.io.files import atomic_path, write_text_atomic


def test_an_atomic_write_has_the_permissions_of_a_new_file(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    path = write_text_atomic(tmp_path / "a" / "table.csv", "x,y\n1,2\n")
    assert path.read_text() == "x,y\n1,2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "result.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]
