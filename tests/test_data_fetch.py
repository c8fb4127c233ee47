"""``crdr data``: real downloads from a local HTTP server (fresh, resumed, truncated, corrupted, offline),
safe extraction, verification, and the shipped manifests checked against the bundled Kodak images."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import KODAK
from crdr.cli.main import main as crdr
from crdr.data.archives import ArchiveError, extract_images
from crdr.data.download import ChecksumError, DownloadError, download
from crdr.data.manifest import ManifestError, parse_manifest, shipped_manifests
from crdr.evaluation.plots import official_results


class FileServer:
    """An HTTP server on 127.0.0.1 with byte-range support and switchable faults per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_next: set[str] = set()  # send the full Content-Length, then close halfway (once)
        self.corrupt: set[str] = set()  # serve other bytes of the same length
        self.ignore_range: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if self.path in server.corrupt:
                    body = bytes(b ^ 0xFF for b in body)
                start = 0
                ranged = self.headers.get("Range")
                if ranged and self.path not in server.ignore_range:
                    start = int(ranged.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if self.path in server.cut_next:
                    server.cut_next.discard(self.path)
                    payload = payload[: len(payload) // 2]
                    self.close_connection = True
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


def _png(index: int, size: tuple[int, int] = (48, 32)) -> bytes:
    """A small real PNG: a crop of a bundled Kodak image."""
    image = Image.open(KODAK[index % len(KODAK)]).convert("RGB").crop((index * 7, 0, index * 7 + size[0], size[1]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fixture_set(server: FileServer, tmp_path: Path) -> dict:
    """A manifest with all three kinds of source, like the shipped ones: single images (Kodak), a zip
    whose images sit in one folder (DIV2K), a tar.gz (Open Images, no digest published)."""
    images = {f"img{i}.png": _png(i) for i in range(2)}
    zip_members = {"valid_HR/0801.png": _png(2), "valid_HR/0802.png": _png(3), "valid_HR/readme.txt": b"not an image"}
    tar_members = {"train_0/a.jpg": _png(4), "train_0/sub/b.png": _png(5)}
    served = {f"/set/{name}": data for name, data in images.items()}
    served["/set/valid.zip"] = _zip(zip_members)
    served["/set/train_0.tar.gz"] = _tar_gz(tar_members)
    server.files.update(served)
    sources = [{"url": server.url(f"/set/{n}"), "size": len(d), "sha256": _sha(d)} for n, d in images.items()]
    archive = served["/set/valid.zip"]
    sources.append(
        {"url": server.url("/set/valid.zip"), "size": len(archive), "sha256": _sha(archive), "extract_to": "val"}
    )
    sources.append({"url": server.url("/set/train_0.tar.gz"), "size": None, "sha256": None, "extract_to": "train_0"})
    manifest = {"name": "fixture", "folder": "fixture", "num_images": 6, "sources": sources, "files": None}
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(manifest))
    expected = {name: _sha(data) for name, data in images.items()}
    expected |= {"val/0801.png": _sha(_png(2)), "val/0802.png": _sha(_png(3))}
    expected |= {"train_0/a.jpg": _sha(_png(4)), "train_0/sub/b.png": _sha(_png(5))}
    return {"manifest": str(path), "root": tmp_path / "data", "expected": expected, "served": served}


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): _sha(p.read_bytes())
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".png", ".jpg")
    }


def test_fetch_fresh_then_verify(fixture_set: dict, server: FileServer, capsys) -> None:
    root = fixture_set["root"]
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    folder = root / "fixture"
    assert _tree(folder) == fixture_set["expected"]
    assert not (root / "downloads").exists()  # archives are removed after extraction
    record = json.loads((folder / "crdr-dataset.json").read_text())
    assert record["complete"] and {k: v["sha256"] for k, v in record["files"].items()} == fixture_set["expected"]
    assert crdr(["data", "verify", fixture_set["manifest"], "--root", str(root)]) == 0
    assert "ok" in capsys.readouterr().out
    # A second fetch finds the set complete and downloads nothing ...
    count = len(server.requests)
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    assert len(server.requests) == count
    # ... and after an image was lost, only the source that gave it.
    (folder / "val" / "0802.png").unlink()
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    assert [r[0] for r in server.requests[count:]] == ["/set/valid.zip"]
    assert _tree(folder) == fixture_set["expected"]


def test_fetch_resumes_a_partial_download(fixture_set: dict, server: FileServer) -> None:
    root = fixture_set["root"]
    archive = fixture_set["served"]["/set/valid.zip"]
    part = root / "downloads" / "valid.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive[: len(archive) // 3])  # what a killed fetch leaves behind
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    resumed = ("/set/valid.zip", f"bytes={len(archive) // 3}-")
    assert [r for r in server.requests if r[0] == "/set/valid.zip"] == [resumed]
    assert _tree(root / "fixture") == fixture_set["expected"]


