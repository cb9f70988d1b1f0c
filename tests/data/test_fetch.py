"""Dataset downloads: verified, atomic, and a clear error when offline."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
from pathlib import Path

import pytest

from attnrnn.cli import main
from attnrnn.data import fetch
from attnrnn.errors import DataError


def test_download_verifies_and_renames(tmp_path):
    source = tmp_path / "source.txt"
    source.write_bytes(b"hello data\n")
    digest = hashlib.sha256(b"hello data\n").hexdigest()
    destination = tmp_path / "out" / "file.txt"
    fetch.download(source.as_uri(), destination, fetch.sha256_of, digest)
    assert destination.read_bytes() == b"hello data\n"
    with pytest.raises(DataError, match="checksum"):
        fetch.download(source.as_uri(), tmp_path / "out" / "bad.txt", fetch.sha256_of, "0" * 64)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file.txt"]  # no leftovers


def test_offline_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    def unreachable(*_args, **_kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", unreachable)
    output = tmp_path / "multi30k"
    status = main(["data", "fetch", "multi30k", "--output", str(output)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: https://") and "cannot download" in err
    assert "Traceback" not in err
    assert not output.exists()


def test_multi30k_is_checked_and_unpacked(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    digests = {}
    for name in fetch.MULTI30K_SHA256:
        (served / name).write_bytes(gzip.compress(f"{name} line\n".encode()))
        digests[name] = fetch.sha256_of(served / name)
    monkeypatch.setattr(fetch, "MULTI30K", served.as_uri())
    monkeypatch.setattr(fetch, "MULTI30K_SHA256", digests)
    output = fetch.fetch("multi30k", tmp_path / "data")
    assert (output / "plain" / "train.de").read_text() == "train.de.gz line\n"
    assert (output / "plain" / "test_2016_flickr.en").is_file()


def test_unknown_dataset():
    with pytest.raises(DataError, match="known: multi30k"):
        fetch.fetch("imagenet", Path("unused"))


def test_an4_manifest_from_sphinx_files(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "an4_train.fileids").write_text(
        "an4_clstk/fash/an251-fash-b\nan4_clstk/fash/an253-fash-b\n"
    )
    (etc / "an4_train.transcription").write_text(
        "<s> YES </s> (an251-fash-b)\n<s> G O </s> (an253-fash-b)\n"
    )
    rows = fetch.an4_manifest(tmp_path, "train")
    assert rows == [
        ("wav/an4_clstk/fash/an251-fash-b.sph", "YES"),
        ("wav/an4_clstk/fash/an253-fash-b.sph", "G O"),
    ]
