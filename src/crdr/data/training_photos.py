"""The training set of crdr-tiny: photographs that ship with scikit-image and matplotlib (offline),
copied unchanged into one folder with a ``SOURCES.md`` of where each comes from and its licence.

The Kodak images (the package's demo images) are the evaluation set and are never among them.
``crdr data photos`` writes them to ``DATA_ROOT/crdr-tiny-train``, the folder ``conf/data/crdr_tiny.yaml`` reads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from crdr.io.files import PathLike, atomic_path, write_text_atomic

#: The folder under the data root (``$CRDR_DATA_ROOT``, ``paths.data_root``) that holds them.
PHOTOS_FOLDER = "crdr-tiny-train"


@dataclass(frozen=True)
class Photo:
    """One training photograph: the package that ships it, its file there, its origin and licence."""

    package: str
    file: str
    origin: str
    licence: str

    def path(self) -> Path:
        """The photograph's file in the installed package (ImportError if the package is missing)."""
        if self.package == "scikit-image":
            import skimage.data

            return Path(skimage.data.__file__).parent / self.file
        from matplotlib import cbook

        return Path(cbook.get_sample_data(self.file, asfileobj=False))

    @property
    def name(self) -> str:
        """The file name in the training folder: ``<package>-<file>``."""
        return f"{self.package}-{self.file}"


#: The photographs (as scikit-image 0.26's and matplotlib 3.11's docstrings and docs give their origins).
PHOTOS: tuple[Photo, ...] = (
    Photo("scikit-image", "astronaut.png", "NASA Great Images, Eileen Collins (flic.kr/p/r9qvLn)", "public domain"),
    Photo("scikit-image", "coffee.png", "Pikolo Espresso Bar, photo by Rachel Michetti", "CC0"),
    Photo("scikit-image", "chelsea.png", "Chelsea the cat, photo by Stefan van der Walt", "CC0"),
    Photo("scikit-image", "rocket.jpg", "SpaceX Photos, DSCOVR launch on Falcon 9 (Flickr)", "public domain"),
    Photo("scikit-image", "hubble_deep_field.jpg", "NASA HubbleSite, eXtreme Deep Field (2012)", "public domain"),
    Photo(
        "scikit-image",
        "ihc.png",
        "immunohistochemistry, Center for Microscopy And Molecular Imaging (CMMI)",
        "no known copyright restrictions",
    ),
    Photo(
        "scikit-image",
        "motorcycle_left.png",
        "Middlebury 2014 stereo benchmark (Scharstein et al.), downsampled x4",
        "no licence stated; distributed with scikit-image (BSD-3-Clause)",
    ),
    Photo(
        "scikit-image",
        "retina.jpg",
        "Wikimedia Commons, Fundus_photograph_of_normal_left_eye.jpg (Mikael Häggström)",
        "CC0",
    ),
    Photo(
        "matplotlib",
        "grace_hopper.jpg",
        "US Navy photograph of Commodore Grace M. Hopper",
        "public domain (work of the US federal government)",
    ),
)


def sources_markdown(photos: tuple[Photo, ...] = PHOTOS) -> str:
    """The ``SOURCES.md`` of the training folder: one table row per photograph."""
    lines = [
        "# crdr-tiny training photographs",
        "",
        "Copied unchanged from the installed packages by `experiments/train_crdr_tiny.py`.",
        "The Kodak images (the evaluation set) are not among them.",
        "",
        "| file | shipped by | origin | licence |",
        "|---|---|---|---|",
    ]
    lines += [f"| {p.name} | {p.package} ({p.file}) | {p.origin} | {p.licence} |" for p in photos]
    return "\n".join(lines) + "\n"


def write_training_photos(folder: PathLike, photos: tuple[Photo, ...] = PHOTOS) -> list[Path]:
    """Copies ``photos`` into ``folder`` (atomically, each once) with its ``SOURCES.md``; returns the copies."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for photo in photos:
        target = folder / photo.name
        if not target.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(photo.path(), tmp)
        written.append(target)
    write_text_atomic(folder / "SOURCES.md", sources_markdown(photos))
    return written
