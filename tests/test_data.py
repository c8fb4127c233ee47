"""crdr.data (crops, sampling, shards) and crdr.lit.data: image discovery, random crops, small-image policies,
the DataModule and conf/data configs."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import random
import signal
import tarfile
import threading
import time
from functools import partial
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning import seed_everything
from lightning.fabric.utilities.seed import pl_worker_init_function
from omegaconf import DictConfig, OmegaConf, open_dict
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from crdr.config import config_dir
from crdr.data.crops import ImageFolderDataset, TarShardDataset
from crdr.data.sampling import ResumableShuffleSampler
from crdr.data.shards import write_tar_shards
from crdr.io.images import ImageReadError, read_image, write_image
from crdr.lit.data import ImageDataModule
from crdr.lit.workers import STOP_SIGNALS, StopSignalSafeDataLoader, WorkerInit, stop_signals_blocked, worker_init_fn
from crdr.package_data import DEMO_IMAGE_DIR, demo_images

REPO = Path(__file__).resolve().parents[1]
KODAK = demo_images()


def _kodak_crop(i: int, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 top-left crop of the i-th bundled Kodak image."""
    with Image.open(KODAK[i % len(KODAK)]) as img:
        return np.asarray(img.convert("RGB"))[:h, :w].copy()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/a.png, root/sub/b.jpg, root/sub/deeper/c.PNG, root/sub/deeper/d.jpeg plus non-image files."""
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    write_image(read_image(KODAK[0])[..., :96, :160], root / "a.png")
    Image.fromarray(_kodak_crop(1, 100, 150)).save(root / "sub" / "b.jpg", quality=95)
    Image.fromarray(_kodak_crop(2, 128, 128)).save(root / "sub" / "deeper" / "c.PNG")
    Image.fromarray(_kodak_crop(0, 120, 90)).save(root / "sub" / "deeper" / "d.jpeg", quality=95)
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "weights.pt").write_bytes(b"\x00" * 16)
    return root


def test_recursive_discovery_sorted_and_non_images_ignored(tree: Path) -> None:
    ds = ImageFolderDataset([tree], crop_size=64)
    names = [p.relative_to(tree).as_posix() for p in ds.files]
    assert names == ["a.png", "sub/b.jpg", "sub/deeper/c.PNG", "sub/deeper/d.jpeg"]
    assert len(ds) == 4
    assert ImageFolderDataset([tree], crop_size=64, max_images=2).files == ds.files[:2]


def test_missing_or_empty_root_is_a_clear_error(tmp_path: Path, tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolderDataset([tmp_path / "nope"])
    empty = tmp_path / "empty"
    (empty / "x").mkdir(parents=True)
    (empty / "x" / "a.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match=r"no .* files"):
        ImageFolderDataset([tree, empty])


def test_crops_shape_range_and_randomness(tree: Path) -> None:
    ds = ImageFolderDataset([tree], crop_size=64, horizontal_flip=False)
    torch.manual_seed(0)
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
    draws = [ds[0] for _ in range(4)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    # A crop is a window of the source image.
    full = read_image(ds.files[0])[0]
    x = draws[0]
    windows = full.unfold(1, 64, 1).unfold(2, 64, 1)  # (3, H-63, W-63, 64, 64)
    assert (windows == x[:, None, None]).all(dim=(0, 3, 4)).any()


def test_same_seed_same_crops(tree: Path) -> None:
    ds = ImageFolderDataset([tree], crop_size=48)
    seed_everything(123)
    a = [ds[i] for i in range(len(ds))]
    seed_everything(123)
    b = [ds[i] for i in range(len(ds))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_whole_images_when_crop_is_none(tree: Path) -> None:
    ds = ImageFolderDataset([tree], crop_size=None, horizontal_flip=False)
    assert ds[0].shape == (3, 96, 160)
    assert torch.equal(ds[0], read_image(ds.files[0])[0])


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    img = Image.fromarray(_kodak_crop(0, 80, 80)).convert(mode)
    img.save(tmp_path / ("x.jpg" if mode == "CMYK" else "x.png"))
    x = ImageFolderDataset([tmp_path], crop_size=64)[0]
    assert x.shape == (3, 64, 64) and x.min() >= 0.0 and x.max() <= 1.0
    if mode == "L":
        assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A folder holding one 40x70 (H x W) image."""
    folder = tmp_path / "small"
    folder.mkdir()
    Image.fromarray(_kodak_crop(1, 40, 70)).save(folder / "small.png")
    return folder


