"""Downloads PhysioNet datasets (PTB-XL v1.0.3, LUDB v1.0.1) file by file, resumably.

    python -m acl_jax.download ptbxl --out DIR [--rate 100|500|both] [--workers 8] [--base-url URL]
    python -m acl_jax.download ludb --out DIR

The file list comes from the dataset's own index (PTB-XL: the filename_lr/filename_hr columns of
ptbxl_database.csv; LUDB: RECORDS). Files are verified against SHA256SUMS.txt when the server has
it. A file is written to NAME.part and renamed when complete, so an existing NAME is a finished
file: a re-run skips it (after re-checking its checksum) and fetches only what is missing.
HTTP uses only urllib, so that the downloader needs nothing beyond the standard library and tqdm.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed

from tqdm import tqdm

from acl_jax import cli

_CHUNK = 1 << 16
_PERMANENT_HTTP = (400, 401, 403, 404, 410)  # retrying cannot help


@dataclasses.dataclass(frozen=True)
class Dataset:
    base_url: str
    top_files: tuple[str, ...]  # downloaded first; the record index is read from them
    record_exts: tuple[str, ...]


LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
DATASETS = {
    "ptbxl": Dataset(
        "https://physionet.org/files/ptb-xl/1.0.3/",
        ("ptbxl_database.csv", "scp_statements.csv", "LICENSE.txt"),
        (".hea", ".dat"),
    ),
    "ludb": Dataset(
        "https://physionet.org/files/ludb/1.0.1/",
        ("RECORDS", "ludb.csv", "LICENSE.txt"),
        (".hea", ".dat") + tuple(f".{lead}" for lead in LUDB_LEADS),  # per-lead annotations
    ),
}
_RATE_COLUMNS = {
    "100": ("filename_lr",),
    "500": ("filename_hr",),
    "both": ("filename_lr", "filename_hr"),
}


class DownloadError(Exception):
    """A file could not be fetched or verified; the message names the URL and the fix."""


def _url(base_url: str, rel: str) -> str:
    return base_url.rstrip("/") + "/" + rel


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _open(url: str, headers: dict[str, str], timeout: float):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _with_retries(url: str, fn, retries: int, backoff_s: float):
    """Calls fn() and retries transient failures (network errors, 5xx, bad checksums) with
    exponential backoff; permanent HTTP errors stop at once."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except urllib.error.HTTPError as e:
            if e.code in _PERMANENT_HTTP:
                raise DownloadError(
                    f"HTTP {e.code} for {url}: the file is not on the server "
                    "(wrong --base-url or dataset version?)"
                ) from e
            err = DownloadError(f"HTTP {e.code} for {url} after {attempt + 1} attempts")
        except _ChecksumMismatch as e:
            err = DownloadError(f"checksum mismatch for {url}: {e} (after {attempt + 1} attempts)")
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            err = DownloadError(
                f"could not download {url} ({reason}) after {attempt + 1} "
                "attempts: check the network, or use --base-url to point at a mirror"
            )
        if attempt < retries:
            time.sleep(backoff_s * 2**attempt)
    raise err


class _ChecksumMismatch(Exception):
    pass


def _fetch(url: str, dest: str, sha256: str | None, timeout: float) -> int:
    """One attempt: streams url to dest.part (continuing a partial file when the server honours
    Range), checks length and checksum, renames to dest. Returns the bytes transferred."""
    part = dest + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    got = 0
    with _open(url, headers, timeout) as resp:
        append = have > 0 and resp.status == 206
        expected = resp.headers.get("Content-Length")
        with open(part, "ab" if append else "wb") as f:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                f.write(chunk)
                got += len(chunk)
    if expected is not None and got != int(expected):
        raise OSError(f"connection closed after {got} of {expected} bytes")
    if sha256 is not None:
        actual = _sha256(part)
        if actual != sha256:
            os.remove(part)  # a corrupt partial must not be resumed
            raise _ChecksumMismatch(f"expected sha256 {sha256}, got {actual}")
    os.replace(part, dest)
    return got


def _is_complete(dest: str, sha256: str | None) -> bool:
    return os.path.isfile(dest) and (sha256 is None or _sha256(dest) == sha256)


