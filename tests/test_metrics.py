"""Evaluation metrics: HiFiC patch protocol, FID/KID math, PSNR/MS-SSIM, DISTS, offline weight files."""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import socket
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

import crdr.metrics.dists as dists_module
import crdr.metrics.inception as inception_module
import crdr.metrics.weights as weights_module
from crdr.io.images import read_image
from crdr.metrics import (
    Dists,
    FidKid,
    InceptionFeatures,
    fid_from_features,
    hific_patches,
    kid_from_features,
    ms_ssim,
    pretrained_file,
    psnr_8bit,
)
from crdr.metrics.fid import uses_shifted_patches
from crdr.package_data import demo_images

KODAK = demo_images()


@pytest.fixture(scope="module")
def kodak() -> list[torch.Tensor]:
    return [read_image(p) for p in KODAK]  # each (1, 3, 512, 768)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", refuse)
    monkeypatch.setattr("pytorch_fid.inception.load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def random_inception() -> InceptionFeatures:
    with pytest.warns(UserWarning, match="RANDOM"):
        return InceptionFeatures(random_backbone=True)


class StubFeatures(nn.Module):
    """Cheap stand-in for InceptionFeatures: 8 channel statistics per patch."""

    random_backbone = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3))[:, :2]], dim=1)


# --- HiFiC patches ----------------------------------------------------------------------------------------------


def test_hific_patches_on_kodak(kodak: list[torch.Tensor]) -> None:
    x = kodak[0]
    assert x.shape == (1, 3, 512, 768)
    plain = hific_patches(x, shifted=False)
    patches = hific_patches(x)
    assert plain.shape == (6, 3, 256, 256)
    assert patches.shape == (8, 3, 256, 256)  # 3x2 grid + the 640x384 shifted image's 2x1 grid
    assert torch.equal(patches[0], x[0, :, :256, :256])
    assert torch.equal(patches[1], x[0, :, :256, 256:512])  # row-major
    assert torch.equal(patches[3], x[0, :, 256:512, :256])
    assert torch.equal(patches[6], x[0, :, 128:384, 128:384])  # first shifted patch
    assert torch.equal(patches[7], x[0, :, 128:384, 384:640])
    assert torch.equal(patches[:6], plain)
    assert hific_patches(x[..., :200, :200]).shape == (0, 3, 256, 256)


def test_shift_policies(kodak: list[torch.Tensor]) -> None:
    x = kodak[1]
    for policy in ("always", "min_side_384"):
        assert uses_shifted_patches(512, 768, 256, policy)
        acc = FidKid(StubFeatures(), shift_policy=policy)
        assert acc.update(x, x) == 8
        crop = x[..., :300, :700]
        assert acc.update(crop, crop) == 2  # plain 1x2 only: the shifted 172x572 image holds no patch either
        assert acc.num_patches == 10
    assert not uses_shifted_patches(300, 700, 256, "min_side_384")
    assert uses_shifted_patches(300, 700, 256, "always")
    with pytest.raises(ValueError, match="shift_policy"):
        FidKid(StubFeatures(), shift_policy="sometimes")  # type: ignore[arg-type]


def test_small_images_counted_and_too_few_patches_error(kodak: list[torch.Tensor]) -> None:
    acc = FidKid(StubFeatures())
    small = kodak[0][..., :200, :200]
    assert acc.update(small, small) == 0
    with pytest.raises(ValueError, match=r"at least 2 patches.*1 smaller than 256x256"):
        acc.compute()
    acc.update(kodak[0][..., :256, :512], kodak[1][..., :256, :512])
    result = acc.compute()
    assert (result["num_patches"], result["num_images"], result["num_images_without_patches"]) == (2, 2, 1)
    with pytest.raises(ValueError, match="shape mismatch"):
        acc.update(small, kodak[0])


# --- FID / KID math ---------------------------------------------------------------------------------------------


def _numpy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2))))


