"""Training: the Lightning modules composed from the real configs, at tiny widths on Kodak crops."""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import KODAK, ROOT, tiny_train_overrides, train_config
from crdr import load_model
from crdr.cli.train import build_datamodule, build_module, build_trainer, run
from crdr.config import config_dir
from crdr.data.shards import write_tar_shards
from crdr.io.images import write_image
from crdr.package_data import DEMO_IMAGE_DIR

DISCRIMINATORS = sorted(p.stem for p in (config_dir() / "discriminator").glob("*.yaml"))
GAN_LOSSES = sorted(p.stem for p in (config_dir() / "gan_loss").glob("*.yaml"))
BETA_SCHEDULES = sorted(p.stem for p in (config_dir() / "beta_schedule").glob("*.yaml") if p.stem != "none")
EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def _fit(cfg, spy=None):
    """Builds module, data and trainer from cfg and fits; ``spy(module)`` runs before fit."""
    module = build_module(cfg)
    if spy is not None:
        spy(module)
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=build_datamodule(cfg))
    return module, trainer


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def _record_batches(module) -> list[torch.Tensor]:
    batches: list[torch.Tensor] = []
    step = module.training_step

    def recording(batch, batch_idx):
        batches.append(batch.clone())
        return step(batch, batch_idx)

    module.training_step = recording
    return batches


def test_stage3_iteration_steps_generator_discriminator_aux_and_schedulers(tmp_path):
    cfg = train_config(tmp_path, ["trainer.max_steps=3", "optimizer.scheduler.milestones=[2]"])
    state = {}

    def spy(module):
        state["generator"], state["discriminator"] = _snapshot(module.generator), _snapshot(module.discriminator)
        state["batches"] = _record_batches(module)

    module, trainer = _fit(cfg, spy)
    changed = _changed(state["generator"], module.generator)
    assert "entropy_model_z.quantiles" in changed  # aux optimizer
    assert {
        "encoder.conv1.weight",
        "decoder.conv4.weight",
        "context_model.mean_slice_transforms.0.model.0.weight",
    } <= changed
    assert _changed(state["discriminator"], module.discriminator)
    # max_steps counts generator iterations: 3 batches, 3 generator steps (not 3 optimizer steps in all).
    assert len(state["batches"]) == 3 and trainer.global_step == 3
    g_opt, _, d_opt = (opt.optimizer for opt in module.optimizers())
    assert g_opt.param_groups[0]["lr"] == pytest.approx(1e-4) and d_opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert g_opt.state[next(iter(module.generator.decoder.parameters()))]["step"] == 3
    assert int(module.skipped_steps) == 0


def test_a_non_finite_loss_skips_the_whole_iteration(tmp_path):
    cfg = train_config(tmp_path, ["trainer.max_steps=1"])
    state = {}

    def spy(module):
        state["before"] = _snapshot(module)
        distortion = module.distortion_loss
        calls = []

        def poisoned(x, x_hat):
            calls.append(1)
            value = distortion(x, x_hat)
            return value * float("nan") if len(calls) <= 2 else value

        module.distortion_loss = poisoned

    module, trainer = _fit(cfg, spy)
    # Two poisoned batches leave every parameter (generator, discriminator, quantiles) untouched ...
    assert int(module.skipped_steps) == 2
    assert trainer.global_step == 1  # ... and do not count as iterations; the third batch trains.
    assert trainer.callback_metrics["train/skipped_steps"] == 2


def test_skipped_iterations_change_nothing_and_too_many_in_a_row_abort(tmp_path):
    cfg = train_config(tmp_path, ["trainer.max_steps=1", "module.max_consecutive_skips=3"])
    state = {}

    def spy(module):
        state["module"], state["before"] = module, _snapshot(module)
        module.distortion_loss = lambda x, x_hat: torch.tensor(float("inf"))

    with pytest.raises(RuntimeError, match=r"3 iterations in a row had a non-finite loss .* training diverged"):
        _fit(cfg, spy)
    module = state["module"]
    assert module.global_step == 0 and int(module.skipped_steps) == 3
    assert not _changed(state["before"], module)
    assert all(not opt.optimizer.state for opt in module.optimizers())


