"""Reading and writing generator weights: the official ``.pth.tar``, our ``.safetensors``, Lightning ``.ckpt``.

Nothing is ever unpickled: torch files are read with ``weights_only=True`` and ours are safetensors.
The entropy models' CDF tables are never taken from a file; they are rebuilt from the weights.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import Tensor, nn

from crdr.io.errors import CheckpointError
from crdr.io.files import PathLike, atomic_path
from crdr.loading.aligned_safetensors import load_aligned, save_aligned
from crdr.models.entropy_models import DYNAMIC_BUFFERS
from crdr.package_data import resolve_checkpoint

#: safetensors metadata keys of our format.
FORMAT_NAME = "crdr-generator"
FORMAT_VERSION = "1"
_ENTROPY_PREFIXES = ("entropy_model_z.", "entropy_model_y.")
#: Storage dtypes of convolution kernels in our format besides float32.
HALF_DTYPES = (torch.float16, torch.bfloat16)
#: The Lightning contract: the training modules (``crdr.lit``) hold the generator as this attribute, so
#: its weights are the ``generator.*`` keys of a ``.ckpt``'s state dict, and take its config as this
#: constructor argument, saved as ``hyper_parameters.model``.
LIGHTNING_GENERATOR = "generator"
LIGHTNING_MODEL_CONFIG = "model"


@dataclass
class Checkpoint:
    """Generator weights read from a file, with the model config when the file carries one."""

    state_dict: dict[str, Tensor]
    config: dict[str, Any] | None
    format: str  # "official", "safetensors", "lightning" or "state_dict"


def is_dynamic_buffer(key: str) -> bool:
    """True for the entropy models' CDF-table buffers, whose sizes depend on the weights."""
    return key.startswith(_ENTROPY_PREFIXES) and key.rsplit(".", 1)[-1] in DYNAMIC_BUFFERS


def read_checkpoint(path: PathLike) -> Checkpoint:
    """Reads generator weights from any supported file (format detected from its content), or the shipped
    model of that name (``crdr.package_data.SHIPPED_MODELS``)."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return _read_safetensors(path)
    return _read_torch_file(path)


def _read_safetensors(path: Path) -> Checkpoint:
    try:
        state_dict, metadata = load_aligned(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    config = None
    if "model_config" in metadata:
        try:
            config = json.loads(metadata["model_config"])
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path}: the embedded model config is not valid JSON ({err})") from None
    # Kernels stored in half precision (save_generator's kernel_dtype) run in float32 like the rest.
    state_dict = {k: v.float() if v.dtype in HALF_DTYPES else v for k, v in state_dict.items()}
    return Checkpoint(state_dict, config, "safetensors")


def _read_torch_file(path: Path) -> Checkpoint:
    with path.open("rb") as f:
        zip_format = f.read(4) == b"PK\x03\x04"  # torch.save's default format since torch 1.6
    try:
        # mmap: tensors are views of the file's pages, read when first used (only the generator's, for
        # a Lightning file); the legacy format cannot be mapped and is read whole.
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zip_format)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else "unsupported content"
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects other than tensors ({first_line})"
        ) from None
    except Exception as err:  # corrupt bytes surface as any error type inside the unpickler
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {type(err).__name__}: {err}"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    if "comp_model" in obj:
        return Checkpoint(_tensor_dict(obj["comp_model"], path), None, "official")
    if "state_dict" in obj:
        prefix = f"{LIGHTNING_GENERATOR}."
        weights = {
            k[len(prefix) :]: v for k, v in _tensor_dict(obj["state_dict"], path).items() if k.startswith(prefix)
        }
        if not weights:
            raise CheckpointError(f"{path}: the Lightning checkpoint holds no '{prefix}*' weights")
        hparams = obj.get("hyper_parameters") or {}
        config = hparams.get(LIGHTNING_MODEL_CONFIG) if isinstance(hparams, dict) else None
        return Checkpoint(weights, config if isinstance(config, dict) else None, "lightning")
    return Checkpoint(_tensor_dict(obj, path), None, "state_dict")


def _tensor_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: expected a non-empty dict of tensors")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {bad[:5]}")
    # Weights saved from a DistributedDataParallel wrapper carry a 'module.' prefix.
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_fit(model: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Raises CheckpointError unless the weights have exactly the model's tensor names and shapes.

    CDF-table buffers are ignored. Works on a model built on the ``meta`` device, so a file can
    be checked before any memory is allocated for the model.
    """
    weights = {k: v for k, v in state_dict.items() if not is_dynamic_buffer(k)}
    expected = {k: v for k, v in model.state_dict().items() if not is_dynamic_buffer(k)}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = _shape_mismatches(weights, expected)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if mismatched:
            parts.append(f"{len(mismatched)} with other shapes (e.g. {'; '.join(mismatched[:3])})")
        raise CheckpointError("the checkpoint does not fit this model architecture: " + ", ".join(parts))


