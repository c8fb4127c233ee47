"""What the package ships beside its code: trained models by name, and the demo images.

``crdr-tiny`` (``models/crdr-tiny.safetensors``, model card ``docs/models/crdr-tiny.md``) is a CRDR the
suite trained itself (``experiments/train_crdr_tiny.py``). A shipped name works wherever a checkpoint
path does (``load_model("crdr-tiny")``, ``--checkpoint crdr-tiny``, ``init_from=crdr-tiny``): a name
in :data:`SHIPPED_MODELS` always means the shipped file; give a local file of that name as
``./crdr-tiny``. The demo images are three Kodak images (``images/SOURCES.md``), never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crdr.io.files import IMAGE_SUFFIXES

_HERE = Path(__file__).resolve().parent
#: The folder of the demo images (PNG): the evaluation images of the quickstart and the tests.
DEMO_IMAGE_DIR = _HERE / "images"


@dataclass(frozen=True)
class ShippedModel:
    """A model file inside the package, with one line on what it is."""

    file: str
    summary: str

    @property
    def path(self) -> Path:
        return _HERE / "models" / self.file


SHIPPED_MODELS: dict[str, ShippedModel] = {
    "crdr-tiny": ShippedModel(
        "crdr-tiny.safetensors",
        "CRDR at tiny widths trained by the suite on CPU (17 q x beta 0..5.12); docs/models/crdr-tiny.md",
    ),
}

#: Where the official weights come from and how they are used (``crdr models``).
OFFICIAL_WEIGHTS_HINT = (
    "official CRDR weights: download crdr.pth.tar from github.com/iwa-shi/CRDR (its README links it) and "
    "pass its path: --checkpoint path/to/crdr.pth.tar or load_model('path/to/crdr.pth.tar')"
)


def resolve_checkpoint(path: str | Path) -> Path:
    """The file a checkpoint argument names: a shipped model's file for a name of SHIPPED_MODELS, else
    the path itself."""
    shipped = SHIPPED_MODELS.get(str(path)) if isinstance(path, str) else None
    return shipped.path if shipped is not None else Path(path)


def demo_images() -> list[Path]:
    """The bundled demo images, sorted by name."""
    return sorted(p for p in DEMO_IMAGE_DIR.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
