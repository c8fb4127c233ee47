"""Stages 1-2: the generator trained on rate + distortion + LPIPS, with manual optimization."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra.utils import instantiate
from lightning import LightningModule
from torch import Tensor, nn

from crdr.config import build_generator
from crdr.io.errors import ConfigError
from crdr.io.images import write_image
from crdr.lit.lightning_internals import attached_trainer, logs_this_step
from crdr.lit.schedules import BetaSchedule, QSchedule
from crdr.loading.checkpoints import LIGHTNING_MODEL_CONFIG, load_matching_weights, read_checkpoint
from crdr.losses import RateLoss
from crdr.metrics import psnr_8bit
from crdr.models import use_channels_last
from crdr.models.generator import GeneratorOutput, rate_level

#: (q, beta) of one iteration; None where the model has no rate levels / no beta conditioning.
Conditions = tuple[float | None, float | None]
Built = TypeVar("Built")


class RateDistortionModule(LightningModule):
    """One generator iteration per batch: sample (q, beta), forward, loss, generator and aux steps.

    Every constructor argument is a plain config (Hydra ``_target_`` nodes), so a Lightning
    checkpoint rebuilds the module on its own and ``crdr.load_model`` reads its generator from
    ``hyper_parameters.model`` (``LIGHTNING_*`` of ``crdr.loading.checkpoints``). Only the generator's
    optimizer step counts in ``global_step`` (the aux and discriminator steps bypass Lightning's step
    counter), so ``max_steps``, LR milestones and ``step`` mean generator iterations. A loss that is
    not finite or exceeds ``max_loss`` skips the whole iteration (no parameter, optimizer or scheduler
    changes) and is counted in ``skipped_steps`` and logged as ``train/skipped_steps``; under DDP
    every rank skips when any rank's loss is bad. ``max_consecutive_skips`` bad iterations in a row abort the run.
    """

    def __init__(
        self,
        model: dict[str, Any],
        rate_loss: dict[str, Any],
        distortion_loss: dict[str, Any],
        optimizer: dict[str, Any],
        perceptual_loss: dict[str, Any] | None = None,
        q_schedule: dict[str, Any] | None = None,
        beta_schedule: dict[str, Any] | None = None,
        init_from: str | None = None,
        max_loss: float = 1e4,
        max_consecutive_skips: int = 100,
        seed: int = 0,
        validation: dict[str, Any] | None = None,
        channels_last: bool = False,
        compile: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        # The attribute and the hyperparameter that crdr.load_model reads from a .ckpt (LIGHTNING_*).
        self.generator = build_generator(self.hparams[LIGHTNING_MODEL_CONFIG])
        if init_from:
            self.fresh_tensors = load_matching_weights(self.generator, read_checkpoint(init_from).state_dict)
        if channels_last:
            use_channels_last(self.generator)
        self.rate_loss: RateLoss = instantiate_as(rate_loss, RateLoss, "rate_loss")
        self.distortion_loss = instantiate(distortion_loss)
        self.perceptual_loss: nn.Module | None = instantiate_as(
            perceptual_loss, nn.Module, "perceptual_loss", optional=True
        )
        self.q_schedule: QSchedule | None = instantiate_as(q_schedule, QSchedule, "q_schedule", optional=True)
        self.beta_schedule: BetaSchedule | None = instantiate_as(
            beta_schedule, BetaSchedule, "beta_schedule", optional=True
        )
        if (self.q_schedule is None) != (self.generator.num_rate_levels is None):
            raise ValueError("give a q_schedule exactly when the model has rate levels (ICA)")
        if (self.beta_schedule is None) != (self.generator.max_beta is None):
            raise ValueError("give a beta_schedule exactly when the model's decoder is beta-conditioned")
        self.validation_grid = dict(validation or {})
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        self._consecutive_skips = 0
        self._rng = torch.Generator()

    # -- torch.compile ------------------------------------------------------------------------
    def networks_to_compile(self) -> list[torch.nn.Module]:
        """What ``compile.enabled`` compiles: the transforms, the slice transforms, the entropy
        models' likelihoods and the LPIPS network (the rest of an iteration is a few losses)."""
        g = self.generator
        parts = [g.encoder, g.decoder, g.hyperencoder, g.hyperdecoder, g.entropy_model_z, g.entropy_model_y]
        cm = g.context_model
        if cm is not None:
            parts += [*cm.mean_slice_transforms, *cm.scale_slice_transforms, *cm.lrp_slice_transforms]
        return parts + compile_units(self.perceptual_loss)

    def configure_model(self) -> None:
        """``compile: {enabled: true, backend: ..., mode: ...}``: ``nn.Module.compile`` (in place: the
        state-dict keys do not change) on ``networks_to_compile()``; compiled on first use.

        Networks of one class share their compiled graphs, one per input shape, dtype and grad mode
        (training and the no-grad reference pass), e.g. the 30 slice transforms with 7 input widths.
        Dynamo's recompile limit is raised to 4 graphs per network of the most repeated class, so
        no network falls back to eager mode.
        """
        options = dict(self.hparams.compile or {})
        if not options.pop("enabled", False):
            return
        parts = self.networks_to_compile()
        most_repeated = max(Counter(type(part) for part in parts).values())
        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, 4 * most_repeated)
        for part in parts:
            part.compile(**{k: v for k, v in options.items() if v is not None})

    # -- optimizers --------------------------------------------------------------------------
    def configure_optimizers(self):
        cfg = self.hparams.optimizer
        aux_params = [p for n, p in self.generator.named_parameters() if n.endswith(".quantiles")]
        main_params = [p for n, p in self.generator.named_parameters() if not n.endswith(".quantiles")]
        generator = instantiate(cfg["generator"])(main_params)
        aux = instantiate(cfg["aux"])(aux_params)
        return [generator, aux], [instantiate(cfg["scheduler"])(generator)]

    def _raw_optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimizers without Lightning's wrapper: their steps do not advance ``global_step``."""
        return [opt.optimizer for opt in self.optimizers()]

    # -- one iteration -----------------------------------------------------------------------
    def sample_conditions(self, step: int) -> Conditions:
        """(q, beta) of iteration ``step``: a function of (seed, step) only, so a resumed run draws the same."""
        self._rng.manual_seed(self.hparams.seed * 1_000_003 + step)
        q = None if self.q_schedule is None else float(self.q_schedule.sample(step, self._rng))
        beta = None if self.beta_schedule is None else float(self.beta_schedule.sample(step, self._rng))
        return q, beta

    def generator_terms(
        self, x: Tensor, out: GeneratorOutput, q: float | None, beta: float | None
    ) -> dict[str, Tensor]:
        """Named loss terms (scalars) and their total under ``"loss"``, ``total_loss`` of them weighted by
        ``realism_weight(beta)``; x, out.x_hat in [0, 1]."""
        terms = self.loss_terms(x, out, q, beta)
        terms["loss"] = total_loss(terms, self.realism_weight(beta))
        return terms

    def loss_terms(self, x: Tensor, out: GeneratorOutput, q: float | None, beta: float | None) -> dict[str, Tensor]:
        """The named terms: distortion, rate and (with a perceptual loss) perceptual."""
        level = None if q is None else rate_level(q)
        terms = {
            "distortion": self.distortion_loss(x, out.x_hat),
            "rate": self.rate_loss(out.bpp, self._global_mean(out.qbpp), level),
        }
        if self.perceptual_loss is not None:
            terms["perceptual"] = self.perceptual_loss(x, out.x_hat)
        return terms

    def realism_weight(self, beta: float | None) -> float:
        """The weight of the realism terms in the total: 1 in stages 1-2."""
        return 1.0

    def _global_mean(self, values: Tensor) -> Tensor:
        """(1,) mean of ``values`` over the whole (all-rank) batch: target-rate decisions see the global batch."""
        mean = values.mean().reshape(1)
        trainer = attached_trainer(self)
        if trainer is not None and trainer.world_size > 1:
            mean = trainer.strategy.reduce(mean, reduce_op="mean")
        return mean

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        optimizer = self.optimizers()[0]
        # Parameters of the other optimizers (discriminator, quantiles) stay out of this graph.
        self.toggle_optimizer(optimizer)
        try:
            q, beta = self.sample_conditions(self.global_step)
            out = self.generator(batch, q, beta)
            terms = self.generator_terms(batch, out, q, beta)
            trainable = self._trainable(terms["loss"])
            if trainable:
                self._generator_step(terms["loss"])
        finally:
            self.untoggle_optimizer(optimizer)
        if not trainable:
            return
        self._aux_step()
        self.after_generator_step(batch, out, q, beta, terms)
        if self.trainer.progress_bar_callback is not None:
            self.log("loss", terms["loss"].detach(), on_step=True, prog_bar=True, logger=False)
        if self.logs_this_step():
            self._log_train(terms, out, q, beta)

    def after_generator_step(
        self, x: Tensor, out: GeneratorOutput, q: float | None, beta: float | None, terms: dict[str, Tensor]
    ) -> None:
        """Hook for further updates in the same iteration (the discriminator step)."""

    def logs_this_step(self) -> bool:
        """Whether Lightning hands this iteration's step metrics to the loggers (every
        ``trainer.log_every_n_steps`` iterations, or when the run is stopping). Each ``self.log``
        call costs host time (about 0.3 ms on our CPU, 16 calls per iteration), which bounds GPU
        steps, so the other iterations skip them."""
        return logs_this_step(self.trainer)

    def _trainable(self, loss: Tensor) -> bool:
        value = loss.detach()
        bad = torch.logical_not(torch.isfinite(value) & (value <= self.hparams.max_loss)).float().reshape(1)
        trainer = attached_trainer(self)
        if trainer is not None and trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="sum")  # one rank's bad loss skips every rank
        if not bad.item():
            self._consecutive_skips = 0
            return True
        self.skipped_steps += 1
        self._consecutive_skips += 1
        self.log("train/skipped_steps", self.skipped_steps.float(), on_step=True, reduce_fx="max")
        if self._consecutive_skips >= self.hparams.max_consecutive_skips:
            raise RuntimeError(
                f"{self._consecutive_skips} iterations in a row had a non-finite loss or one above "
                f"max_loss={self.hparams.max_loss} (last: {value.item():.4g}, step {self.global_step}); "
                "training diverged: lower the learning rate or resume from an earlier checkpoint"
            )
        return False

    def _generator_step(self, loss: Tensor) -> None:
        optimizer = self.optimizers()[0]
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        max_norm = self.hparams.optimizer.get("clip_grad_norm")
        if max_norm:
            # this optimizer's parameters only: the quantiles still hold the previous aux step's gradient
            params = [p for group in optimizer.param_groups for p in group["params"]]
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            if self.logs_this_step():
                self.log("train/grad_norm", norm, on_step=True)
        optimizer.step()
        self.lr_schedulers_list()[0].step()

    def _aux_step(self) -> None:
        aux = self._raw_optimizers()[1]
        aux.zero_grad(set_to_none=True)
        loss = self.generator.aux_loss()
        self.manual_backward(loss)
        aux.step()
        if self.logs_this_step():
            self.log("train/aux", loss.detach(), on_step=True)

    def lr_schedulers_list(self) -> list:
        schedulers = self.lr_schedulers()
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def _log_train(self, terms: dict[str, Tensor], out: GeneratorOutput, q: float | None, beta: float | None) -> None:
        logs = {f"train/{k}": v.detach() for k, v in terms.items()}
        logs["train/bpp"] = out.bpp.detach().mean()
        logs["train/qbpp"] = out.qbpp.mean()
        if q is not None:
            logs["train/q"] = torch.tensor(q)
        if beta is not None:
            logs["train/beta"] = torch.tensor(beta)
        logs["train/lr"] = torch.tensor(self.optimizers()[0].param_groups[0]["lr"])
        self.log_dict(logs, on_step=True, prog_bar=False)

    # -- validation --------------------------------------------------------------------------
    def validation_grid_points(self) -> list[tuple[float | None, list[float | None]]]:
        """Each validated q with its betas: ``validation.q`` x ``validation.beta`` (default {0, 2, 4}
        x {0, max}); validation quantises once per q and decodes at each of its betas."""
        model = self.generator
        qs = [None] if model.num_rate_levels is None else self.validation_grid.get("q", [0.0, 2.0, 4.0])
        betas = [None] if model.max_beta is None else self.validation_grid.get("beta", [0.0, model.max_beta])
        betas = [None if b is None else float(b) for b in betas]
        return [(None if q is None else float(q), betas) for q in qs]

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        for q, betas in self.validation_grid_points():
            for beta, out in zip(betas, self.generator.forward_betas(batch, q, betas), strict=True):
                self._validate_point(batch, batch_idx, q, beta, out)

    def _validate_point(
        self, batch: Tensor, batch_idx: int, q: float | None, beta: float | None, out: GeneratorOutput
    ) -> None:
        name = _grid_name(q, beta)
        metrics = {f"val/bpp_{name}": out.bpp.mean(), f"val/psnr_{name}": psnr_8bit(batch, out.x_hat).mean()}
        if self.perceptual_loss is not None:
            key = "lpips_random_backbone" if self.perceptual_loss.random_backbone else "lpips"
            metrics[f"val/{key}_{name}"] = self.perceptual_loss.distance(batch, out.x_hat).mean()
        self.log_dict(metrics, on_epoch=True, batch_size=batch.shape[0], sync_dist=True)
        if batch_idx < self.validation_grid.get("num_images", 2):
            self._save_reconstruction(out.x_hat, f"{name}_img{batch_idx}")

    def _save_reconstruction(self, image: Tensor, name: str) -> None:
        if self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        folder = Path(self.trainer.default_root_dir) / "val_images" / f"step{self.global_step:08d}"
        path = write_image(image[:1], folder / f"{name}.png")
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=f"val_images/{name}", images=[str(path)], step=self.global_step)


