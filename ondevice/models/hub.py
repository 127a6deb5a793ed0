"""`hf:ORG/REPO[:QUANT|FILE]` names: models pulled from the Hugging Face Hub with `huggingface_hub`.

Three steps, kept apart so nothing downloads by accident:
- `plan(name)` reads the repo's file list (and config.json, a few KB) and picks what to fetch: a GGUF file (by
  QUANT or FILE; default Q4_K_M) or, for a safetensors repo, the config, tokenizer and weight files. No weights yet.
- `download(plan)` fetches them into the Hugging Face cache (`HF_HOME`/`HF_HUB_CACHE`, shared with every other HF
  tool) with `hf_hub_download`: resumable (a `.incomplete` file is continued, by a Range request), a progress bar,
  `HF_TOKEN` honoured, `HF_HUB_OFFLINE` respected, `HF_ENDPOINT` for a mirror. Every file is then checked against
  the hub's checksum (sha256 for LFS files, the git blob id otherwise); a mismatch deletes the file.
- `publish` names the result in the store, `models/hf/ORG--REPO/<file>.gguf` (a link into the HF cache for a GGUF
  repo, the converted file for a safetensors one), which is what `resolve("hf:...")` finds. Resolving never
  downloads: a name that was not pulled says how to pull it.
Conversion of safetensors repos is not here (the runtime does not convert): `ondevice pull` (bench) does it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ondevice.errors import InvalidInput, InvalidModelFile, ModelNotFound, OnDeviceError
from ondevice.models.store import ModelRef, detect_format, models_dir, register_scheme, store_dir

SCHEME = "hf:"
DEFAULT_QUANT = "Q4_K_M"
QUANT_PREFERENCE = ("Q4_K_M", "Q4_K_S", "Q4_0", "Q5_K_M", "Q6_K", "Q8_0", "IQ4_XS", "F16", "BF16")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_QUANT = re.compile(r"^(I?Q\d[A-Z0-9_]*|F16|BF16|F32)$", re.I)
# Files a safetensors repo needs beside its weights (converter: config + tokenizer + template).
_SIDE_FILES = re.compile(r"^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|"
                         r"special_tokens_map\.json|tokenizer\.model|vocab\.json|merges\.txt|added_tokens\.json|"
                         r"chat_template\.jinja|chat_template\.json|model\.safetensors\.index\.json)$")
RECORD = "pull.json"


@dataclass(frozen=True)
class HubName:
    """A parsed `hf:ORG/REPO[:QUANT|FILE]`."""

    repo: str
    selector: str | None = None   # a quant type ("Q4_K_M") or a file name in the repo

    @property
    def is_quant(self) -> bool:
        return bool(self.selector) and bool(_QUANT.match(self.selector))

    def __str__(self) -> str:
        return SCHEME + self.repo + (f":{self.selector}" if self.selector else "")


def is_hub_name(name: str | os.PathLike) -> bool:
    return str(name).startswith(SCHEME)


def parse(name: str) -> HubName:
    """`hf:ORG/REPO[:QUANT|FILE]` -> HubName; InvalidInput with the accepted form otherwise."""
    text = str(name)
    if not text.startswith(SCHEME):
        raise InvalidInput(f"{text!r} is not a hub name (write hf:ORG/REPO[:QUANT|FILE])")
    repo, _, selector = text[len(SCHEME):].partition(":")
    if not _REPO.match(repo) or ".." in repo:
        raise InvalidInput(f"{text!r}: write hf:ORG/REPO[:QUANT|FILE], e.g. hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M")
    return HubName(repo, selector or None)


def pulled_dir(repo: str) -> Path:
    """The store folder naming what was pulled from `repo`."""
    return models_dir() / "hf" / repo.replace("/", "--")


def _pulled_files(repo: str) -> list[Path]:
    folder = pulled_dir(repo)
    return sorted(p for p in folder.glob("*.gguf") if p.exists()) if folder.is_dir() else []


def _pick(names: list[str], hub: HubName, what: str) -> str:
    """The file of `names` that `hub`'s selector means (default: the preferred quant)."""
    if hub.selector and not hub.is_quant:
        if hub.selector in names:
            return hub.selector
        raise ModelNotFound(f"{hub}: no file {hub.selector!r} {what}; there: {', '.join(names) or 'none'}")
    wanted = [hub.selector.upper()] if hub.selector else list(QUANT_PREFERENCE)
    for quant in wanted:
        for name in names:
            if re.search(rf"(^|[-_.]){re.escape(quant)}([-_.]|$)", Path(name).stem.upper()):
                return name
    if not hub.selector and len(names) == 1:
        return names[0]
    raise ModelNotFound(f"{hub}: no {hub.selector or 'GGUF'} file {what}; there: {', '.join(names) or 'none'}")