@pytest.mark.parametrize("discriminator", DISCRIMINATORS)
@pytest.mark.parametrize("gan_loss", GAN_LOSSES)
def test_every_discriminator_gan_loss_and_beta_schedule_trains(tmp_path, discriminator, gan_loss):
    for beta_schedule in BETA_SCHEDULES:
        cfg = train_config(
            tmp_path / beta_schedule,
            [
                f"discriminator={discriminator}",
                f"gan_loss={gan_loss}",
                f"beta_schedule={beta_schedule}",
                "trainer.max_steps=1",
                "trainer.val_check_interval=1000",
                "callbacks={}",
            ],
        )
        state = {}
        module, trainer = _fit(cfg, lambda m: state.update(before=_snapshot(m)))  # noqa: B023
        assert trainer.global_step == 1, (discriminator, gan_loss, beta_schedule)
        changed = _changed(state["before"], module)
        assert any(k.startswith("generator.decoder") for k in changed)
        assert any(k.startswith("discriminator.") for k in changed) == (discriminator != "none")
        assert torch.isfinite(torch.tensor(trainer.callback_metrics["train/loss"].item()))


@pytest.mark.parametrize(("q", "reference_level"), [(1.0, 2.0), (3.0, 4.0), (4.0, None)])
def test_hrrgan_compares_with_the_next_rate_level(tmp_path, q, reference_level):
    overrides = [
        "q_schedule._target_=crdr.lit.schedules.FixedQ",
        "~q_schedule.num_levels",
        f"+q_schedule.value={q}",
        "beta_schedule=fixed",
        "discriminator=gvae",
        "trainer.max_steps=1",
        "trainer.val_check_interval=1000",
    ]
    cfg = train_config(tmp_path, overrides)
    state = {"inputs": []}

    def spy(module):
        with torch.no_grad():  # distinct rate levels (a fresh model's ICA is the identity at every level)
            for ica in [*module.generator.encoder.interp_ca_list, *module.generator.decoder.interp_ca_list]:
                ica.weight.normal_(0.5, 0.5)
                ica.bias.normal_(0.0, 0.1)
        state["generator"] = copy.deepcopy(module.generator)
        state["batches"] = _record_batches(module)
        forward = module.discriminator.forward
        module.discriminator.forward = lambda x, level, latent=None: (
            state["inputs"].append((x.detach().clone(), int(level))) or forward(x, level, latent)
        )

    _fit(cfg, spy)
    x = state["batches"][0]
    fake, reference, real, fake_again = state["inputs"]  # G side: D(x_hat), D(reference); D side: D(x), D(x_hat)
    assert {level for _, level in state["inputs"]} == {int(q)}  # D_q scores the reference too
    if reference_level is None:
        torch.testing.assert_close(reference[0], x * 2 - 1)  # top level: the real image
    else:
        before = state["generator"].train()
        with torch.no_grad():
            expected = before(x, reference_level, 2.56).x_hat * 2 - 1  # pre-update weights, same beta
        torch.testing.assert_close(reference[0], expected, atol=1e-6, rtol=0)
        assert not torch.allclose(reference[0], fake[0], atol=1e-3)
    torch.testing.assert_close(real[0], x * 2 - 1)
    torch.testing.assert_close(fake_again[0], fake[0])


def test_rgan_compares_with_the_real_image(tmp_path):
    cfg = train_config(tmp_path, ["gan_loss=rgan", "discriminator=gvae", "trainer.max_steps=1"])
    state = {"inputs": []}

    def spy(module):
        state["batches"] = _record_batches(module)
        forward = module.discriminator.forward
        module.discriminator.forward = lambda x, level, latent=None: (
            state["inputs"].append(x.detach().clone()) or forward(x, level, latent)
        )

    _fit(cfg, spy)
    torch.testing.assert_close(state["inputs"][1], state["batches"][0] * 2 - 1)