@pytest.mark.parametrize(("n", "d"), [(200, 16), (30, 64)])
def test_fid_matches_numpy_formula(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n + 5, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.5
    expected = _numpy_fid(a, b)
    for method in ("auto", "sqrtm", "svd"):
        assert fid_from_features(a, b, method=method) == pytest.approx(expected, rel=1e-6)
    assert fid_from_features(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        expected, rel=1e-4
    )


def test_fid_zero_for_itself_and_grows_with_mean_shift() -> None:
    rng = np.random.default_rng(1)
    for n, d in [(100, 8), (24, 2048)]:
        a = rng.normal(size=(n, d))
        assert abs(fid_from_features(a, a)) < 1e-6
    a = rng.normal(size=(500, 8))
    values = [fid_from_features(a, a + shift) for shift in (0.0, 0.1, 0.5, 1.0)]
    assert values == sorted(values) and values[0] < 1e-9
    assert values[-1] == pytest.approx(8.0, rel=1e-9)  # |mu shift|^2 = 8 * 1^2, identical covariances
    with pytest.raises(ValueError, match="N >= 2"):
        fid_from_features(a[:1], a)


def test_kid_unbiased_and_positive_for_shift() -> None:
    rng = np.random.default_rng(2)
    same = [
        kid_from_features(rng.normal(size=(100, 16)), rng.normal(size=(100, 16)), 5, 50, seed=i)[0] for i in range(40)
    ]
    shifted = kid_from_features(rng.normal(size=(100, 16)), rng.normal(size=(100, 16)) + 0.5, 5, 50)[0]
    assert abs(np.mean(same)) < 0.1 * shifted
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(len(same)) + 1e-3
    assert shifted > 0.1


def test_kid_matches_torchmetrics() -> None:
    from torchmetrics.image.kid import KernelInceptionDistance

    g = torch.Generator().manual_seed(3)
    real = torch.randn(40, 32, generator=g, dtype=torch.float64)
    fake = torch.randn(40, 32, generator=g, dtype=torch.float64) * 1.2 + 0.3
    with pytest.warns(UserWarning):
        reference = KernelInceptionDistance(feature=nn.Identity(), subsets=1, subset_size=40)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    expected = reference.compute()[0].item()
    mean, std = kid_from_features(real, fake, num_subsets=3, subset_size=1000)  # whole sets: every subset equal
    assert mean == pytest.approx(expected, rel=1e-9)
    assert std < 1e-12


# --- FidKid with a random Inception-v3 on real images -----------------------------------------------------------


def test_fidkid_random_inception_on_kodak(kodak: list[torch.Tensor], random_inception: InceptionFeatures) -> None:
    assert random_inception.random_backbone
    crops = [x[..., 128:384, 256:512] for x in kodak]  # one patch each (the shift is tested with StubFeatures)
    same, degraded = FidKid(random_inception), FidKid(random_inception)
    g = torch.Generator().manual_seed(0)
    for x in crops:
        same.update(x, x)
        blurred = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
        degraded.update(x, (blurred + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1))
    a, b = same.compute(), degraded.compute()
    assert a["num_patches"] == b["num_patches"] == 3
    assert abs(a["fid"]) < 1e-6
    assert b["fid"] > 1e-3 and b["fid"] > 1000 * abs(a["fid"])
    assert math.isfinite(b["kid"]) and a["random_backbone"]  # 3 patches: KID too noisy to compare


def test_inception_features_shape_and_rounding(kodak: list[torch.Tensor], random_inception: InceptionFeatures) -> None:
    x = kodak[2][..., :128, :128]
    f = random_inception(x)
    assert f.shape == (1, 2048) and f.dtype == torch.float32 and f.abs().sum() > 0
    assert torch.equal(random_inception(x + 0.1 / 255), f)  # 8-bit rounding hides sub-level changes
    random_inception.train()
    assert not random_inception.training and not any(p.requires_grad for p in random_inception.parameters())


def test_random_inception_is_seeded_and_offline(no_network: None) -> None:
    with pytest.warns(UserWarning, match="not FID"):
        a = InceptionFeatures(random_backbone=True)
    with pytest.warns(UserWarning):
        b = InceptionFeatures(random_backbone=True)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_pytorch_fid_network_random_seeded_offline_and_close_to_torch_fidelity(
    kodak: list[torch.Tensor], random_inception: InceptionFeatures, no_network: None
) -> None:
    with pytest.warns(UserWarning, match="RANDOM pytorch-fid"):
        a = InceptionFeatures(random_backbone=True, network="pytorch-fid")
    with pytest.warns(UserWarning):
        b = InceptionFeatures(random_backbone=True, network="pytorch-fid")
    assert a.network == "pytorch-fid" and a.random_backbone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    x = torch.cat([k[..., :256, :256] for k in kodak])
    f = a(x)
    assert f.shape == (3, 2048) and f.dtype == torch.float32 and f.abs().sum() > 0
    assert torch.equal(a(x + 0.1 / 255), f)  # 8-bit rounding, as for torch-fidelity
    a.train()
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    # The same random weights in both networks; only their resizing to 299x299 differs, so do their features.
    g = random_inception(x)
    assert not torch.equal(f, g) and (f - g).norm() < 0.1 * g.norm()


def test_pytorch_fid_weights_are_read_from_the_hub_cache_with_weights_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kodak: list[torch.Tensor], no_network: None
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    name = inception_module.INCEPTION_FILES["pytorch-fid"][0]
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    path = inception_module._random_inception_file(tmp_path, seed=3).rename(folder / name)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]  # stands in for the real file's 6726825d
    monkeypatch.setitem(inception_module.INCEPTION_FILES, "pytorch-fid", (name, prefix))
    loaded = InceptionFeatures(network="pytorch-fid")
    assert not loaded.random_backbone
    with pytest.warns(UserWarning):
        seed3 = InceptionFeatures(random_backbone=True, seed=3, network="pytorch-fid")
    x = kodak[0][..., :256, :256]
    assert torch.equal(loaded(x), seed3(x))
    torch.save({"weights": Path("not a tensor")}, path)  # arbitrary pickled objects are refused
    monkeypatch.setitem(inception_module.INCEPTION_FILES, "pytorch-fid", (name, ""))
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        InceptionFeatures(network="pytorch-fid")
    with pytest.raises(ValueError, match="FID network must be one of torch-fidelity, pytorch-fid, got 'tf'"):
        InceptionFeatures(network="tf")