#: The terms the realism weight multiplies in the total (stage 3: beta), in the order they are added.
REALISM_TERMS = ("perceptual", "adversarial")


def total_loss(terms: dict[str, Tensor], realism_weight: float) -> Tensor:
    """``distortion + rate + realism_weight * (perceptual + adversarial)``, of the realism terms present
    (paper, eq. 7; stages 1-2 have weight 1 and no adversarial term)."""
    total = terms["distortion"] + terms["rate"]
    realism = [terms[name] for name in REALISM_TERMS if name in terms]
    if realism:
        total = total + realism_weight * sum(realism[1:], realism[0])
    return total


def compile_units(module: torch.nn.Module | None) -> list[torch.nn.Module]:
    """The modules ``torch.compile`` compiles for ``module``: its ``compile_units()`` where it has
    them, else the module itself (none for None)."""
    if module is None:
        return []
    return module.compile_units() if hasattr(module, "compile_units") else [module]


def instantiate_optional(cfg: dict[str, Any] | None) -> Any:
    """``instantiate(cfg)``, or None for a missing config or one with ``_target_: null`` (a "none" option)."""
    return instantiate(cfg) if cfg and cfg.get("_target_") is not None else None


def instantiate_as(cfg: dict[str, Any] | None, interface: type[Built], option: str, optional: bool = False) -> Any:
    """``instantiate(cfg)`` (``instantiate_optional(cfg)`` where ``optional``), which must be an ``interface``;
    ``option`` names the config group in the error."""
    built = instantiate_optional(cfg) if optional else instantiate(cfg)
    if not isinstance(built, interface) and not (optional and built is None):
        kind = type(built)
        raise ConfigError(f"{option}: {kind.__module__}.{kind.__qualname__} is not a {interface.__qualname__}")
    return built


def _grid_name(q: float | None, beta: float | None) -> str:
    parts = [] if q is None else [f"q{q:g}"]
    parts += [] if beta is None else [f"beta{beta:g}"]
    return "_".join(parts) or "model"