def test_a_run_validates_checkpoints_exports_and_compresses(tmp_path):
    cfg = train_config(tmp_path, [f"demo_images=[{DEMO_IMAGE_DIR / 'kodim23.png'}]", "demo_betas=[0,5.12]"])
    metrics = run(cfg)
    assert {"val/psnr_q0_beta0", "val/bpp_q4_beta5.12", "val/lpips_random_backbone_q2_beta0"} <= set(metrics)
    assert metrics["val/bpp_q0_beta0"] > 0 and 0 < metrics["val/psnr_q4_beta0"] < 100
    assert sorted(p.name for p in (tmp_path / "val_images").rglob("*.png"))[:2] == [
        "q0_beta0_img0.png",
        "q0_beta0_img1.png",
    ]
    assert (tmp_path / "checkpoints" / "config.yaml").read_text() == (tmp_path / "config.yaml").read_text()
    assert "${" not in (tmp_path / "config.yaml").read_text()  # fully resolved
    # The Lightning checkpoint and the export load as generators (weights_only, config inside).
    from_ckpt = load_model(tmp_path / "checkpoints" / "last.ckpt")
    exported = load_model(tmp_path / "generator.safetensors")
    for a, b in zip(from_ckpt.state_dict().values(), exported.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert (tmp_path / "demo" / "kodim23.crdr").stat().st_size > 100
    assert {p.name for p in (tmp_path / "demo").glob("*.png")} == {"kodim23_beta0.png", "kodim23_beta5.12.png"}
    lines = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert "train/loss" in lines[0] and len(lines) >= 3


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_config_runs(tmp_path, experiment):
    cfg = train_config(tmp_path, ["trainer.max_steps=1", "trainer.val_check_interval=1"], experiment=experiment)
    metrics = run(cfg)
    assert any(k.startswith("val/psnr") for k in metrics)
    assert (tmp_path / "generator.safetensors").is_file()


def test_stage2_starts_from_stage1_weights(tmp_path):
    run(train_config(tmp_path / "s1", experiment="crdr_stage1"))
    stage1 = load_model(tmp_path / "s1" / "generator.safetensors")
    cfg = train_config(tmp_path / "s2", [f"init_from={tmp_path / 's1' / 'checkpoints' / 'last.ckpt'}"], "crdr_stage2")
    module = build_module(cfg)
    assert module.fresh_tensors == sorted(
        [
            f"{part}.interp_ca_list.{i}.{p}"
            for part in ("decoder", "encoder")
            for i in range(9)
            for p in ("bias", "weight")
        ]
    )
    assert torch.equal(module.generator.encoder.conv1.weight, stage1.encoder.conv1.weight)
    assert torch.equal(
        module.generator.context_model.lrp_slice_transforms[9].model[4].bias,
        stage1.context_model.lrp_slice_transforms[9].model[4].bias,
    )


@pytest.mark.slow
def test_a_2x2_multirun_sweep_completes(tmp_path):
    sweep = ["trainer.max_steps=1", "discriminator=gvae,module_list", "gan_loss=ragan,hrrgan"]
    _run_tiny([*sweep, f"hydra.sweep.dir={tmp_path}"], multirun=True)
    runs = sorted(p.parent.name for p in Path(tmp_path).glob("*/generator.safetensors"))
    assert runs == ["0", "1", "2", "3"]
    choices = {(tmp_path / r / ".hydra" / "overrides.yaml").read_text() for r in runs}
    assert len(choices) == 4


def test_wandb_logs_offline_without_an_api_key_and_the_csv_is_still_written(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login`
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB__SERVICE_WAIT", "300")  # a loaded CI machine starts wandb-core slowly
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "300")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    import wandb

    wandb.setup()  # W&B already set up in this process (e.g. by an evaluation) before WandbLogger sets WANDB_MODE
    cfg = train_config(tmp_path / "run", ["logger=wandb", "trainer.max_steps=1", "logger.wandb.tags=[test]"])
    run(cfg)
    (offline_run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert b"train/loss" in b"".join(p.read_bytes() for p in offline_run.rglob("*.wandb"))  # flushed and closed
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()


def test_train_metrics_are_logged_only_on_the_steps_lightning_writes(tmp_path):
    """``self.log`` costs host time on every call: iterations between ``log_every_n_steps`` skip it,
    and the steps that are written still hold every train metric."""
    run = ["trainer.max_steps=5", "trainer.log_every_n_steps=2", "trainer.val_check_interval=1000"]
    cfg = train_config(tmp_path, run)
    logged: list[set[str]] = []

    def spy(module):
        log, step = module.log, module.training_step

        def recording_log(name, *args, **kwargs):
            logged[-1].add(name)
            return log(name, *args, **kwargs)

        def recording_step(batch, batch_idx):
            logged.append(set())
            return step(batch, batch_idx)

        module.log, module.training_step = recording_log, recording_step

    _fit(cfg, spy)
    metrics = {"train/loss", "train/rate", "train/aux", "train/grad_norm", "train/d_loss", "train/q", "train/lr"}
    assert [metrics <= names for names in logged] == [False, True, False, True, False]  # iterations 2 and 4
    assert logged[0::2] == [set()] * 3  # nothing else (no progress bar in this run)
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("train/loss")]
    assert [int(row["step"]) for row in rows] == [1, 3]
    assert all(float(row["train/d_loss"]) > 0 for row in rows)


def test_generator_gradients_are_clipped_before_each_step(tmp_path):
    cfg = train_config(tmp_path, ["trainer.max_steps=2", "optimizer.clip_grad_norm=0.01"])
    norms = []

    def spy(module):
        configure = module.configure_optimizers

        def configure_and_watch():
            optimizers, schedulers = configure()
            generator_optimizer = optimizers[0]

            def record(optimizer, args, kwargs):
                grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
                norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

            generator_optimizer.register_step_pre_hook(record)
            return optimizers, schedulers

        module.configure_optimizers = configure_and_watch

    _, trainer = _fit(cfg, spy)
    assert len(norms) == 2 and max(norms) <= 0.01 * (1 + 1e-4)
    assert trainer.callback_metrics["train/grad_norm"] > 0.01  # the unclipped norm is logged


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "local_parallel"])
def test_a_sweep_runs_through_a_cluster_style_launcher(tmp_path, launcher):
    sweep = [f"hydra/launcher={launcher}", "trainer.max_steps=1", "gan_loss=rgan,hrrgan"]
    _run_tiny([*sweep, f"hydra.sweep.dir={tmp_path}"], multirun=True, timeout=900)
    assert sorted(p.parent.name for p in tmp_path.glob("*/generator.safetensors")) == ["0", "1"]


def _run_tiny(overrides: list[str], multirun: bool = False, timeout: int = 600) -> None:
    """``python -m crdr.cli.train`` on the tiny stage3_from_scratch in a subprocess (sweeps and DDP relaunch it)."""
    flags = ["-m"] if multirun else []
    command = [sys.executable, "-m", "crdr.cli.train", *flags, *tiny_train_overrides(), *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}  # rank_dump.py for the DDP test's callback
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def _dump(folder) -> list[str]:
    return ["+callbacks.dump._target_=rank_dump.RankParameterDump", f"+callbacks.dump.folder={folder}"]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_equals_one_process_with_the_same_global_batch(tmp_path, kodak):
    images = tmp_path / "images"
    write_image(kodak[0][:, :, 200:264, 300:364], images / "a.png")
    write_image(kodak[2][:, :, 100:164, 500:564], images / "b.png")
    common = [
        f"data.train_dirs=[{images}]",
        "data.val_dirs=null",
        "data.crop_size=64",  # the whole image: no random crop
        "data.horizontal_flip=false",
        "rate_loss.lmbda=0",  # the rate gradient depends on each process's quantisation noise
        "trainer.max_steps=2",
        "trainer.val_check_interval=1000",
    ]
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp_args = ["trainer.devices=2", "trainer.strategy=ddp_find_unused_parameters_true", "data.batch_size=1"]
    _run_tiny([*common, *ddp_args, f"hydra.run.dir={ddp}", *_dump(ddp)])
    _run_tiny([*common, "data.batch_size=2", f"hydra.run.dir={single}", *_dump(single)])
    rank0, rank1, alone = (
        torch.load(path, weights_only=True)
        for path in (ddp / "params_rank0.pt", ddp / "params_rank1.pt", single / "params_rank0.pt")
    )
    assert not [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]  # every rank holds the same model
    start = build_module(train_config(tmp_path / "fresh"))
    trained = {k for k, v in start.named_parameters() if not torch.equal(v.detach(), rank0[k])}
    assert any(k.startswith("generator.decoder") for k in trained) and any(
        k.startswith("discriminator.") for k in trained
    )
    assert "generator.entropy_model_z.quantiles" in trained
    # ... and the same model as one process with the whole batch, up to float reassociation that Adam's
    # normalisation amplifies for near-zero gradients (updates here are ~1e-3 per step, lr 1e-3)
    for k in rank0:
        torch.testing.assert_close(rank0[k], alone[k], rtol=1e-4, atol=2e-5, msg=k)


@pytest.mark.parametrize(
    "switch",
    [
        ["trainer.precision=bf16-mixed"],
        ["module.channels_last=true"],
        ["optimizer.generator.fused=true", "optimizer.discriminator.fused=true"],
        ["trainer.benchmark=true"],
        ["module.compile.enabled=true", "module.compile.backend=aot_eager"],  # inductor: a C++ compiler
        ["module.compile.enabled=true", "module.compile.backend=aot_eager", "trainer.precision=bf16-mixed"],
    ],
    ids=["bf16_autocast", "channels_last", "fused_adam", "cudnn_benchmark", "torch_compile", "torch_compile_bf16"],
)
def test_speed_switches_train_on_cpu(tmp_path, monkeypatch, switch):
    torch._dynamo.utils.counters.clear()
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # the Trainer sets it for the process
    # iteration 0 is at the top rate level, iteration 1 adds the HRRGAN reference pass (no grad)
    cfg = train_config(tmp_path, [*switch, "trainer.max_steps=2", "trainer.val_check_interval=1000"])
    state = {"likelihood_dtypes": set()}

    def spy(module):
        state["before"] = _snapshot(module)
        forward = module.generator.entropy_model_y.forward

        def recording(*args, **kwargs):
            y_hat, likelihoods = forward(*args, **kwargs)
            state["likelihood_dtypes"].add(likelihoods.dtype)
            return y_hat, likelihoods

        module.generator.entropy_model_y.forward = recording
        module.generator.decoder.conv1.register_forward_hook(
            lambda mod, args, out: state.setdefault("conv_dtypes", set()).add(out.dtype)
        )

    # a network that needs more graphs than dynamo's recompile limit would silently run eagerly
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        module, trainer = _fit(cfg, spy)
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["train/loss"])
    changed = _changed(state["before"], module)
    assert any(k.startswith("generator.decoder") for k in changed) and any(
        k.startswith("discriminator") for k in changed
    )
    assert state["likelihood_dtypes"] == {torch.float32}  # rates stay float32 under mixed precision
    if "module.channels_last=true" in switch:
        conv = module.generator.decoder.conv1.weight
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    if "module.compile.enabled=true" in switch:
        assert all(part._compiled_call_impl is not None for part in module.networks_to_compile())
        entropy_models = [module.generator.entropy_model_y, module.generator.entropy_model_z]
        assert all(hasattr(m.rounded_likelihood, "_torchdynamo_orig_callable") for m in entropy_models)
        assert any(part is module.perceptual_loss.lpips for part in module.networks_to_compile())
        assert all(any(d is part for part in module.networks_to_compile()) for d in module.discriminator.subD_list)
        assert not torch._dynamo.utils.counters["graph_break"]
        # networks of one class share graphs: one per input shape and grad mode, not one per network
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] < len(module.networks_to_compile())
    assert torch.backends.cudnn.benchmark == ("trainer.benchmark=true" in switch)
    bf16 = "trainer.precision=bf16-mixed" in switch
    assert state["conv_dtypes"] == ({torch.bfloat16} if bf16 else {torch.float32})


def test_training_from_tar_shards_sees_the_batches_of_the_image_folder(tmp_path):
    shards = write_tar_shards(KODAK, tmp_path / "shards", images_per_shard=2)
    sources = {"folder": [], "shards": ["data.train_dirs=null", f"+data.train_shards=[{shards[0].parent}]"]}
    batches = {}
    for label, data in sources.items():
        cfg = train_config(tmp_path / label, [*data, "trainer.max_steps=2", "trainer.val_check_interval=1000"])
        state = {}
        _, trainer = _fit(cfg, lambda m, state=state: state.setdefault("batches", _record_batches(m)))
        assert trainer.global_step == 2
        batches[label] = state["batches"]
    assert len(batches["shards"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(batches["folder"], batches["shards"], strict=True))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+module.mistyped=1", "unknown key(s) ['mistyped'] for GanModule"),
        ("init_from=???", "Missing mandatory value: init_from"),
        ("data.train_dirs=[/no/such/folder]", "image root /no/such/folder: no such file or directory"),
    ],
)
def test_config_mistakes_are_reported_on_one_line(tmp_path, override, message):
    command = [sys.executable, "-m", "crdr.cli.train", *tiny_train_overrides(), override, f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and message in output and "Traceback" not in output, output[-2000:]
