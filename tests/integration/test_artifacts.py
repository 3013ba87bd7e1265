"""Content-addressed artifacts: sha256 checked on every load, pickle refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.artifacts import MANIFEST, FsspecArtifactStore, LocalArtifactStore, open_artifact_store
from registry.entities import ArtifactRef
from registry.errors import ChecksumMismatchError, NotFoundError, UnsafeArtifactError


def make_dir(root: Path, weights: bytes = b"\x00\x01weights") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.safetensors").write_bytes(weights)
    (root / "config.json").write_text(json.dumps({"num_labels": 3}))
    (root / "tokenizer").mkdir(exist_ok=True)
    (root / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return root


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    import uuid

    return FsspecArtifactStore(f"memory://driftline-{uuid.uuid4().hex}", cache_dir=tmp_path / "cache")


def test_put_and_fetch_round_trip(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = make_dir(tmp_path / "src")
    ref, created = store.put_dir(src)
    assert created and len(ref.sha256) == 64 and ref.uri.endswith(ref.sha256)
    again, created_again = store.put_dir(make_dir(tmp_path / "copy"))
    assert again == ref and not created_again  # same content, same address
    local = store.fetch(ref)
    assert (local / "model.safetensors").read_bytes() == b"\x00\x01weights"
    assert (local / "tokenizer" / "vocab.txt").is_file()
    other, _ = store.put_dir(make_dir(tmp_path / "other", weights=b"different"))
    assert other.sha256 != ref.sha256


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    ref, _ = store.put_dir(make_dir(tmp_path / "src"))
    stored = Path(store.root) / "sha256" / ref.sha256
    (stored / "model.safetensors").write_bytes(b"\x00\x01weightz")
    with pytest.raises(ChecksumMismatchError, match=r"file 'model.safetensors' has sha256 .*expected"):
        store.fetch(ref)


def test_tampered_remote_file_is_refused(tmp_path: Path) -> None:
    import uuid

    store = FsspecArtifactStore(f"memory://driftline-{uuid.uuid4().hex}", cache_dir=tmp_path / "cache")
    ref, _ = store.put_dir(make_dir(tmp_path / "src"))
    with store.fs.open(f"{store._final_path(ref)}/config.json", "w") as fh:
        fh.write('{"num_labels": 4}')
    with pytest.raises(ChecksumMismatchError, match="config.json"):
        store.fetch(ref)
    assert not (tmp_path / "cache" / ref.sha256).exists()  # nothing unverified left in the cache


def test_wrong_expected_digest_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    ref, _ = store.put_dir(make_dir(tmp_path / "src"))
    stored = Path(store.root) / "sha256" / ref.sha256
    manifest = json.loads((stored / MANIFEST).read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    (stored / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ChecksumMismatchError, match="manifest digest"):
        store.fetch(ref)


def test_extra_file_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    ref, _ = store.put_dir(make_dir(tmp_path / "src"))
    (Path(store.root) / "sha256" / ref.sha256 / "extra.json").write_text("{}")
    with pytest.raises(ChecksumMismatchError, match=r"extra \['extra.json'\]"):
        store.fetch(ref)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "state.pkl", "weights.ckpt"])
def test_pickle_formats_are_refused(tmp_path: Path, name: str) -> None:
    src = make_dir(tmp_path / "src")
    (src / name).write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeArtifactError, match=name):
        LocalArtifactStore(tmp_path / "store").put_dir(src)
    assert not list((tmp_path / "store").glob("sha256/*"))


def test_missing_artifact(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    with pytest.raises(NotFoundError, match="not found"):
        store.fetch(ArtifactRef(uri="x", sha256="f" * 64))


def test_delete_and_store_selection(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "store"))
    assert isinstance(store, LocalArtifactStore)
    assert isinstance(open_artifact_store(f"file://{tmp_path}/s2"), LocalArtifactStore)
    assert isinstance(open_artifact_store("memory://x"), FsspecArtifactStore)
    ref, _ = store.put_dir(make_dir(tmp_path / "src"))
    assert store.exists(ref)
    store.delete(ref)
    assert not store.exists(ref)
    assert not list((tmp_path / "store").glob("tmp/*"))  # no staging leftovers


def test_an_interrupted_upload_to_an_object_store_is_invisible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Object stores have no atomic rename: files go to their content address first, the manifest last,
    so an upload that dies half-way leaves no artifact that exists, and the next upload completes it."""
    store = FsspecArtifactStore(f"memory://interrupted-{tmp_path.name}", cache_dir=tmp_path / "cache")
    src = make_dir(tmp_path / "src")
    real_put = store.fs.put_file
    calls = {"n": 0}

    def dying_put(lpath: str, rpath: str, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("the network went away")
        real_put(lpath, rpath, **kwargs)

    monkeypatch.setattr(store.fs, "put_file", dying_put)
    with pytest.raises(ConnectionError):
        store.put_dir(src)
    monkeypatch.setattr(store.fs, "put_file", real_put)
    ref, created = store.put_dir(src)
    assert created and store.exists(ref)
    assert (store.fetch(ref) / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()


def test_report_files_are_read_back_from_inside_the_reports_folder(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "report" / "img").mkdir(parents=True)
    (tmp_path / "report" / "report.html").write_text("<p>drift</p>")
    (tmp_path / "report" / "img" / "a.svg").write_text("<svg/>")
    assert store.put_report(tmp_path / "report", "drift/7") == "drift/7"
    assert store.read_report("drift/7/report.html") == b"<p>drift</p>"
    assert store.read_report("drift/7/img/a.svg") == b"<svg/>"
    for path in (
        "drift/7/missing.html",
        "drift/7",
        "",
        ".",
        "../drift/7/report.html",
        "/drift/7/report.html",
    ):
        with pytest.raises(NotFoundError, match="does not exist"):
            store.read_report(path)
    with pytest.raises(UnsafeArtifactError):
        store.put_report(tmp_path / "report", "../outside")


def test_a_local_report_path_through_a_symlink_reads_as_missing(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("private")
    (tmp_path / "real" / "reports" / "runs").mkdir(parents=True)
    (tmp_path / "real" / "reports" / "runs" / "promotion.html").write_text("<p>promoted</p>")
    (tmp_path / "real" / "reports" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "real" / "reports" / "linked").symlink_to(tmp_path / "real" / "reports" / "runs")
    (tmp_path / "root").symlink_to(tmp_path / "real", target_is_directory=True)
    for store in (LocalArtifactStore(tmp_path / "root"), FsspecArtifactStore(f"file://{tmp_path / 'real'}")):
        # an artifact root reached through a symlink is still served, a symlink inside it is not
        assert store.read_report("runs/promotion.html") == b"<p>promoted</p>"
        for path in ("leak.txt", "linked/promotion.html"):
            with pytest.raises(NotFoundError):
                store.read_report(path)