# --- PSNR / MS-SSIM ---------------------------------------------------------------------------------------------


def test_psnr_8bit_known_values(kodak: list[torch.Tensor]) -> None:
    x = torch.round(kodak[0] * 0.9 * 255) / 255  # headroom so that +1 level is never clamped
    assert psnr_8bit(x, x + 1 / 255).item() == pytest.approx(10 * math.log10(255**2), abs=1e-4)  # 48.13 dB
    assert psnr_8bit(x, x + 0.4 / 255).item() == pytest.approx(10 * math.log10(255**2 / 1e-10), abs=1e-3)  # rounds away
    two = psnr_8bit(torch.cat([x, x]), torch.cat([x + 1 / 255, x + 2 / 255]))
    assert two.shape == (2,)
    assert two[1].item() == pytest.approx(10 * math.log10(255**2 / 4), abs=1e-4)


def test_ms_ssim(kodak: list[torch.Tensor]) -> None:
    x = kodak[0][..., :256, :256]
    g = torch.Generator().manual_seed(0)
    noised = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    value = ms_ssim(torch.cat([x, x]), torch.cat([x, noised]))
    assert value.shape == (2,) and 0 < value[1].item() < 0.999
    assert torch.isnan(ms_ssim(x[..., :64, :64], noised[..., :64, :64])).all()
    assert torch.isnan(ms_ssim(x[..., :160, :], noised[..., :160, :])).all()
    assert torch.isfinite(ms_ssim(x[..., :161, :], noised[..., :161, :])).all()