def _read_checksums(base_url: str, out: str, timeout: float, retries: int, backoff_s: float):
    """{relative path: sha256} from SHA256SUMS.txt, or None when the server has none."""
    url = _url(base_url, "SHA256SUMS.txt")

    def get():
        with _open(url, {}, timeout) as resp:
            return resp.read().decode("utf-8")

    try:
        text = _with_retries(url, get, retries, backoff_s)
    except DownloadError as e:
        if isinstance(e.__cause__, urllib.error.HTTPError) and e.__cause__.code == 404:
            print(
                f"note: {url} not found; files are checked against Content-Length only",
                file=sys.stderr,
            )
            return None
        raise
    with open(os.path.join(out, "SHA256SUMS.txt"), "w") as f:
        f.write(text)
    sums = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*").removeprefix("./")] = parts[0].lower()
    return sums


def _record_files(name: str, ds: Dataset, out: str, rate: str) -> list[str]:
    """Relative paths of every record file, from the dataset's index file (already downloaded)."""
    if name == "ptbxl":
        index = os.path.join(out, "ptbxl_database.csv")
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f))
        columns = _RATE_COLUMNS[rate]
        if rows and any(c not in rows[0] for c in columns):
            raise DownloadError(f"{index} lacks columns {columns}: is this PTB-XL v1.0.3?")
        records = [row[c] for row in rows for c in columns]
    else:
        with open(os.path.join(out, "RECORDS")) as f:
            records = [line.strip() for line in f if line.strip()]
    return [rec + ext for rec in records for ext in ds.record_exts]


def download(
    name: str,
    out: str,
    *,
    rate: str = "100",
    workers: int = 8,
    base_url: str | None = None,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout: float = 60.0,
) -> dict[str, int]:
    """Downloads dataset `name` into `out`; returns counts {"fetched", "skipped", "bytes"}.

    Raises DownloadError listing the failed URLs (the others are kept, so a re-run resumes).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if rate not in _RATE_COLUMNS:
        raise ValueError(f"--rate must be one of {sorted(_RATE_COLUMNS)}, got {rate!r}")
    ds = DATASETS[name]
    base_url = base_url or ds.base_url
    os.makedirs(out, exist_ok=True)
    sums = _read_checksums(base_url, out, timeout, retries, backoff_s)
    stats = {"fetched": 0, "skipped": 0, "bytes": 0}
    lock = threading.Lock()

    def count(key: str, n: int) -> None:
        with lock:
            stats[key] += n

    def one(rel: str) -> None:
        dest = os.path.join(out, rel)
        sha = sums.get(rel) if sums is not None else None
        if _is_complete(dest, sha):
            count("skipped", 1)
            return
        os.makedirs(os.path.dirname(dest) or out, exist_ok=True)
        url = _url(base_url, rel)
        got = _with_retries(url, lambda: _fetch(url, dest, sha, timeout), retries, backoff_s)
        count("bytes", got)
        count("fetched", 1)

    for rel in ds.top_files:  # the record list is read from these
        one(rel)
    files = _record_files(name, ds, out, rate)
    errors = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(one, rel) for rel in files]
        for fut in tqdm(as_completed(futures), total=len(files), desc=name, unit="file"):
            if fut.exception() is not None:
                errors.append(str(fut.exception()))
    if errors:
        shown = "\n  ".join(sorted(errors)[:10])
        raise DownloadError(
            f"{len(errors)} of {len(files)} files failed (re-run to resume):\n  {shown}"
        )
    return stats


@dataclasses.dataclass(frozen=True, kw_only=True)
class DownloadArgs:
    dataset: str = cli.arg(choices=sorted(DATASETS), positional=True, help="Dataset to fetch.")
    out: str = cli.arg(help="Destination directory.")
    rate: str = cli.arg(
        "100", choices=sorted(_RATE_COLUMNS), help="PTB-XL sampling rate(s) (ignored for ludb)."
    )
    workers: int = cli.arg(8, help="Parallel downloads.")
    base_url: str | None = cli.arg(None, help="Mirror of the dataset root.")
    retries: int = cli.arg(4, help="Retries per file on transient errors.")


def _main(a: DownloadArgs) -> None:
    stats = download(
        a.dataset, a.out, rate=a.rate, workers=a.workers, base_url=a.base_url, retries=a.retries
    )
    print(
        f"{a.dataset}: fetched {stats['fetched']} files ({stats['bytes'] / 1e6:.1f} MB), "
        f"{stats['skipped']} already complete, in {a.out}"
    )


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (acl_jax.cli)."""
    return cli.run(
        DownloadArgs,
        _main,
        prog="python -m acl_jax.download",
        doc=__doc__,
        argv=argv,
        errors=(DownloadError,),
    )


if __name__ == "__main__":
    sys.exit(main())