def test_truncated_transfer_is_resumed(fixture_set: dict, server: FileServer) -> None:
    server.cut_next = {"/set/valid.zip", "/set/train_0.tar.gz"}
    root = fixture_set["root"]
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    for path in ("/set/valid.zip", "/set/train_0.tar.gz"):
        calls = [r for r in server.requests if r[0] == path]
        assert len(calls) == 2 and calls[0][1] is None and calls[1][1].startswith("bytes=")
    assert _tree(root / "fixture") == fixture_set["expected"]


def test_corrupted_download_is_refused_and_deleted(fixture_set: dict, server: FileServer, capsys) -> None:
    server.corrupt = {"/set/valid.zip"}
    root = fixture_set["root"]
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "valid.zip" in err and "SHA-256" in err and "corrupted" in err
    assert not list((root / "downloads").glob("valid.zip*"))  # neither the file nor its .part is kept
    assert not (root / "fixture" / "val").exists()
    assert crdr(["data", "verify", fixture_set["manifest"], "--root", str(root)]) == 1
    # Sources finished before the failure are kept; the rerun fetches only the rest.
    server.corrupt.clear()
    server.requests.clear()
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    assert {r[0] for r in server.requests} == {"/set/valid.zip", "/set/train_0.tar.gz"}
    assert _tree(root / "fixture") == fixture_set["expected"]


def test_bad_partial_file_is_downloaded_again_from_the_start(server: FileServer, tmp_path: Path) -> None:
    data = _zip({"a/x.png": _png(0)})
    server.files["/x.zip"] = data
    part = tmp_path / "x.zip.part"
    part.write_bytes(b"\0" * 100)  # kept from an earlier attempt, but wrong
    download(server.url("/x.zip"), tmp_path / "x.zip", size=len(data), sha256=_sha(data), timeout=5)
    assert (tmp_path / "x.zip").read_bytes() == data and not part.exists()
    assert server.requests == [("/x.zip", "bytes=100-"), ("/x.zip", None)]


def test_server_without_ranges_restarts_the_file(server: FileServer, tmp_path: Path) -> None:
    data = bytes(range(256)) * 50
    server.files["/blob.bin"] = data
    server.ignore_range = {"/blob.bin"}
    (tmp_path / "blob.bin.part").write_bytes(data[:1000])
    download(server.url("/blob.bin"), tmp_path / "blob.bin", size=len(data), sha256=_sha(data), timeout=5)
    assert (tmp_path / "blob.bin").read_bytes() == data


def test_a_complete_part_of_unknown_size_is_not_downloaded_again(server: FileServer, tmp_path: Path) -> None:
    """A fetch killed between the last byte and the rename: the server's 416 says the .part is whole."""
    data = bytes(range(256)) * 40
    server.files["/whole.bin"] = data
    (tmp_path / "whole.bin.part").write_bytes(data)
    download(server.url("/whole.bin"), tmp_path / "whole.bin", timeout=5)
    assert (tmp_path / "whole.bin").read_bytes() == data
    assert server.requests == [("/whole.bin", f"bytes={len(data)}-")]
    (tmp_path / "longer.bin.part").write_bytes(data + b"extra")  # not this file: fetched again from the start
    server.files["/longer.bin"] = data
    download(server.url("/longer.bin"), tmp_path / "longer.bin", timeout=5)
    assert (tmp_path / "longer.bin").read_bytes() == data


def test_a_server_offering_another_size_is_refused(server: FileServer, tmp_path: Path) -> None:
    server.files["/blob.bin"] = b"x" * 10
    with pytest.raises(ChecksumError, match="offers 10 bytes, the manifest pins 11"):
        download(server.url("/blob.bin"), tmp_path / "blob.bin", size=11, timeout=5)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("/missing.bin"), tmp_path / "missing.bin", timeout=5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_fails_fast_and_says_what_to_download(fixture_set: dict, server: FileServer, capsys) -> None:
    manifest = json.loads(Path(fixture_set["manifest"]).read_text())
    port = server.httpd.server_address[1]
    dead = _closed_port()
    text = json.dumps(manifest).replace(f"127.0.0.1:{port}", f"127.0.0.1:{dead}")
    Path(fixture_set["manifest"]).write_text(text)
    root = fixture_set["root"]
    start = time.monotonic()
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 2
    assert time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert "Connection refused" in err
    assert f"http://127.0.0.1:{dead}/set/valid.zip  ->  {root / 'downloads' / 'valid.zip'}" in err
    assert f"/set/img0.png  ->  {root / 'fixture' / 'img0.png'}" in err


