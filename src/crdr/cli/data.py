"""``crdr data``: fetch and verify the paper's datasets, write crdr-tiny's photographs (light: no torch)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from crdr.data.archives import ArchiveError
from crdr.data.download import ChecksumError, DownloadError, Progress
from crdr.data.fetch import dataset_folder, fetch, manual_instructions, verify
from crdr.data.manifest import DatasetManifest, ManifestError, find_manifest, load_manifest_file, shipped_manifests
from crdr.data.training_photos import PHOTOS_FOLDER, write_training_photos

#: The folder every data config and ``crdr evaluate dataset=NAME`` read from (see conf/paths).
ROOT_ENV = "CRDR_DATA_ROOT"


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "data")


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(shipped_manifests())
    parser = argparse.ArgumentParser(
        prog="crdr data",
        description=f"Fetch and verify datasets ({names}, or a manifest .json of your own).",
    )
    commands = parser.add_subparsers(dest="action", required=True)
    for action, text in (("fetch", "download, verify and extract"), ("verify", "check an extracted set")):
        p = commands.add_parser(action, help=text)
        p.add_argument("datasets", nargs="+", metavar="NAME", help=f"{names}, or a path to a manifest .json")
        p.add_argument("--root", type=Path, default=None, help=f"data root (default: ${ROOT_ENV}, else ./data)")
        if action == "fetch":
            p.add_argument("--timeout", type=float, default=20.0, help="seconds for a connection or a read (20)")
            p.add_argument("--keep-downloads", action="store_true", help="keep archives in ROOT/downloads")
        else:
            p.add_argument("--quick", action="store_true", help="check names, count and sizes, not SHA-256")
    p = commands.add_parser("list", help="the known sets and their state under --root")
    p.add_argument("--root", type=Path, default=None)
    p = commands.add_parser(
        "photos",
        help=f"copy crdr-tiny's training photographs (offline: scikit-image, matplotlib) to ROOT/{PHOTOS_FOLDER}",
    )
    p.add_argument("--root", type=Path, default=None)
    return parser


def _manifest(name: str) -> DatasetManifest:
    return load_manifest_file(name) if name.endswith(".json") else find_manifest(name)


def _progress_bar(label: str, total: int | None) -> Progress:
    bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=False, disable=None)

    def update(done: int, _total: int | None) -> None:
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return update


def _fetch(manifest: DatasetManifest, root: Path, args: argparse.Namespace) -> int:
    try:
        folder = fetch(
            manifest, root, timeout=args.timeout, keep_downloads=args.keep_downloads, progress_for=_progress_bar
        )
    except ChecksumError as err:
        print(f"crdr data fetch {manifest.name}: error: {err}; run again to download it afresh", file=sys.stderr)
        return 1
    except DownloadError as err:
        print(f"crdr data fetch {manifest.name}: error: {err}\n{manual_instructions(manifest, root)}", file=sys.stderr)
        return 2
    except ArchiveError as err:
        print(f"crdr data fetch {manifest.name}: error: {err}", file=sys.stderr)
        return 1
    print(f"{manifest.name}: ready in {folder}")
    return 0


def _verify(manifest: DatasetManifest, root: Path, args: argparse.Namespace) -> int:
    problems = verify(manifest, root, full=not args.quick)
    for problem in problems:
        print(f"{manifest.name}: {problem}", file=sys.stderr)
    if problems:
        return 1
    checked = "sizes" if args.quick else "SHA-256"
    print(f"{manifest.name}: ok ({dataset_folder(manifest, root)}, {checked} checked)")
    return 0


def _list(root: Path) -> int:
    for manifest in shipped_manifests().values():
        size = manifest.download_size
        state = "verified" if not verify(manifest, root, full=False) else "not fetched or incomplete"
        print(
            f"{manifest.name:15s} {manifest.num_images or '?':>5} images  "
            f"{f'{size / 1e9:6.2f} GB' if size else '  size ?'}  {state:26s} {manifest.title}"
        )
    return 0


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    root = args.root or default_root()
    if args.action == "list":
        return _list(root)
    if args.action == "photos":
        try:
            written = write_training_photos(root / PHOTOS_FOLDER)
        except ImportError as err:
            print(f"crdr data photos: error: needs scikit-image==0.26.0 and matplotlib ({err})", file=sys.stderr)
            return 2
        print(f"{len(written)} photographs and SOURCES.md in {root / PHOTOS_FOLDER}")
        return 0
    status = 0
    for name in args.datasets:
        try:
            manifest = _manifest(name)
            run = _fetch if args.action == "fetch" else _verify
            status = max(status, run(manifest, root, args))
        except (ManifestError, OSError, ValueError) as err:
            print(f"crdr data {args.action} {name}: error: {err}", file=sys.stderr)
            status = 2
    return status