def test_small_image_pad_reflects(small: Path) -> None:
    ds = ImageFolderDataset([small], crop_size=64, small_images="pad", horizontal_flip=False)
    src = read_image(ds.files[0])[0]
    torch.manual_seed(0)
    for _ in range(5):
        x = ds[0]
        assert x.shape == (3, 64, 64)
    # torchvision semantics: the 40-high axis is reflect-padded by 24 on both sides (88 high), width 70 unpadded.
    padded = torch.nn.functional.pad(src[None], (0, 0, 24, 24), mode="reflect")[0]
    windows = padded.unfold(1, 64, 1).unfold(2, 64, 1)
    assert (windows == x[:, None, None]).all(dim=(0, 3, 4)).any()


def test_small_image_pad_falls_back_to_replicate(tmp_path: Path) -> None:
    Image.fromarray(_kodak_crop(0, 10, 12)).save(tmp_path / "tiny.png")
    x = ImageFolderDataset([tmp_path], crop_size=64, small_images="pad")[0]
    assert x.shape == (3, 64, 64) and x.min() >= 0.0 and x.max() <= 1.0


def test_small_image_upsample(small: Path) -> None:
    ds = ImageFolderDataset([small], crop_size=64, small_images="upsample")
    x = ds[0]
    assert x.shape == (3, 64, 64)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_small_image_skip(small: Path, tree: Path) -> None:
    with pytest.raises(ValueError, match="skip"):
        ImageFolderDataset([small], crop_size=64, small_images="skip")
    ds = ImageFolderDataset([small, tree], crop_size=100, small_images="skip")
    # small (40x70), a.png (96x160), d.jpeg (120x90) are excluded; b.jpg (100x150) and c.PNG (128x128) stay.
    assert [p.name for p in ds.files] == ["b.jpg", "c.PNG"]
    assert ds.num_skipped == 3
    assert ds[0].shape == (3, 100, 100)


def test_flip_follows_torch_rng(tree: Path) -> None:
    ds = ImageFolderDataset([tree], crop_size=None, horizontal_flip=True)
    src = read_image(ds.files[0])[0]
    torch.manual_seed(7)
    expected = [bool(torch.rand(()).item() < 0.5) for _ in range(16)]
    assert any(expected) and not all(expected)
    torch.manual_seed(7)
    got = []
    for _ in range(16):
        x = ds[0]
        assert torch.equal(x, src) or torch.equal(x, src.flip(-1))
        got.append(torch.equal(x, src.flip(-1)))
    assert got == expected
    torch.manual_seed(7)
    assert all(torch.equal(ImageFolderDataset([tree], crop_size=None, horizontal_flip=False)[0], src) for _ in range(8))


def test_permute_channels_reorders_rgb_and_keeps_the_crop_stream(tree: Path) -> None:
    plain = ImageFolderDataset([tree], crop_size=48)
    permuted = ImageFolderDataset([tree], crop_size=48, permute_channels=True)
    orders = set()
    for seed in range(40):
        x, y = plain[(2, seed)], permuted[(2, seed)]
        # the same crop and flip, its channels in some order
        order = next(p for p in itertools.permutations(range(3)) if torch.equal(y, x[list(p)]))
        orders.add(order)
    assert orders == set(itertools.permutations(range(3)))
    assert torch.equal(permuted[(2, 5)], permuted[(2, 5)])


def test_corrupt_file_error_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())
    ds = ImageFolderDataset([tmp_path], crop_size=32)
    with pytest.raises(ImageReadError, match=r"x\.png"):
        ds[0]
    with pytest.raises(ImageReadError, match=r"x\.png"):
        ImageFolderDataset([tmp_path], crop_size=32, small_images="skip")


def test_bad_small_images_mode() -> None:
    with pytest.raises(ValueError, match="small_images"):
        ImageFolderDataset([DEMO_IMAGE_DIR], small_images="crop")
    with pytest.raises(ValueError, match="small_images"):
        ImageDataModule([str(DEMO_IMAGE_DIR)], small_images="crop")


def test_datamodule_batches(tree: Path) -> None:
    dm = ImageDataModule([str(tree)], val_dirs=[str(tree)], batch_size=3, crop_size=32, num_workers=0)
    assert dm.hparams.batch_size == 3 and dm.hparams.train_dirs == [str(tree)]
    dm.setup("fit")
    train = list(itertools.islice(dm.train_dataloader(), 5))  # endless: training counts iterations
    assert all(batch.shape == (3, 3, 32, 32) for batch in train)
    val = list(dm.val_dataloader())
    assert [tuple(v.shape) for v in val] == [(1, 3, 96, 160), (1, 3, 100, 150), (1, 3, 128, 128), (1, 3, 120, 90)]
    again = list(dm.val_dataloader())
    assert all(torch.equal(a, b) for a, b in zip(val, again, strict=True))  # no flip, no random crop


