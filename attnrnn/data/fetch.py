"""``attnrnn data fetch``: download public datasets from their canonical sources.

Every file is downloaded over HTTPS to a temporary name beside its destination,
checked (sha256, or the git blob id the source repository publishes), and only
then renamed into place, so an interrupted or failed download leaves nothing
behind. Sources are pinned to a commit where the source is a git repository.
Archives are checked before anything is extracted from them: AN4 by the sha256
of the archive, FSDD (whose GitHub-generated zip is not byte-stable) by the
sha256 of every recording, computed inside the archive.

Layouts match the recipes' defaults (``configs/*.yaml`` read
``../shared/data/<name>/...``; pass ``--set data.train=...`` for another folder):

- ``multi30k``: ``plain/{train,val,test_2016_flickr}.{de,en}`` (cased, untokenized);
- ``dialogsum``: ``dialogsum.{train,dev,test}.jsonl``;
- ``fsdd``: ``recordings/*.wav``, then ``python -m attnrnn.data.recipes.fsdd``;
- ``an4``: the CMU SPHERE release, with ``train.tsv`` / ``test.tsv`` manifests.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from attnrnn.console import progress
from attnrnn.errors import DataError

MULTI30K = "https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw"
DIALOGSUM = "https://raw.githubusercontent.com/cylnlp/dialogsum/848cc8c05e0a04def79326539de827f1b28786a0/DialogSum_Data"
FSDD = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
# CMU's own copy, then the mirror NVIDIA NeMo's tutorials use; both must match AN4_SHA256.
AN4_URLS = (
    "https://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz",
    "https://dldata-public.s3.us-east-2.amazonaws.com/an4_sphere.tar.gz",
)
AN4_SHA256 = "a0525579493735d32b60fb6fa5975dd0eaacde087b0a4eeb7f13b7ef33077b12"
# No download is larger (AN4 is 64 MB); a source that sends more is refused.
MAX_DOWNLOAD_BYTES = 256 << 20
# The FSDD recordings: 3,000 files, 21 MB; anything far larger in the zip is refused.
FSDD_RECORDINGS = 3000
FSDD_MAX_RECORDING_BYTES = 64 << 20

MULTI30K_SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
}
# Git blob ids (sha1 of "blob <size>\0" + content), as the source repository lists them.
DIALOGSUM_BLOBS = {
    "dialogsum.train.jsonl": "0a02b0f0cbe801a75384ba28364a7528b9340587",
    "dialogsum.dev.jsonl": "de762eea17e5e2464e221ac9a1cf5c7c64eec655",
    "dialogsum.test.jsonl": "1975a852f57a07f93fbabe68841c3328e3057f65",
}
# sha256 of the sorted "sha256  recordings/<file>" lines of the 3,000 recordings.
FSDD_MANIFEST_SHA256 = "04e1baae96c6a26e39c623f2b01d0182ddae627ba0ac02a3cdc17ba2af99fd9b"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def download(
    url: str,
    destination: Path,
    check: Callable[[Path], str],
    expected: str | None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> None:
    """Download ``url`` to ``destination`` through a temporary file, verified by
    ``check(path) == expected`` (no check when ``expected`` is None); more than
    ``max_bytes`` is refused."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as output, urllib.request.urlopen(url, timeout=60) as source:
            length = source.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() and len(length) < 19 else None
            received = 0
            with progress(total, f"{destination.name} (bytes)") as advance:
                for block in iter(lambda: source.read(1 << 20), b""):
                    received += len(block)
                    if received > max_bytes:
                        raise DataError(f"the source sent more than {max_bytes} bytes", url)
                    output.write(block)
                    advance(len(block))
        if expected is not None and check(temporary) != expected:
            raise DataError(
                f"downloaded file does not match its checksum (expected {expected[:12]}...); "
                "the source may have changed",
                url,
            )
        os.replace(temporary, destination)
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DataError(
            f"cannot download ({reason}); download it by hand and place it at {destination}",
            url,
        ) from None
    finally:
        temporary.unlink(missing_ok=True)


def fetch_multi30k(output: Path) -> None:
    for name, digest in MULTI30K_SHA256.items():
        archive = output / "raw" / name
        if not archive.exists():
            download(f"{MULTI30K}/{name}", archive, sha256_of, digest)
        plain = output / "plain" / name.removesuffix(".gz")
        plain.parent.mkdir(parents=True, exist_ok=True)
        temporary = plain.with_name(plain.name + ".tmp")
        with gzip.open(archive, "rb") as source, temporary.open("wb") as target:
            shutil.copyfileobj(source, target)
        os.replace(temporary, plain)


def fetch_dialogsum(output: Path) -> None:
    for name, blob in DIALOGSUM_BLOBS.items():
        destination = output / name
        if not destination.exists():
            download(f"{DIALOGSUM}/{name}", destination, git_blob_id, blob)


