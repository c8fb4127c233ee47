"""Writes the cross-machine golden streams: ``python tests/golden_streams/regenerate.py``.

Run it only when the bitstream format or the codec's numerics change on purpose: the point of these
files is that they were written on ANOTHER machine than the one running the tests
(``tests/test_golden_streams.py``). ``manifest.json`` records each case and the machine that wrote it.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from crdr import load_model
from crdr.codec import Codec
from crdr.io.images import read_image, write_image
from crdr.package_data import DEMO_IMAGE_DIR

HERE = Path(__file__).resolve().parent
# Not in tests/data: data configs read that folder recursively.
CHECKPOINT = HERE.parent / "data" / "golden_tiny" / "official_ckpt.pth"
#: name -> (image, crop (top, left, height, width) or None for the whole image, q, decode beta, encoder)
CASES = {
    "kodim23_q0.5": ("kodim23.png", None, 0.5, 0.0, "float32"),
    "kodim23_q3.25": ("kodim23.png", None, 3.25, 5.12, "float32"),
    "kodim15_124x63_q2.3": ("kodim15.png", (200, 300, 124, 63), 2.3, 2.56, "float32"),
    "kodim03_q1.75_bf16": ("kodim03.png", None, 1.75, 2.0, "bfloat16"),
}


def case_image(image: str, crop: tuple[int, int, int, int] | None) -> torch.Tensor:
    """The bundled image (1, 3, H, W) in [0, 1], cropped as the case says."""
    x = read_image(DEMO_IMAGE_DIR / image)
    if crop is None:
        return x
    top, left, height, width = crop
    return x[:, :, top : top + height, left : left + width]


#: The part of each decoded image stored as its reference (whole images would take 1 MB each).
REFERENCE_WINDOW = (slice(192, 320), slice(320, 448))


def reference_part(image: torch.Tensor) -> torch.Tensor:
    """The window of REFERENCE_WINDOW, or all of an image smaller than it."""
    rows, cols = REFERENCE_WINDOW
    return image if image.shape[-2] < rows.stop or image.shape[-1] < cols.stop else image[:, :, rows, cols]


def cpu_description() -> str:
    """E.g. "AMD EPYC (family 26, model 2; avx512_bf16, no amx)", from /proc/cpuinfo."""
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.processor()
    flags = set(fields.get("flags", "").split())
    units = ", ".join(f if f in flags else f"no {f}" for f in ("avx512f", "avx512_bf16", "amx_bf16"))
    return f"{fields['model name']} (family {fields.get('cpu family')}, model {fields.get('model')}; {units})"


def main() -> None:
    torch.set_num_threads(1)
    model = load_model(CHECKPOINT)
    codecs = {"float32": Codec(model), "bfloat16": Codec(model, encoder_dtype=torch.bfloat16)}
    latents = {}
    for name, (image, crop, q, beta, encoder) in CASES.items():
        data = codecs[encoder].compress(case_image(image, crop), q)
        (HERE / f"{name}.crdr").write_bytes(data)
        decoder = codecs["float32"]
        latents[name] = decoder.decode_latents(decoder.parse(data))
        write_image(reference_part(decoder.decompress(data, beta)), HERE / f"{name}.png")
    torch.save(latents, HERE / "latents.pt")
    manifest = {
        "written_on": {"cpu": cpu_description(), "torch": torch.__version__, "threads": 1},
        "checkpoint": "golden_tiny/official_ckpt.pth",
        "reference_window": [[w.start, w.stop] for w in REFERENCE_WINDOW],
        "cases": {
            name: {"image": image, "crop": crop, "q": q, "beta": beta, "encoder": encoder}
            for name, (image, crop, q, beta, encoder) in CASES.items()
        },
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
