"""A local server that speaks the Hugging Face Hub's file API over loopback, for `huggingface_hub` pointed at it with
HF_ENDPOINT: the repo info (`/api/models/ORG/REPO[/revision/REV]`, with file sizes, LFS sha256 and git blob ids) and
`/ORG/REPO/resolve/REV/FILE` (HEAD and GET, Range requests, X-Repo-Commit / X-Linked-Etag / X-Linked-Size, the
hub's X-Error-Code answers: RepoNotFound, GatedRepo, EntryNotFound).

Faults a repo can be given: `gated` (every request answered 403 GatedRepo), `missing` (files listed but not served),
`corrupt` (files served with one byte changed from what the listing's checksum says), `stall_after` (the first GET
of each LFS file sends this many bytes, then stalls until the client goes away: a download to interrupt).
Requests are recorded (method, path, Range header) so tests can see a resume.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    missing: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    stall_after: int | None = None
    token: str | None = None       # a gated repo lets in requests carrying this token ("Authorization: Bearer ...")
    stalled: set[str] = field(default_factory=set)

    @property
    def sha(self) -> str:
        digest = hashlib.sha1()
        for name in sorted(self.files):
            digest.update(name.encode() + hashlib.sha256(self.files[name]).digest())
        return digest.hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def repo_from_folder(folder: Path, **faults) -> Repo:
    return Repo({p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}, **faults)


class HubServer:
    """`with HubServer({"org/name": Repo(...)}) as hub:` -> hub.endpoint is the HF_ENDPOINT to use."""

    def __init__(self, repos: dict[str, Repo]):
        self.repos = repos
        self.requests: list[tuple[str, str, str | None]] = []
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                server._handle(self, head=True)

            def do_GET(self):
                server._handle(self, head=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "HubServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- answers
    def _error(self, h, status: int, code: str | None, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(status)
        if code:
            h.send_header("X-Error-Code", code)
            h.send_header("X-Error-Message", message)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _json(self, h, value) -> None:
        body = json.dumps(value).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _info(self, name: str, repo: Repo) -> dict:
        siblings = []
        for fname, data in sorted(repo.files.items()):
            entry = {"rfilename": fname, "size": len(data), "blobId": git_blob_id(data)}
            if fname.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        return {"_id": name, "id": name, "modelId": name, "sha": repo.sha, "private": False, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                "lastModified": "2026-12-07T00:00:00.000Z", "createdAt": "2026-12-07T00:00:00.000Z"}

    def _handle(self, h, head: bool) -> None:
        path = h.path.split("?")[0]
        self.requests.append((h.command, path, h.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            name = "/".join(parts[2:4])
            repo = self.repos.get(name)
            if repo is None:
                return self._error(h, 401, "RepoNotFound", "Repository not found")
            if repo.gated and not self._authorised(h, repo):
                return self._error(h, 403, "GatedRepo", "Access to this repo is restricted")
            return self._json(h, self._info(name, repo))
        if len(parts) >= 5 and parts[2] == "resolve":
            name, fname = "/".join(parts[:2]), "/".join(parts[4:])
            repo = self.repos.get(name)
            if repo is None:
                return self._error(h, 401, "RepoNotFound", "Repository not found")
            if repo.gated and not self._authorised(h, repo):
                return self._error(h, 403, "GatedRepo", "Access to this repo is restricted")
            if fname not in repo.files or fname in repo.missing:
                return self._error(h, 404, "EntryNotFound", f"{fname} does not exist")
            return self._file(h, repo, fname, head)
        return self._error(h, 404, None, "not found")

    @staticmethod
    def _authorised(h, repo: Repo) -> bool:
        return repo.token is not None and h.headers.get("Authorization") == f"Bearer {repo.token}"

    def _file(self, h, repo: Repo, fname: str, head: bool) -> None:
        listed = repo.files[fname]
        data = listed
        if fname in repo.corrupt:
            data = bytes([listed[0] ^ 0xFF]) + listed[1:]
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and not head:
            first, _, last = rng[6:].partition("-")
            start = int(first or 0)
            end = int(last) if last else len(data) - 1
            if start == 0 and end == 0:  # huggingface_hub's size probe
                pass
        lfs = fname.endswith(LFS_SUFFIXES)
        etag = hashlib.sha256(listed).hexdigest() if lfs else git_blob_id(listed)
        body = data[start:] if not (rng and rng == "bytes=0-0") else data[:1]
        h.send_response(206 if start or (rng and rng == "bytes=0-0") else 200)
        h.send_header("X-Repo-Commit", repo.sha)
        h.send_header("ETag", f'"{etag}"')
        if lfs:
            h.send_header("X-Linked-Etag", f'"{etag}"')
            h.send_header("X-Linked-Size", str(len(listed)))
        if start or rng == "bytes=0-0":
            h.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(body) if not head else len(data)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if head:
            return
        if lfs and repo.stall_after is not None and fname not in repo.stalled and start == 0:
            repo.stalled.add(fname)
            h.wfile.write(body[:repo.stall_after])
            h.wfile.flush()
            while not self._stop.is_set():  # hold the connection open: the client waits until it is killed
                time.sleep(0.05)
            return
        h.wfile.write(body)