def test_datamodule_val_center_crop_and_no_val(tree: Path) -> None:
    dm = ImageDataModule([str(tree)], val_dirs=[str(tree)], val_crop_size=64, val_max_images=2, num_workers=0)
    dm.setup()
    val = list(dm.val_dataloader())
    assert len(val) == 2 and all(v.shape == (1, 3, 64, 64) for v in val)
    full = read_image(dm.val_dataset.files[0])[0]
    assert torch.equal(val[0][0], full[:, 16:80, 48:112])
    assert ImageDataModule([str(tree)], num_workers=0).val_dataloader() == []


def test_datamodule_too_few_images(tree: Path) -> None:
    dm = ImageDataModule([str(tree)], batch_size=5, crop_size=32, num_workers=0)
    dm.setup("fit")
    with pytest.raises(ValueError, match=r"4 training images .* batch_size=5"):
        dm.train_dataloader()


def test_the_training_stream_depends_on_the_seed_only(tree: Path) -> None:
    def batches(workers: int, seed: int = 5, start: int = 0) -> list[torch.Tensor]:
        dm = ImageDataModule([str(tree)], batch_size=2, crop_size=32, num_workers=workers, seed=seed)
        dm.train_batches_consumed = start
        return list(itertools.islice(dm.train_dataloader(), 6 - start))

    seed_everything(1)
    reference = batches(0)
    torch.rand(100)  # the global RNG plays no part
    assert all(torch.equal(a, b) for a, b in zip(reference, batches(2), strict=True))  # nor do the workers
    assert all(torch.equal(a, b) for a, b in zip(reference[4:], batches(0, start=4), strict=True))  # resume
    assert not torch.equal(reference[0], batches(0, seed=6)[0])
    assert not torch.equal(reference[0], reference[2])  # epoch 2 (4 images, batch 2): new crops
    persistent = ImageDataModule([str(tree)], batch_size=2, num_workers=1, persistent_workers=True)
    assert persistent.train_dataloader().persistent_workers
    assert (
        not ImageDataModule([str(tree)], batch_size=2, num_workers=0, persistent_workers=True)
        .train_dataloader()
        .persistent_workers
    )


def test_kodak_config_instantiates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the bundled images are package data: found from any folder
    import crdr.config  # noqa: F401 (registers the ${crdr.demo_images:} resolver)

    dm = hydra.utils.instantiate(OmegaConf.load(REPO / "conf" / "data" / "bundled.yaml"))
    assert isinstance(dm, ImageDataModule)
    dm.setup("fit")
    assert [p.name for p in dm.train_dataset.files] == ["kodim03.png", "kodim15.png", "kodim23.png"]
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (dm.batch_size, 3, 128, 128)
    val = list(dm.val_dataloader())
    assert len(val) == 3 and all(v.shape == (1, 3, 256, 256) for v in val)