def _shape_mismatches(weights: dict[str, Tensor], expected: dict[str, Tensor]) -> list[str]:
    """ "name: file (shape) vs model (shape)" for every name in both whose shapes differ."""
    return [
        f"{k}: file {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], assign: bool = False) -> None:
    """Strictly loads weights into a generator; CDF-table buffers in the file are ignored.

    assign: the model's tensors become the file's (no copy; for a model built with
    ``crdr.models.meta_parameters.parameters_on_meta``), cast to the model's dtypes and made contiguous,
    so that they compute exactly like copied weights.
    """
    check_fit(model, state_dict)
    weights = {k: v for k, v in state_dict.items() if not is_dynamic_buffer(k)}
    if assign:
        own = model.state_dict()
        weights = {k: v.to(own[k].dtype).contiguous() for k, v in weights.items()}
    model.load_state_dict(weights, strict=False, assign=assign)


def load_matching_weights(model: nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """Loads every file tensor whose name the model has; returns the model's names left untouched.

    Used to start a training stage from the previous one (stage 1 -> 2 adds the ICA tensors, 2 -> 3
    the beta conditioning): names missing from the file keep their fresh initialisation, names
    the model lacks are ignored, and a shape mismatch is an error (CheckpointError).
    """
    own = {k: v for k, v in model.state_dict().items() if not is_dynamic_buffer(k)}
    common = {k: v for k, v in state_dict.items() if k in own}
    mismatched = _shape_mismatches(common, own)
    if mismatched:
        raise CheckpointError(f"{len(mismatched)} tensors have other shapes (e.g. {'; '.join(mismatched[:3])})")
    if not common:
        raise CheckpointError("the checkpoint shares no tensor names with this model")
    model.load_state_dict(common, strict=False)
    return sorted(set(own) - set(common))


def save_generator(model: nn.Module, path: PathLike, kernel_dtype: torch.dtype = torch.float32) -> Path:
    """Writes weights and model config as ``.safetensors`` (atomically: temp file, then rename).

    kernel_dtype: storage of the convolution kernels (the 4-D float tensors, nearly all the bytes);
    ``torch.float16`` halves the file (the shipped models), and reading casts them back to float32.
    Biases, GDN and entropy-model parameters are always stored in float32.
    """
    config = getattr(model, "config", None)
    if config is None:
        raise CheckpointError("the model has no config to save with it; build it with crdr.load_model")
    if kernel_dtype != torch.float32 and kernel_dtype not in HALF_DTYPES:
        raise CheckpointError(f"kernel_dtype must be float32, float16 or bfloat16, not {kernel_dtype}")
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not is_dynamic_buffer(k)}
    tensors = {k: v.to(kernel_dtype) if v.dim() == 4 and v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "model_config": json.dumps(config)}
    with atomic_path(path) as tmp:
        save_aligned(tensors, tmp, metadata)
    return Path(path)
