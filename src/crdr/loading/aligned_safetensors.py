"""safetensors files whose tensors start on 64-byte boundaries, and reading any safetensors file
into tensors that compute exactly like freshly allocated ones.

safetensors' own writer packs tensors back to back after a header padded to 8 bytes, so mapped
tensors start anywhere 4-byte aligned; oneDNN's CPU kernels round differently on such weights than
on the 64-byte aligned memory torch allocates (the codec's symbols would change). :func:`save_aligned`
writes a standard safetensors file (readable by any reader, no holes) with the header padded and
the tensors ordered so that every tensor whose size is a multiple of 64 bytes (all but a few scalar
bounds) starts on a 64-byte boundary; :func:`load_aligned` keeps those as zero-copy views of the
mapped file (like ``torch.load(mmap=True)``) and reads the others into new memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

ALIGNMENT = 64
#: torch dtype -> safetensors dtype name (the ones a generator's weights can have).
DTYPE_NAMES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


def save_aligned(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Writes contiguous CPU tensors as a safetensors file (to ``path`` directly: wrap it in an atomic write)."""
    unknown = sorted({str(t.dtype) for t in tensors.values() if t.dtype not in DTYPE_NAMES})
    if unknown:
        raise ValueError(f"cannot write tensors of dtype {', '.join(unknown)}")
    # sizes that are multiples of 64 bytes first: each of them then starts on a boundary
    order = sorted(tensors, key=lambda name: (_nbytes(tensors[name]) % ALIGNMENT != 0, name))
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name in order:
        t, end = tensors[name], offset + _nbytes(tensors[name])
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % ALIGNMENT)  # trailing spaces are valid JSON (and the format's padding)
    with path.open("wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name in order:
            t = tensors[name]
            if t.numel():
                f.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)


def load_aligned(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of any safetensors file; raises ``safetensors.SafetensorError``, OSError or
    ValueError when the file is malformed. 64-byte aligned tensors are views of the mapped file (its
    pages are read when first used); the others are read into newly allocated (aligned) memory."""
    with safe_open(str(path), framework="pt", device="cpu") as f:  # validates the header and offsets
        metadata = f.metadata() or {}
        views = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    misaligned = {k: v for k, v in views.items() if v.numel() and v.data_ptr() % ALIGNMENT}
    if misaligned:
        with path.open("rb") as file:
            header_size = int.from_bytes(file.read(8), "little")
            offsets = json.loads(file.read(header_size))
            for name, view in misaligned.items():
                start, end = offsets[name]["data_offsets"]
                tensor = torch.empty_like(view, memory_format=torch.contiguous_format)
                file.seek(8 + header_size + start)
                if file.readinto(tensor.reshape(-1).view(torch.uint8).numpy()) != end - start:
                    raise ValueError(f"{name}: the file ends inside the tensor")
                views[name] = tensor
    return views, metadata