# --- DISTS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_dists() -> Dists:
    with pytest.warns(UserWarning, match="not DISTS"):
        return Dists(random_backbone=True)


def test_dists_random_backbone(kodak: list[torch.Tensor], random_dists: Dists) -> None:
    x, y = kodak[0][..., :96, :96], kodak[1][..., :96, :96]
    assert random_dists.random_backbone
    same = random_dists(x, x)
    assert same.shape == (1,) and abs(same.item()) < 1e-6
    d = random_dists(torch.cat([x, x]), torch.cat([y, (x + 0.1).clamp(0, 1)]))
    assert d.shape == (2,) and (d > 1e-3).all()
    random_dists.train()
    assert not random_dists.training and not any(p.requires_grad for p in random_dists.parameters())


def test_dists_builds_vgg_once(monkeypatch: pytest.MonkeyPatch, kodak: list[torch.Tensor], no_network: None) -> None:
    calls = []
    original = dists_module._vgg16_features
    monkeypatch.setattr(dists_module, "_vgg16_features", lambda: calls.append(1) or original())
    with pytest.warns(UserWarning):
        metric = Dists(random_backbone=True)
    stages = [id(s) for s in metric.stages]
    x = kodak[2][..., :64, :64]
    for _ in range(3):
        metric(x, x.flip(-1))
    assert len(calls) == 1 and [id(s) for s in metric.stages] == stages


def test_dists_matches_torchmetrics_network(
    monkeypatch: pytest.MonkeyPatch, kodak: list[torch.Tensor], random_dists: Dists
) -> None:
    import torchmetrics.functional.image.dists as tm_dists

    vgg = dists_module._vgg16_features()
    for stage in random_dists.stages:
        for name, module in stage.named_children():
            if not isinstance(module, tm_dists.L2pooling):
                vgg[int(name)] = module
    monkeypatch.setattr(tm_dists, "vgg16", lambda weights=None: SimpleNamespace(features=vgg))
    reference = tm_dists.DISTSNetwork()
    x = torch.cat([kodak[0][..., :80, :96], kodak[1][..., :80, :96]])
    y = torch.cat([kodak[2][..., :80, :96], kodak[0][..., 8:88, :96]])
    torch.testing.assert_close(random_dists(x, y), reference(x, y), rtol=1e-5, atol=1e-6)


# --- offline weight files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "filename"),
    [
        (InceptionFeatures, "weights-inception-2015-12-05-6726825d.pth"),
        (partial(InceptionFeatures, network="pytorch-fid"), "pt_inception-2015-12-05-6726825d.pth"),
        (Dists, "vgg16-397923af.pth"),
    ],
)
def test_missing_and_wrong_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: None, build: type, filename: str
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=re.escape(filename)) as info:
        build()
    assert time.monotonic() - start < 1
    assert "\n" not in str(info.value) and str(folder) in str(info.value)
    folder.mkdir(parents=True)
    (folder / filename).write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match="SHA-256"):
        build()


def test_pretrained_file_paths_and_hash_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "thing.pth"
    path.write_bytes(b"not really weights")
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    calls = []
    real_sha256_file = weights_module.sha256_file
    monkeypatch.setattr(weights_module, "sha256_file", lambda *a: calls.append(1) or real_sha256_file(*a))
    assert pretrained_file("thing.pth", prefix, path) == path
    assert pretrained_file("thing.pth", prefix.upper(), tmp_path) == path  # a folder holding the file
    assert len(calls) == 1  # the second check used the cache
    path.write_bytes(b"changed content, new size")
    with pytest.raises(ValueError, match="SHA-256"):
        pretrained_file("thing.pth", prefix, path)
    with pytest.raises(FileNotFoundError, match=r"other\.pth .*put the file in"):
        pretrained_file("other.pth", prefix, tmp_path / "other.pth")
