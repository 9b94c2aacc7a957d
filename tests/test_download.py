"""acl_jax.download against a local http.server serving the bundled PTB-XL sample."""

import collections
import filecmp
import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from acl_jax import download as dl

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "ptbxl"
N_ROWS = 25  # a slice of the sample keeps the runs short


class _Server:
    """Serves `root` on 127.0.0.1 in a thread and counts GET requests per path."""

    def __init__(self, root: Path):
        self.requests = collections.Counter()
        lock = threading.Lock()
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                with lock:
                    requests[self.path.lstrip("/")] += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _write_sums(root: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.relative_to(root).as_posix()}"
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS.txt"
    ]
    (root / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def tree(tmp_path):
    """A PTB-XL-shaped server tree: the first N_ROWS sample records and a SHA256SUMS.txt."""
    root = tmp_path / "server"
    root.mkdir()
    lines = (SAMPLE / "ptbxl_database.csv").read_text().splitlines(keepends=True)
    (root / "ptbxl_database.csv").write_text("".join(lines[: N_ROWS + 1]))
    for name in ("scp_statements.csv", "LICENSE.txt"):
        shutil.copy(SAMPLE / name, root / name)
    rel = [line.split(",")[-2] for line in lines[1 : N_ROWS + 1]]  # filename_lr column
    for r in rel:
        for ext in (".hea", ".dat"):
            (root / (r + ext)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE / (r + ext), root / (r + ext))
    _write_sums(root)
    return root, rel


@pytest.fixture
def server(tree):
    s = _Server(tree[0])
    yield s
    s.close()


def _record_requests(server):
    return sum(n for path, n in server.requests.items() if path.startswith("records100/"))


def test_download_matches_then_resumes_without_refetching(tree, server, tmp_path):
    root, rel = tree
    out = tmp_path / "out"
    rc = dl.main(["ptbxl", "--out", str(out), "--base-url", server.url, "--workers", "4"])
    assert rc == 0
    files = [r + ext for r in rel for ext in (".hea", ".dat")]
    files += ["ptbxl_database.csv", "scp_statements.csv", "LICENSE.txt"]
    for f in files:
        assert filecmp.cmp(root / f, out / f, shallow=False), f
    assert _record_requests(server) == 2 * N_ROWS
    assert not list(out.rglob("*.part"))

    server.requests.clear()
    stats = dl.download("ptbxl", str(out), base_url=server.url, workers=4)
    assert stats == {"fetched": 0, "skipped": len(files), "bytes": 0}
    assert _record_requests(server) == 0


def test_corrupted_and_partial_files_are_refetched(tree, server, tmp_path):
    root, rel = tree
    out = tmp_path / "out"
    dl.download("ptbxl", str(out), base_url=server.url, workers=2)
    bad = rel[3] + ".dat"
    (out / bad).write_bytes(b"\0" * 100)  # complete-looking file with the wrong checksum
    os.remove(out / (rel[5] + ".hea"))
    (out / (rel[5] + ".hea.part")).write_bytes(b"truncated")  # an interrupted download
    server.requests.clear()
    stats = dl.download("ptbxl", str(out), base_url=server.url, workers=2)
    assert stats["fetched"] == 2
    assert server.requests[bad] == 1 and server.requests[rel[5] + ".hea"] == 1
    assert filecmp.cmp(root / bad, out / bad, shallow=False)
    assert filecmp.cmp(root / (rel[5] + ".hea"), out / (rel[5] + ".hea"), shallow=False)
    assert not (out / (rel[5] + ".hea.part")).exists()


def test_bad_checksum_on_server_is_reported(tree, server, tmp_path):
    root, rel = tree
    target = rel[0] + ".dat"
    (root / target).write_bytes(b"tampered")  # SHA256SUMS.txt still lists the original
    with pytest.raises(dl.DownloadError, match="checksum mismatch") as e:
        dl.download("ptbxl", str(tmp_path / "out"), base_url=server.url, retries=1, backoff_s=0)
    assert server.url + target in str(e.value)
    assert server.requests[target] == 2  # one retry
    assert not (tmp_path / "out" / target).exists()


def test_missing_file_gives_404_naming_the_url(tree, server, tmp_path):
    root, rel = tree
    os.remove(root / (rel[1] + ".hea"))
    with pytest.raises(dl.DownloadError, match="HTTP 404") as e:
        dl.download("ptbxl", str(tmp_path / "out"), base_url=server.url, backoff_s=0)
    assert server.url + rel[1] + ".hea" in str(e.value)
    assert server.requests[rel[1] + ".hea"] == 1  # 404 is not retried
    assert (tmp_path / "out" / (rel[2] + ".dat")).exists()  # the rest was kept for a re-run


def test_unreachable_server_names_url_and_mirror_option(tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    rc = dl.main(["ptbxl", "--out", str(tmp_path), "--base-url", url, "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 1
    assert url + "SHA256SUMS.txt" in err and "--base-url" in err


def test_ludb_without_checksums_uses_records_index(tmp_path):
    root = tmp_path / "ludb"
    (root / "data").mkdir(parents=True)
    (root / "RECORDS").write_text("data/1\ndata/2\n")
    for name in ("ludb.csv", "LICENSE.txt"):
        (root / name).write_text(name)
    for rec in ("1", "2"):
        for ext in dl.DATASETS["ludb"].record_exts:
            (root / "data" / (rec + ext)).write_bytes(f"{rec}{ext}".encode())
    server = _Server(root)
    try:
        stats = dl.download("ludb", str(tmp_path / "out"), base_url=server.url, workers=2)
    finally:
        server.close()
    n_rec_files = 2 * len(dl.DATASETS["ludb"].record_exts)
    assert stats["fetched"] == n_rec_files + 3 and stats["skipped"] == 0
    assert (tmp_path / "out" / "data" / "2.v6").read_bytes() == b"2.v6"
    assert not (tmp_path / "out" / "SHA256SUMS.txt").exists()