def resolve_hub(name: str):
    """The ModelRef of a pulled `hf:` name; ModelNotFound (saying how to pull it) when it was not pulled."""
    hub = parse(name)
    files = _pulled_files(hub.repo)
    if not files:
        raise ModelNotFound(f"{hub} is not pulled: run `ondevice pull {hub}` (resolving a name never downloads)")
    path = pulled_dir(hub.repo) / _pick([f.name for f in files], hub, "pulled (run `ondevice pull` for it)")
    if not path.exists():  # a link whose file in the HF cache was deleted by another tool
        raise ModelNotFound(f"{hub}: {path} points at a file no longer in the Hugging Face cache; pull it again")
    return ModelRef(str(hub), path, detect_format(path))


def pulled_names() -> list[tuple[str, Path]]:
    """(hf: name, store file) of every pulled model, for `ondevice models list`."""
    found = []
    for folder in sorted((models_dir() / "hf").glob("*--*")) if (models_dir() / "hf").is_dir() else []:
        record = json.loads((folder / RECORD).read_text()) if (folder / RECORD).exists() else {}
        for path in sorted(folder.glob("*.gguf")):
            name = record.get(path.name, {}).get("name") or f"{SCHEME}{folder.name.replace('--', '/', 1)}:{path.name}"
            found.append((name, path))
    return found


# ---------------------------------------------------------------- planning (file list + config, no weights)

@dataclass
class RepoFile:
    """One file of a repo as the hub lists it."""

    name: str
    size: int
    sha256: str | None = None     # LFS files
    blob_id: str | None = None    # git blob sha1 (non-LFS files)


@dataclass
class PullPlan:
    """What pulling a hub name will fetch, decided from the repo's file list alone."""

    name: str
    repo: str
    revision: str                 # the commit the files come from
    kind: str                     # "gguf" (a ready file) or "safetensors" (converted and quantised on pull)
    files: list[RepoFile]
    quant: str                    # the GGUF type the store will hold
    config: dict | None = None    # config.json, when the repo has one (shapes for the prediction)
    target: str = ""              # the store file name the pull publishes

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict:
        return asdict(self)


