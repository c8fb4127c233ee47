"""Recovering a model config from tensor names and shapes (official files carry no config)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from crdr.loading.checkpoints import CheckpointError

_DEFAULT_MAX_BETA = 5.12  # not recorded in the weights; the value of every official config


def infer_model_config(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """The model config (as in ``conf/model``) whose tensors have these names and shapes.

    Works for every official variant (stage 1/2/3, CHARM or hyperprior-only) at any width.
    ``max_beta`` is not stored in weights and is taken as 5.12.
    """
    try:
        return _infer(state_dict)
    except KeyError as err:
        raise CheckpointError(f"not a CRDR generator: tensor {err.args[0]!r} is missing") from None
    except (ValueError, IndexError, ZeroDivisionError) as err:
        raise CheckpointError(f"not a CRDR generator: unexpected tensor shapes ({err})") from None


def _infer(sd: dict[str, Tensor]) -> dict[str, Any]:
    def shape(key: str) -> tuple[int, ...]:
        return tuple(sd[key].shape)

    channels, in_channels = shape("encoder.conv1.weight")[:2]
    latent = shape("encoder.conv4.weight")[0]
    levels = shape("encoder.interp_ca_list.0.weight")[0] if "encoder.interp_ca_list.0.weight" in sd else None
    hyper_channels = shape("entropy_model_z.quantiles")[0]
    decoder: dict[str, Any] = {
        "_target_": "crdr.models.SynthesisTransform",
        "latent_channels": latent,
        "channels": shape("decoder.conv1.weight")[1],
        "mid_channels": shape("decoder.block1.block0.conv.0.weight")[0],
        "out_channels": shape("decoder.conv4.weight")[1],
        "num_rate_levels": levels,
        "beta_channels": None,
        "num_frequencies": 10,
        "max_beta": _DEFAULT_MAX_BETA,
        "use_pi": False,
        "weight_init": False,
    }
    if "decoder.mlp.0.weight" in sd:
        beta_channels, embed_dim = shape("decoder.mlp.0.weight")
        decoder.update(beta_channels=beta_channels, num_frequencies=embed_dim // 2, weight_init=True)
    config: dict[str, Any] = {
        "_target_": "crdr.models.CrdrGenerator",
        "hyper_channels": hyper_channels,
        # stored in float32; 6 significant digits recover the configured value (0.11)
        "scale_bound": round(float(sd["entropy_model_y.scale_bound"].reshape(-1)[0]), 6),
        "encoder": {
            "_target_": "crdr.models.AnalysisTransform",
            "in_channels": in_channels,
            "channels": channels,
            "latent_channels": latent,
            "mid_channels": shape("encoder.block1.block0.conv.0.weight")[0],
            "num_rate_levels": levels,
        },
        "decoder": decoder,
    }
    common = {"latent_channels": latent, "hyper_channels": hyper_channels}
    if "hyperencoder.conv1.weight" in sd:
        config["hyperencoder"] = {
            "_target_": "crdr.models.MinnenHyperAnalysis",
            **common,
            "conv1_out": shape("hyperencoder.conv1.weight")[0],
            "conv2_out": shape("hyperencoder.conv2.weight")[0],
        }
        config["hyperdecoder"] = {
            "_target_": "crdr.models.MinnenHyperSynthesis",
            **common,
            "conv1_out": shape("hyperdecoder.hd_mu.conv1.weight")[1],
            "conv2_out": shape("hyperdecoder.hd_mu.conv2.weight")[1],
        }
    else:
        shape("hyperencoder.c1.0.weight")
        config["hyperencoder"] = {"_target_": "crdr.models.ChengHyperAnalysis", **common}
        config["hyperdecoder"] = {"_target_": "crdr.models.ChengHyperSynthesis", **common}
    config["context_model"] = (
        _infer_context_model(sd, latent) if "context_model.mean_slice_transforms.0.model.0.weight" in sd else None
    )
    return config


def _infer_context_model(sd: dict[str, Tensor], latent: int) -> dict[str, Any]:
    prefix = "context_model.mean_slice_transforms"
    num_slices = 0
    while f"{prefix}.{num_slices}.model.0.weight" in sd:
        num_slices += 1
    slice_channels = latent // num_slices
    last_in = sd[f"{prefix}.{num_slices - 1}.model.0.weight"].shape[1]
    return {
        "_target_": "crdr.models.ChannelContextModel",
        "latent_channels": latent,
        "num_slices": num_slices,
        "max_support_slices": (last_in - latent) // slice_channels,
        "hidden": [sd[f"{prefix}.0.model.0.weight"].shape[0], sd[f"{prefix}.0.model.2.weight"].shape[0]],
    }