def _fsdd_recordings(bundle: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The ``<top>/recordings/<name>.wav`` members of the FSDD zip by file name, after
    checking their number and declared sizes (so a zip bomb is refused unread)."""
    recordings = {}
    for member in bundle.infolist():
        parts = Path(member.filename).parts
        if len(parts) == 3 and parts[1] == "recordings" and parts[2].endswith(".wav"):
            recordings[parts[2]] = member
    total = sum(member.file_size for member in recordings.values())
    if len(recordings) != FSDD_RECORDINGS or total > FSDD_MAX_RECORDING_BYTES:
        raise DataError(
            f"the archive holds {len(recordings)} recordings of {total} bytes, not FSDD "
            f"v1.0.10's {FSDD_RECORDINGS}",
            FSDD,
        )
    return recordings


def _check_fsdd_recordings(bundle: zipfile.ZipFile, recordings: dict[str, zipfile.ZipInfo]):
    """Raise unless the recordings inside the zip match FSDD v1.0.10's checksums."""
    lines = []
    for name in sorted(recordings):
        digest = hashlib.sha256()
        with bundle.open(recordings[name]) as member:
            for block in iter(lambda: member.read(1 << 20), b""):
                digest.update(block)
        lines.append(f"{digest.hexdigest()}  recordings/{name}\n")
    if hashlib.sha256("".join(lines).encode()).hexdigest() != FSDD_MANIFEST_SHA256:
        raise DataError("the recordings do not match FSDD v1.0.10's checksums", FSDD)


def fetch_fsdd(output: Path) -> None:
    """The recordings, each checked inside the downloaded zip before any is written."""
    archive = output / "fsdd.zip"
    if not (output / "recordings").is_dir():
        download(FSDD, archive, sha256_of, None)
        staging = Path(tempfile.mkdtemp(prefix=".recordings-", dir=output))
        try:
            with zipfile.ZipFile(archive) as bundle:
                recordings = _fsdd_recordings(bundle)
                _check_fsdd_recordings(bundle, recordings)
                for name, member in recordings.items():
                    (staging / name).write_bytes(bundle.read(member))
            staging.rename(output / "recordings")
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise DataError(f"the downloaded archive is damaged ({error})", FSDD) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            archive.unlink(missing_ok=True)


def an4_manifest(root: Path, split: str, audio_suffix: str = ".sph") -> list[tuple[str, str]]:
    """(audio path relative to ``root``, transcript) rows of an AN4 split from its
    Sphinx ``etc/an4_<split>.{fileids,transcription}`` files."""
    etc = root / "etc"
    fileids = (etc / f"an4_{split}.fileids").read_text(encoding="utf-8").split()
    rows = []
    lines = (etc / f"an4_{split}.transcription").read_text(encoding="utf-8").splitlines()
    for fileid, line in zip(fileids, [line for line in lines if line.strip()], strict=True):
        text = line.rsplit("(", 1)[0].replace("<s>", "").replace("</s>", "")
        rows.append((f"wav/{fileid}{audio_suffix}", " ".join(text.split())))
    return rows


def _download_from_any(urls: Sequence[str], destination: Path, sha256: str) -> None:
    """Download from the first of ``urls`` that answers with the file of ``sha256``."""
    for url in urls[:-1]:
        try:
            download(url, destination, sha256_of, sha256)
            return
        except DataError:
            continue
    download(urls[-1], destination, sha256_of, sha256)


def fetch_an4(output: Path) -> None:
    from attnrnn.data.recipes.fsdd import write_manifest

    archive = output / "an4_sphere.tar.gz"
    if not (output / "wav").is_dir():
        _download_from_any(AN4_URLS, archive, AN4_SHA256)
        staging = Path(tempfile.mkdtemp(prefix=".an4-", dir=output))
        try:
            with tarfile.open(archive) as bundle:
                bundle.extractall(staging, filter="data")
            for name in ("wav", "etc"):
                (staging / "an4" / name).rename(output / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            archive.unlink(missing_ok=True)
    for split, name in (("train", "train.tsv"), ("test", "test.tsv")):
        write_manifest(output / name, an4_manifest(output, split))


@dataclass(frozen=True)
class Dataset:
    fetch: Callable[[Path], None]
    description: str


DATASETS = {
    "multi30k": Dataset(fetch_multi30k, "Multi30k task 1 (de, en), 29k/1k/1k sentence pairs"),
    "dialogsum": Dataset(fetch_dialogsum, "DialogSum dialogues and summaries"),
    "fsdd": Dataset(fetch_fsdd, "Free Spoken Digit Dataset v1.0.10, 3,000 recordings"),
    "an4": Dataset(fetch_an4, "CMU AN4 census speech (SPHERE), 948 + 130 utterances"),
}


def fetch(name: str, output: Path) -> Path:
    """Download dataset ``name`` into ``output``; return the folder."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if output.exists() and not output.is_dir():
        raise DataError("exists and is not a folder; give another --output", str(output))
    created = not output.exists()
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the folder: {error.strerror}", str(output)) from None
    try:
        DATASETS[name].fetch(output)
    except OSError as error:  # disk full, no permission: while unpacking or writing
        _remove_empty_folders(output, remove_root=created)
        where = error.filename or output
        raise DataError(f"cannot write: {error.strerror or error}", str(where)) from None
    except BaseException:
        _remove_empty_folders(output, remove_root=created)
        raise
    return output


def _remove_empty_folders(root: Path, remove_root: bool) -> None:
    """Remove folders a failed fetch left empty (deepest first)."""
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if remove_root and root.is_dir() and not any(root.iterdir()):
        root.rmdir()