def test_a_silent_server_times_out(tmp_path: Path) -> None:
    """A host that accepts the connection and never answers: bounded by --timeout, not a hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.zip"
        start = time.monotonic()
        with pytest.raises(DownloadError, match="timed out"):
            download(url, tmp_path / "x.zip", timeout=1)
        assert time.monotonic() - start < 5


def test_files_placed_by_hand_are_used_without_network(fixture_set: dict, server: FileServer) -> None:
    root = fixture_set["root"]
    served = fixture_set["served"]
    (root / "downloads").mkdir(parents=True)
    (root / "fixture").mkdir()
    for name in ("valid.zip", "train_0.tar.gz"):
        (root / "downloads" / name).write_bytes(served[f"/set/{name}"])
    for name in ("img0.png", "img1.png"):
        (root / "fixture" / name).write_bytes(served[f"/set/{name}"])
    server.close()
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    assert _tree(root / "fixture") == fixture_set["expected"]
    assert server.requests == []


def test_two_fetches_of_one_set_do_not_run_at_once(fixture_set: dict, server: FileServer, capsys) -> None:
    folder = fixture_set["root"] / "fixture"
    folder.mkdir(parents=True)
    with open(folder / ".crdr-fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a fetch running in another process holds it
        assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(fixture_set["root"])]) == 2
    assert "another `crdr data fetch` is working on" in capsys.readouterr().err
    assert server.requests == []


def test_verify_finds_missing_changed_and_extra_images(fixture_set: dict, capsys) -> None:
    root = fixture_set["root"]
    assert crdr(["data", "fetch", fixture_set["manifest"], "--root", str(root)]) == 0
    folder = root / "fixture"
    changed = folder / "val" / "0801.png"
    changed.write_bytes(bytes(b ^ 1 for b in changed.read_bytes()))  # same size, other bytes
    assert crdr(["data", "verify", fixture_set["manifest"], "--root", str(root), "--quick"]) == 0
    assert crdr(["data", "verify", fixture_set["manifest"], "--root", str(root)]) == 1
    assert "val/0801.png: SHA-256" in capsys.readouterr().err
    (folder / "img1.png").unlink()
    (folder / "stray.png").write_bytes(_png(7))
    assert crdr(["data", "verify", fixture_set["manifest"], "--root", str(root), "--quick"]) == 1
    err = capsys.readouterr().err
    assert "1 missing: img1.png" in err and "1 unexpected: stray.png" in err


def test_unsafe_and_unexpected_archives_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    evil.write_bytes(_zip({"../outside.png": _png(0)}))
    with pytest.raises(ArchiveError, match="outside the target"):
        extract_images(evil, tmp_path / "out")
    assert not (tmp_path / "outside.png").exists()
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as archive:
        info = tarfile.TarInfo("imgs/passwd.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(ArchiveError, match="link or special file"):
        extract_images(link, tmp_path / "out")
    counted = tmp_path / "two.zip"
    counted.write_bytes(_zip({"a/1.png": _png(0), "a/2.png": _png(1)}))
    with pytest.raises(ArchiveError, match="2 images, the manifest expects 3"):
        extract_images(counted, tmp_path / "out", expected_images=3)
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(_tar_gz({"t/1.png": _png(0), "t/2.png": _png(1)})[:-200])
    with pytest.raises(ArchiveError, match="damaged"):
        extract_images(truncated, tmp_path / "cut")
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_shipped_manifests_match_the_paper_and_the_bundled_images() -> None:
    manifests = shipped_manifests()
    assert set(manifests) == {"kodak", "clic2020-test", "div2k-valid", "openimages"}
    kodak = manifests["kodak"]
    assert kodak.num_images == 24 and len(kodak.sources) == 24 and len(kodak.files) == 24
    for path in KODAK:  # the three shipped demo Kodak images are byte-identical to the pinned ones
        entry = kodak.files[path.name]
        assert (entry.size, entry.sha256) == (path.stat().st_size, _sha(path.read_bytes()))
    clic = manifests["clic2020-test"]
    assert sum(s.images for s in clic.sources) == clic.num_images == 428
    assert {s.filename for s in clic.sources} == {"CLIC2020Professional_test.zip", "CLIC2020Mobile_test.zip"}
    div2k = manifests["div2k-valid"]
    assert div2k.num_images == 100 and sorted(div2k.files) == [f"{i:04d}.png" for i in range(801, 901)]
    openimages = manifests["openimages"]
    assert [s.extract_to for s in openimages.sources] == [f"train_{k}" for k in range(10)]
    # The evaluation names are the dataset column of the official result CSVs.
    for name in ("kodak", "CLIC", "DIV2K"):
        manifest = next(m for m in manifests.values() if m.evaluation_name == name)
        assert set(official_results(name)["dataset"]) == {name}, manifest.name
    for manifest in manifests.values():
        assert all(s.url.startswith("https://") for s in manifest.sources)


def test_list_shows_every_set(tmp_path: Path, capsys) -> None:
    (tmp_path / "kodak").mkdir()
    for path in KODAK:
        (tmp_path / "kodak" / path.name).write_bytes(path.read_bytes())
    assert crdr(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("kodak", "clic2020-test", "div2k-valid", "openimages"))
    # Three of 24 Kodak images are not the set.
    assert crdr(["data", "verify", "kodak", "--root", str(tmp_path), "--quick"]) == 1
    assert "3 images in" in capsys.readouterr().err


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**10) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
_keys = st.sampled_from(["name", "folder", "sources", "files", "num_images", "url", "size", "sha256", "extract_to"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys | st.text(max_size=8), _json, max_size=8))
def test_manifest_parser_rejects_anything_malformed_cleanly(data: dict) -> None:
    """Any JSON object either parses to a usable manifest or raises ManifestError, nothing else."""
    try:
        manifest = parse_manifest(data)
    except ManifestError:
        return
    assert manifest.sources and manifest.folder and "/" not in manifest.folder