def _hub_error(exc: Exception, hub: HubName) -> OnDeviceError:
    """One line for whatever huggingface_hub raised."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)

    endpoint = constants.ENDPOINT
    if isinstance(exc, GatedRepoError):
        return InvalidInput(f"{hub}: the repository is gated: accept its terms on {endpoint}/{hub.repo} and set "
                            f"HF_TOKEN to a token of that account")
    if isinstance(exc, RepositoryNotFoundError):
        return ModelNotFound(f"{hub}: no repository {hub.repo!r} on {endpoint} (or it is private: set HF_TOKEN)")
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFound(f"{hub}: revision not found on {endpoint}")
    if isinstance(exc, EntryNotFoundError):
        return ModelNotFound(f"{hub}: a file the repository lists is missing on {endpoint}: {exc.args[0][:160]}")
    if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError)) and constants.HF_HUB_OFFLINE:
        return InvalidInput(f"{hub}: offline mode is on (HF_HUB_OFFLINE=1): pulling needs the hub; unset it to pull")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OnDeviceError(f"{hub}: could not reach {endpoint}: {text[:200]}")


def _repo_files(hub: HubName):
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(hub.repo, files_metadata=True)
    except Exception as exc:
        raise _hub_error(exc, hub) from None
    files = []
    for s in info.siblings or []:
        lfs = s.lfs
        files.append(RepoFile(s.rfilename, int(s.size or (lfs.size if lfs else 0) or 0),
                              sha256=lfs.sha256 if lfs else None, blob_id=s.blob_id))
    return info.sha, files


def _fetch_small(hub: HubName, filename: str, revision: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(hub.repo, filename, revision=revision))
    except Exception as exc:
        raise _hub_error(exc, hub) from None


def plan(name: str, quant: str | None = None) -> PullPlan:
    """Read the repo's file list (and config.json) and decide what to fetch; no weights are downloaded.

    quant: for a safetensors repo, the GGUF type it is quantised to on pull (default Q4_K_M, or the name's QUANT).
    """
    hub = parse(name)
    revision, files = _repo_files(hub)
    by_name = {f.name: f for f in files}
    ggufs = [f.name for f in files if f.name.endswith(".gguf") and "mmproj" not in f.name.lower()]
    config = None
    if "config.json" in by_name:
        try:
            config = json.loads(_fetch_small(hub, "config.json", revision).read_text())
        except ValueError:
            raise InvalidModelFile(f"{hub}: its config.json is not valid JSON") from None
    if ggufs:
        pick = hub if hub.selector or not quant else HubName(hub.repo, quant)
        chosen = _pick(ggufs, pick, "in the repository")
        qtype = next((q for q in (*QUANT_PREFERENCE, "Q2_K", "Q3_K_M", "Q5_K_S", "Q4_1", "Q5_0", "F32")
                      if re.search(rf"(^|[-_.]){q}([-_.]|$)", Path(chosen).stem.upper())), "?")
        return PullPlan(str(hub), hub.repo, revision, "gguf", [by_name[chosen]], qtype, config, Path(chosen).name)
    if config is not None and _has_safetensors(files):
        if hub.selector and not hub.is_quant:
            raise InvalidInput(f"{hub}: {hub.selector!r} is not a GGUF file of this safetensors repository; name a "
                               f"quant type instead (e.g. hf:{hub.repo}:{DEFAULT_QUANT})")
        qtype = (quant or (hub.selector if hub.is_quant else None) or DEFAULT_QUANT).upper()
        wanted = [f for f in files
                  if (f.name.endswith(".safetensors") and "/" not in f.name) or _SIDE_FILES.match(f.name)]
        return PullPlan(str(hub), hub.repo, revision, "safetensors", wanted, qtype, config, f"{qtype}.gguf")
    listing = ", ".join(sorted(by_name)[:12]) or "none"
    raise InvalidInput(f"{hub}: the repository has no weights ondevice can use (no .gguf file, no config.json with "
                       f".safetensors); files: {listing}")


def _has_safetensors(files: list[RepoFile]) -> bool:
    return any(f.name.endswith(".safetensors") for f in files)


# ---------------------------------------------------------------- download + verify

def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected: RepoFile) -> None:
    """Check a downloaded file against the hub's checksum; on a mismatch delete it (blob and link) and raise."""
    real = Path(path).resolve()
    got, want, kind = ((_sha256(real), expected.sha256, "sha256") if expected.sha256 else
                       (_git_blob_sha1(real), expected.blob_id, "git blob id"))
    if want and got != want:
        real.unlink(missing_ok=True)
        Path(path).unlink(missing_ok=True)
        raise InvalidModelFile(f"{expected.name}: downloaded file fails its {kind} check (expected {want[:16]}..., "
                               f"got {got[:16]}...); deleted it, pull again")


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def download(pull: PullPlan) -> Path:
    """Fetch the plan's files into the HF cache (resuming any partial file) and verify each; returns the local
    snapshot folder. Free disk is checked first against the files' total size."""
    from huggingface_hub import hf_hub_download

    from ondevice.files import check_free_space

    hub = parse(pull.name)
    check_free_space(cache_dir() / "x", pull.download_bytes)
    snapshot = None
    for f in pull.files:
        try:
            local = Path(hf_hub_download(pull.repo, f.name, revision=pull.revision))
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise InvalidInput(f"{hub}: disk full while downloading {f.name} into {cache_dir()}") from None
            raise _hub_error(exc, hub) from None
        except Exception as exc:
            raise _hub_error(exc, hub) from None
        if local.stat().st_size != f.size and f.size:
            local.resolve().unlink(missing_ok=True)
            local.unlink(missing_ok=True)
            raise InvalidModelFile(f"{f.name}: downloaded {local.stat().st_size if local.exists() else 0} bytes, "
                                   f"the hub lists {f.size}; deleted it, pull again")
        verify(local, f)
        snapshot = local.parent if "/" not in f.name else local.parents[f.name.count("/")]
    assert snapshot is not None
    return snapshot


def publish(pull: PullPlan, source: Path) -> Path:
    """Name `source` (a GGUF in the HF cache, or a converted file) in the store as the pull's target.

    A GGUF from the cache is linked, not copied (one copy on disk, shared with other HF tools); the link is made
    under a temporary name and renamed, so the final name only ever points at a complete, verified file."""
    folder = pulled_dir(pull.repo)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / pull.target
    if Path(source).resolve() != target.resolve():
        tmp = folder / f".{pull.target}.partial"
        tmp.unlink(missing_ok=True)
        os.symlink(Path(source).absolute(), tmp)
        os.replace(tmp, target)
    record = folder / RECORD
    entries = json.loads(record.read_text()) if record.exists() else {}
    entries[pull.target] = {"name": pull.name, "revision": pull.revision, "kind": pull.kind, "quant": pull.quant,
                            "files": [f.name for f in pull.files]}
    record.write_text(json.dumps(entries, indent=1))
    return target


# ---------------------------------------------------------------- removal and disk use

@dataclass
class Removed:
    """What `remove` deleted."""

    name: str
    paths: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def _size(path: Path) -> int:
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def remove(name: str, hf_cache: bool = True) -> Removed:
    """Delete a pulled `hf:` name from the store (one file, or every file of the repo when no selector), and with
    `hf_cache` the repo's files in the HF cache once nothing in the store names it any more."""
    hub = parse(name)
    folder = pulled_dir(hub.repo)
    files = _pulled_files(hub.repo)
    if not files:
        raise ModelNotFound(f"{hub} is not pulled")
    chosen = [folder / _pick([f.name for f in files], hub, "pulled")] if hub.selector else files
    removed = Removed(str(hub))
    for path in chosen:
        removed.freed_bytes += _size(path)
        path.unlink()
        removed.paths.append(str(path))
    record = folder / RECORD
    if record.exists():
        entries = {k: v for k, v in json.loads(record.read_text()).items() if (folder / k).exists()}
        record.write_text(json.dumps(entries, indent=1))
    if not _pulled_files(hub.repo):
        shutil.rmtree(folder, ignore_errors=True)
        repo_cache = cache_dir() / f"models--{hub.repo.replace('/', '--')}"
        if hf_cache and repo_cache.exists():
            removed.freed_bytes += _size(repo_cache)
            shutil.rmtree(repo_cache)
            removed.paths.append(str(repo_cache))
    return removed


def disk_use() -> dict[str, int]:
    """Bytes used by the store's model folders and by the HF cache's model repos (a link counts once)."""
    use = {"store models": _size(models_dir()), "store converted": _size(store_dir() / "converted")}
    try:
        use["hf cache (models)"] = sum(_size(p) for p in cache_dir().glob("models--*"))
    except ImportError:
        pass
    return use


register_scheme("hf", resolve_hub)  # `hf:ORG/REPO[:QUANT|FILE]` names resolve to pulled models (never download)
