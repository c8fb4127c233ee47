"""Resumable, verified HTTP downloads with bounded timeouts (standard library only).

Bytes go to ``<dest>.part``; an interrupted transfer (a dropped connection, a short body, a killed
process) continues from the bytes already there with an HTTP ``Range`` request; the finished file
is checked against the expected size and SHA-256 and only then renamed to ``dest``. A file that
fails its check is deleted, never kept under its final name.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from crdr.io.files import CHUNK_BYTES, sha256_file

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

#: ``progress(done_bytes, total_bytes_or_None)`` after every chunk.
Progress = Callable[[int, int | None], None]


class DownloadError(OSError):
    """The server could not be reached or refused the file (nothing useful was kept)."""


class ChecksumError(DownloadError):
    """The bytes received are not the ones the manifest pins (the file was deleted)."""


def check_file(path: Path, size: int | None, sha256: str | None) -> str | None:
    """What is wrong with ``path`` against the expected size/digest, or None when it matches."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"{actual} bytes, expected {size}"
    if sha256 is not None and (digest := sha256_file(path)) != sha256:
        return f"SHA-256 {digest}, expected {sha256}"
    return None


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"crdr/{importlib.metadata.version('crdr')}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _resume_offset(response: http.client.HTTPResponse, offset: int) -> int:
    """Where the body starts: ``offset`` for a matching 206, 0 when the server sends the whole file."""
    if response.status != 206:
        return 0
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != offset:
        answer = response.headers.get("Content-Range")
        raise DownloadError(f"the server answered a resume at byte {offset} with Content-Range {answer}")
    return offset


def _expected_total(response: http.client.HTTPResponse, start: int, size: int | None, url: str) -> int | None:
    length = response.headers.get("Content-Length")
    total = start + int(length) if length is not None and length.isdigit() else None
    if size is not None and total is not None and total != size:
        raise ChecksumError(f"{url}: the server offers {total} bytes, the manifest pins {size}")
    return size if size is not None else total


def download(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    timeout: float = 20.0,
    retries: int = 5,
    progress: Progress | None = None,
) -> Path:
    """Downloads ``url`` to ``dest`` (resuming ``dest.part``), verifies it and returns ``dest``.

    ``timeout`` bounds the connection and every read, so a dead network fails in about that many
    seconds instead of hanging. A transfer that breaks after bytes arrived is resumed up to
    ``retries`` times; a connection that cannot be opened at all fails at once (``DownloadError``).
    A resumed file whose digest does not match is downloaded once more from the start; a fresh one
    that does not match raises ``ChecksumError``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = 0
    restarted = False
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset > size:
            part.unlink()
            offset = 0
        if size is None or offset < size:
            try:
                complete = _transfer(url, part, offset, size, timeout, progress)
            except DownloadError:
                raise
            except urllib.error.HTTPError as err:
                if err.code == 416 and offset:  # nothing after our bytes: complete, or longer than the file
                    if err.headers.get("Content-Range") != f"bytes */{offset}":
                        part.unlink()
                        continue
                    complete = True
                else:
                    raise DownloadError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
                kept = f" ({part.stat().st_size} bytes kept in {part}; run again to resume)" if part.exists() else ""
                raise DownloadError(f"cannot download {url}: {getattr(err, 'reason', None) or err}{kept}") from None
            if not complete:
                failures += 1
                if failures > retries:
                    raise DownloadError(f"{url}: the transfer broke off {failures} times; run again to resume")
                continue
        problem = check_file(part, size, sha256)
        if problem is None:
            os.replace(part, dest)
            return dest
        part.unlink()
        if offset and not restarted:  # the bytes kept from an earlier attempt may be the bad ones
            restarted = True
            continue
        raise ChecksumError(f"{url}: the downloaded file has {problem}; it was deleted (corrupted download)")


def _transfer(url: str, part: Path, offset: int, size: int | None, timeout: float, progress: Progress | None) -> bool:
    """Appends the body of one request to ``part``; True when the whole file has arrived."""
    with _open(url, offset, timeout) as response:
        start = _resume_offset(response, offset)
        total = _expected_total(response, start, size, url)
        done = start
        with open(part, "r+b" if start else "wb") as f:
            f.seek(start)
            f.truncate()
            try:
                while chunk := response.read(CHUNK_BYTES):
                    f.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            except (TimeoutError, http.client.IncompleteRead, ConnectionError):
                return False
            finally:
                f.flush()
                os.fsync(f.fileno())
    return total is None or done >= total
