"""The public entry point: ``load_model``."""

from __future__ import annotations

import torch

from crdr.config import ConfigLike, build_generator
from crdr.io.files import PathLike
from crdr.loading.arch_from_weights import infer_model_config
from crdr.loading.checkpoints import load_weights, read_checkpoint
from crdr.models import CrdrGenerator
from crdr.models.meta_parameters import parameters_on_meta


def load_model(
    path: PathLike | None,
    config: ConfigLike | None = None,
    device: str | torch.device = "cpu",
) -> CrdrGenerator:
    """A generator in eval mode with its entropy tables built, ready for ``model(x, q=, beta=)``.

    path: an official ``.pth.tar``, our ``.safetensors`` or a Lightning ``.ckpt``; None builds an
    untrained model. config: a ``conf/model`` name (``"crdr"``, ``"crdr_stage2"``, ...), a YAML path
    or a mapping; by default the config stored in the file, or, for official files, the one their
    tensor shapes imply.
    """
    if path is None:
        model = build_generator(config if config is not None else "crdr")
    else:
        checkpoint = read_checkpoint(path)
        if config is None:
            config = checkpoint.config or infer_model_config(checkpoint.state_dict)
        with parameters_on_meta():  # the file's tensors become the parameters: no second copy
            model = build_generator(config)
        load_weights(model, checkpoint.state_dict, assign=True)
    model.update_entropy_tables()
    return model.eval().to(device)