def _data_config(option: str) -> DictConfig:
    """``data=<option>`` as crdr-train composes and resolves it, started from the repo root."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={option}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.cwd = str(REPO)
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))


def test_openimages_config_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRDR_DATA_ROOT", str(tmp_path))
    cfg = _data_config("openimages")
    assert cfg.train_dirs == [f"{tmp_path}/openimages/train_{i}" for i in range(10)]
    assert cfg.val_dirs == [f"{tmp_path}/kodak"]
    assert (cfg.batch_size, cfg.crop_size, cfg.num_workers, cfg.small_images) == (8, 256, 8, "pad")
    assert cfg.pin_memory and cfg.persistent_workers
    # The composed config instantiates and finds one image per train_i folder.
    for d in [*cfg.train_dirs, *cfg.val_dirs]:
        Path(d).mkdir(parents=True)
        Image.fromarray(_kodak_crop(0, 40, 40)).save(Path(d) / "im.jpg")
    dm = hydra.utils.instantiate(cfg, num_workers=0, pin_memory=False)
    dm.setup()
    assert len(dm.train_dataset) == 10 and len(dm.val_dataset) == 1
    assert next(iter(dm.train_dataloader())).shape == (8, 3, 256, 256)


@pytest.mark.parametrize(("option", "folder"), [("clic2020_test", "clic2020-test"), ("div2k_valid", "div2k-valid")])
def test_evaluation_sets_validate_an_openimages_run(
    option: str, folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRDR_DATA_ROOT", str(tmp_path))
    cfg = _data_config(option)
    assert cfg.train_dirs[0] == f"{tmp_path}/openimages/train_0" and cfg.val_dirs == [f"{tmp_path}/{folder}"]
    assert cfg.val_max_images is not None


def test_data_root_defaults_to_data_beside_the_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("CRDR_DATA_ROOT", raising=False)
    assert _data_config("openimages").val_dirs == [f"{REPO}/data/kodak"]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_out_the_batches_of_one_process(world_size: int) -> None:
    def take(sampler: ResumableShuffleSampler, n: int) -> list[tuple[int, int]]:
        return list(itertools.islice(sampler, n))

    per_rank, steps = 2, 7
    alone = take(ResumableShuffleSampler(5, per_rank * world_size, seed=3), per_rank * world_size * steps)
    ranks = [take(ResumableShuffleSampler(5, per_rank, 3, r, world_size), per_rank * steps) for r in range(world_size)]
    for step in range(steps):
        together = [item for rank in ranks for item in rank[step * per_rank : (step + 1) * per_rank]]
        assert together == alone[step * per_rank * world_size : (step + 1) * per_rank * world_size]
    resumed = take(ResumableShuffleSampler(5, per_rank, 3, 1, world_size, start_batch=4), per_rank)
    assert resumed == ranks[1][4 * per_rank : 5 * per_rank]
    indexes = [index for index, _ in alone]
    for epoch in range(len(indexes) // 5):  # every epoch is a permutation of the 5 items
        assert sorted(indexes[epoch * 5 : (epoch + 1) * 5]) == list(range(5))
    assert len({seed for _, seed in alone}) == len(alone)  # every position its own augmentation


def test_tar_shards_give_the_same_crops_as_the_image_folder(tree: Path, tmp_path: Path) -> None:
    folder = ImageFolderDataset([tree], crop_size=64)
    shards = write_tar_shards(folder.files, tmp_path / "shards", images_per_shard=3)
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar"]
    (tmp_path / "shards" / "notes.txt").write_text("ignored: not a .tar")
    dataset = TarShardDataset([str(tmp_path / "shards")], crop_size=64)
    assert len(dataset) == len(folder) == 4
    for index in range(4):
        assert torch.equal(dataset[(index, 1234 + index)], folder[(index, 1234 + index)])
    whole = TarShardDataset([str(tmp_path / "shards" / "shard-*.tar")], crop_size=None, horizontal_flip=False)
    assert torch.equal(whole[3], read_image(folder.files[3])[0])

    def stream(workers: int) -> list[torch.Tensor]:
        dm = ImageDataModule(train_shards=[str(tmp_path / "shards")], batch_size=2, crop_size=32, num_workers=workers)
        return list(itertools.islice(dm.train_dataloader(), 4))

    assert all(torch.equal(a, b) for a, b in zip(stream(0), stream(2), strict=True))  # workers open their own files


def test_bad_tar_shards_are_clear_errors(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such file, folder of \.tar files or matching pattern"):
        TarShardDataset([str(tmp_path / "missing-*.tar")])
    compressed = tmp_path / "images.tar.gz"
    with tarfile.open(compressed, "w:gz") as tar:
        tar.add(tree / "a.png", arcname="a.png")
    with pytest.raises(ImageReadError, match="not an uncompressed tar file"):
        TarShardDataset([str(compressed)])
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a JPEG")
    shard = write_tar_shards([tree / "a.png", tree / "notes.txt", fake], tmp_path / "shards")[0]
    dataset = TarShardDataset([str(shard)], crop_size=None)
    assert len(dataset) == 2  # notes.txt is not an image member
    with pytest.raises(ImageReadError, match=r"shard-000000\.tar:000000002\.jpg: not a readable image"):
        dataset[1]
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(shard.read_bytes()[:1200])  # header and the start of a.png
    with pytest.raises(ImageReadError, match="truncated"):
        TarShardDataset([str(truncated)])[0]
    with pytest.raises(ValueError, match="exactly one of train_dirs"):
        ImageDataModule([str(tree)], train_shards=[str(shard)])
    with pytest.raises(ValueError, match="skip"):
        TarShardDataset([str(shard)], small_images="skip")


def test_unreadable_training_images_are_logged_once_and_replaced(tree: Path, caplog) -> None:
    broken = tree / "sub" / "broken.png"
    broken.write_bytes((tree / "a.png").read_bytes()[:100])  # a truncated PNG
    strict = ImageFolderDataset([tree], crop_size=32)
    index = strict.files.index(broken)
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        strict[(index, 7)]
    lenient = ImageFolderDataset([tree], crop_size=32, skip_unreadable=True)
    assert torch.equal(lenient[(index, 7)], strict[((index + 1) % len(strict), 7)])  # the next image, same crop
    dm = ImageDataModule([str(tree)], batch_size=2, crop_size=32, num_workers=0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crdr.data.crops"):
        batches = list(itertools.islice(dm.train_dataloader(), 10))  # 4 epochs of the 5 files
    assert all(batch.shape == (2, 3, 32, 32) for batch in batches)
    assert caplog.text.count("broken.png") == 1


def test_a_folder_of_unreadable_training_images_is_an_error(tmp_path: Path) -> None:
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="2 training images in a row from index 1 are unreadable"):
        ImageFolderDataset([tmp_path], crop_size=32, skip_unreadable=True)[1]


class _WorkerView(Dataset):
    """Items that show a worker's state: its first random draws and, with ``signalled``, whether it
    survives the stop signals it sends itself (it is not its own parent)."""

    def __init__(self, signalled: bool) -> None:
        self.signalled = signalled

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> tuple[bool, float, float, float]:
        for sig in STOP_SIGNALS if self.signalled else ():
            os.kill(os.getpid(), sig)
        deadline = time.monotonic() + 60
        while STOP_SIGNALS & signal.sigpending() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the worker has taken them (a process killed by one returns nothing)
        survived = not STOP_SIGNALS & signal.sigpending()
        return survived, random.random(), float(np.random.rand()), torch.rand(()).item()


def _worker_view(init, signalled: bool, loader_class: type[DataLoader] = StopSignalSafeDataLoader) -> list:
    loader = loader_class(
        _WorkerView(signalled), batch_size=None, num_workers=1, worker_init_fn=init, generator=torch.Generator()
    )
    return list(loader)


#: While set (in the parent), every forked child starts a thread at fork, before any worker_init_fn, as
#: W&B's OpenTelemetry exporters do once wandb has run in the process.
_THREAD_AT_FORK = threading.Event()
os.register_at_fork(
    after_in_child=lambda: (
        _THREAD_AT_FORK.is_set() and threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    )
)


def test_threads_started_at_fork_in_a_worker_do_not_take_the_stop_signals() -> None:
    _THREAD_AT_FORK.set()
    try:
        assert [item[0] for item in _worker_view(WorkerInit(), signalled=True)] == [True, True]
        with pytest.raises(RuntimeError, match="DataLoader worker"):  # what StopSignalSafeDataLoader prevents
            _worker_view(WorkerInit(), signalled=True, loader_class=DataLoader)
    finally:
        _THREAD_AT_FORK.clear()


def test_loader_workers_ignore_stop_signals_and_keep_lightnings_seeding(tree: Path, monkeypatch) -> None:
    monkeypatch.setenv("PL_SEED_WORKERS", "1")  # as seed_everything(workers=True) sets it
    seed_everything(3, workers=True, verbose=False)
    ours = _worker_view(worker_init_fn(rank=1), signalled=True)
    assert [item[0] for item in ours] == [True, True]
    seed_everything(3, workers=True, verbose=False)
    lightning = _worker_view(partial(pl_worker_init_function, rank=1), signalled=False)
    assert [item[1:] for item in ours] == [item[1:] for item in lightning]  # the same worker seeds
    monkeypatch.delenv("PL_SEED_WORKERS")
    assert worker_init_fn(rank=1).then is None
    dm = ImageDataModule([str(tree)], val_dirs=[str(tree)], batch_size=2, num_workers=1)
    assert all(isinstance(loader.worker_init_fn, WorkerInit) for loader in (dm.train_dataloader(), dm.val_dataloader()))


def _init_then_wait(ready, init) -> None:
    init(0)
    ready.set()
    threading.Event().wait(600)


def test_a_worker_still_stops_on_a_signal_from_its_parent() -> None:
    """The loader's terminate() of a worker that does not stop in time (SIGTERM from the main process)."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_init_then_wait, args=(ready, WorkerInit()), daemon=True)
    with stop_signals_blocked():  # as StopSignalSafeDataLoader starts its workers
        worker.start()
    try:
        assert ready.wait(60)
        worker.terminate()
        worker.join(60)
        assert worker.exitcode == 128 + signal.SIGTERM
    finally:
        worker.kill()
        worker.join(60)
