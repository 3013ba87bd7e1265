"""Content-addressed artifact storage with a sha256 check on every load.

An artifact is a directory of files (a Hugging Face model folder, a data snapshot). Its address is
the sha256 of its manifest: the sorted list of ``(relative path, size, sha256)`` of every file. It is
stored at ``<root>/sha256/<digest>/`` with the manifest beside the files as ``MANIFEST.json``.

Two implementations of :class:`ArtifactStore`: :class:`LocalArtifactStore` for a plain folder (loads
verify files in place, no copy) and :class:`FsspecArtifactStore` for any fsspec URL (``s3://``,
``gs://``, ``memory://``; loads download into a local cache and verify there).

Only file types that cannot carry pickled code are accepted (safetensors weights, JSON, text,
parquet): no pickle anywhere on the load path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import fsspec

from registry.entities import ArtifactRef
from registry.errors import ChecksumMismatchError, NotFoundError, UnsafeArtifactError

if TYPE_CHECKING:
    from registry.settings import Settings

logger = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
REPORTS = "reports"
LOCAL_PROTOCOLS = frozenset({"file", "local"})
ALLOWED_SUFFIXES = frozenset(
    {".safetensors", ".json", ".txt", ".model", ".md", ".jsonl", ".parquet", ".html", ".onnx"}
)
_CHUNK = 1 << 20


class ArtifactStore(Protocol):
    root: str

    def put_dir(self, local_dir: Path) -> tuple[ArtifactRef, bool]:
        """Store ``local_dir``; return its reference and whether it was new to the store."""
        ...

    def fetch(self, ref: ArtifactRef) -> Path:
        """A local directory holding the artifact, every file checked against ``ref.sha256``."""
        ...

    def exists(self, ref: ArtifactRef) -> bool: ...

    def delete(self, ref: ArtifactRef) -> None: ...

    def put_report(self, local_dir: Path, name: str) -> str:
        """Copy a report folder to ``<root>/reports/<name>/``; returns ``name``."""
        ...

    def read_report(self, path: str) -> bytes:
        """The bytes of the file ``<root>/reports/<path>``; ``NotFoundError`` when there is none, also for
        a path that would leave the reports folder."""
        ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ManifestFile(TypedDict):
    path: str  # relative, POSIX
    size: int
    sha256: str


class Manifest(TypedDict):
    """What ``MANIFEST.json`` holds: its digest is the artifact's address."""

    format: str
    files: list[ManifestFile]


def build_manifest(local_dir: Path) -> Manifest:
    """The manifest of ``local_dir``; refuses file types that could carry pickled code."""
    files: list[ManifestFile] = []
    for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        if rel == MANIFEST:
            continue
        if path.suffix.lower() not in ALLOWED_SUFFIXES:
            raise UnsafeArtifactError(
                f"artifact file '{rel}' has type '{path.suffix}'; only {sorted(ALLOWED_SUFFIXES)} are stored "
                "(model weights must be safetensors)"
            )
        files.append({"path": rel, "size": path.stat().st_size, "sha256": file_sha256(path)})
    if not files:
        raise UnsafeArtifactError(f"artifact directory '{local_dir}' is empty")
    return {"format": "driftline-artifact/1", "files": files}


def manifest_digest(manifest: Manifest) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def verify_dir(local_dir: Path, expected_sha256: str) -> None:
    """Check a local copy against its manifest and the manifest against the expected digest."""
    manifest_path = Path(local_dir) / MANIFEST
    if not manifest_path.is_file():
        raise ChecksumMismatchError(f"artifact {expected_sha256[:12]}: {MANIFEST} is missing in {local_dir}")
    manifest = json.loads(manifest_path.read_text())
    if manifest_digest(manifest) != expected_sha256:
        raise ChecksumMismatchError(
            f"artifact {expected_sha256[:12]}: manifest digest is {manifest_digest(manifest)[:12]}, "
            f"expected {expected_sha256[:12]}"
        )
    listed = {f["path"] for f in manifest["files"]}
    present = {p.relative_to(local_dir).as_posix() for p in Path(local_dir).rglob("*") if p.is_file()} - {
        MANIFEST
    }
    if present != listed:
        raise ChecksumMismatchError(
            f"artifact {expected_sha256[:12]}: files differ from the manifest "
            f"(extra {sorted(present - listed)}, missing {sorted(listed - present)})"
        )
    for entry in manifest["files"]:
        if Path(entry["path"]).suffix.lower() not in ALLOWED_SUFFIXES:
            raise UnsafeArtifactError(f"artifact {expected_sha256[:12]}: refusing file '{entry['path']}'")
        actual = file_sha256(Path(local_dir) / entry["path"])
        if actual != entry["sha256"]:
            raise ChecksumMismatchError(
                f"artifact {expected_sha256[:12]}: file '{entry['path']}' has sha256 {actual[:12]}, "
                f"expected {entry['sha256'][:12]}"
            )


class FsspecArtifactStore:
    """Artifacts under any fsspec URL; fetches go to a local cache and are verified there."""

    def __init__(
        self, root: str, cache_dir: Path | None = None, storage_options: dict[str, Any] | None = None
    ) -> None:
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **(storage_options or {}))
        self._cache_dir = (
            Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "driftline-artifacts"
        )
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self._local = bool(protocols & LOCAL_PROTOCOLS)

    def _path(self, *parts: str) -> str:
        return str(PurePosixPath(self._base, *parts))

    def uri_for(self, sha256: str) -> str:
        return f"{self.root}/sha256/{sha256}"

    def _final_path(self, ref: ArtifactRef) -> str:
        return self._path("sha256", ref.sha256)

    def exists(self, ref: ArtifactRef) -> bool:
        return self.fs.exists(self._path("sha256", ref.sha256, MANIFEST))

    def put_dir(self, local_dir: Path) -> tuple[ArtifactRef, bool]:
        manifest = build_manifest(Path(local_dir))
        digest = manifest_digest(manifest)
        ref = ArtifactRef(uri=self.uri_for(digest), sha256=digest)
        if self.exists(ref):
            return ref, False
        final = self._final_path(ref)
        staging = self._staging_for(final)
        try:
            for entry in manifest["files"]:
                target = f"{staging}/{entry['path']}"
                self.fs.makedirs(str(PurePosixPath(target).parent), exist_ok=True)
                self.fs.put_file(str(Path(local_dir) / entry["path"]), target)
            # The manifest goes last: an artifact without one is incomplete and never read.
            with self.fs.open(f"{staging}/{MANIFEST}", "w") as fh:
                fh.write(json.dumps(manifest, indent=1, sort_keys=True))
            self._publish(staging, final)
        except BaseException:
            if staging != final and self.fs.exists(staging):
                self.fs.rm(staging, recursive=True)
            raise
        logger.info("stored artifact %s (%d files)", digest[:12], len(manifest["files"]))
        return ref, True

    def _staging_for(self, final: str) -> str:
        """Where ``put_dir`` writes before publishing. An object store has no atomic rename (a "move" is a
        copy of every object): files go straight to their content address, the manifest last, so the
        artifact exists (:meth:`exists` looks for the manifest) only once it is whole; an interrupted
        upload is invisible and the next one writes the same bytes again."""
        return final

    def _publish(self, staging: str, final: str) -> None:
        assert staging == final

    def fetch(self, ref: ArtifactRef) -> Path:
        if not self.exists(ref):
            raise NotFoundError(f"artifact {ref.sha256[:12]} not found under {self.root}")
        local = self._cache_dir / ref.sha256
        if local.is_dir():
            try:
                verify_dir(local, ref.sha256)
                return local
            except ChecksumMismatchError:
                logger.warning("cached artifact %s is damaged; fetching again", ref.sha256[:12])
                shutil.rmtree(local)
        staging = self._cache_dir / f".{ref.sha256}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            # file by file, as the manifest lists them (a recursive get of a "folder" differs by store)
            final = self._final_path(ref)
            with self.fs.open(f"{final}/{MANIFEST}", "r") as fh:
                listed = json.loads(fh.read())
            (staging / MANIFEST).write_text(json.dumps(listed, indent=1, sort_keys=True))
            for entry in listed.get("files", []):
                rel = PurePosixPath(entry["path"])
                if rel.is_absolute() or ".." in rel.parts:
                    raise UnsafeArtifactError(
                        f"artifact {ref.sha256[:12]} lists an unsafe path {entry['path']!r}"
                    )
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(f"{final}/{rel.as_posix()}", str(staging / rel))
            verify_dir(staging, ref.sha256)
            try:
                os.replace(staging, local)
            except OSError:  # a concurrent fetch won; its copy was verified too
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return local

    def put_report(self, local_dir: Path, name: str) -> str:
        if not _plain_relative(PurePosixPath(name).parts):
            raise UnsafeArtifactError(f"report name '{name}' must be a plain relative path")
        for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            target = self._path(REPORTS, name, path.relative_to(local_dir).as_posix())
            self.fs.makedirs(str(PurePosixPath(target).parent), exist_ok=True)
            self.fs.put_file(str(path), target)
        return name

    def read_report(self, path: str) -> bytes:
        """On a local filesystem a path with a symlink in it, or whose real path lies outside the real
        reports folder, is answered like a missing file (other fsspec stores have no symlinks)."""
        parts = PurePosixPath(path).parts
        if _plain_relative(parts) and (
            not self._local or _inside_local_folder(Path(self._base, REPORTS), parts)
        ):
            full = self._path(REPORTS, *parts)
            if self.fs.isfile(full):
                with self.fs.open(full, "rb") as fh:
                    return fh.read()
        raise NotFoundError(f"report '{path}' does not exist", field="path")

    def delete(self, ref: ArtifactRef) -> None:
        path = self._final_path(ref)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
            logger.info("deleted artifact %s", ref.sha256[:12])


class LocalArtifactStore(FsspecArtifactStore):
    """Artifacts in a local folder. Loads verify the stored files in place instead of copying them."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(str(Path(root).expanduser().absolute()))

    def _staging_for(self, final: str) -> str:
        return self._path("tmp", uuid.uuid4().hex)  # renamed into place at once by _publish

    def _publish(self, staging: str, final: str) -> None:
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, final)  # atomic on one filesystem
        except OSError:
            if not Path(final, MANIFEST).is_file():
                raise
            shutil.rmtree(staging, ignore_errors=True)

    def fetch(self, ref: ArtifactRef) -> Path:
        path = Path(self._final_path(ref))
        if not path.is_dir():
            raise NotFoundError(f"artifact {ref.sha256[:12]} not found under {self.root}")
        verify_dir(path, ref.sha256)
        return path


def _plain_relative(parts: tuple[str, ...]) -> bool:
    return bool(parts) and not any(p in ("..", ".") or p.startswith("/") for p in parts)


def _inside_local_folder(folder: Path, parts: tuple[str, ...]) -> bool:
    """Whether ``folder/parts`` has no symlink among its components under ``folder`` and its real path
    lies inside the real ``folder`` (which may itself be reached through a symlink)."""
    path = folder
    for part in parts:
        path = path / part
        if path.is_symlink():
            return False
    return path.resolve().is_relative_to(folder.resolve())


def open_artifact_store(
    root: str, cache_dir: Path | None = None, storage_options: dict[str, Any] | None = None
) -> ArtifactStore:
    """The store for ``root``: a local folder (a path or ``file://``) or any fsspec URL, whose filesystem
    gets ``storage_options`` (credentials, an S3-compatible endpoint)."""
    protocol = fsspec.core.split_protocol(root)[0]
    if protocol in (None, "file", "local"):
        return LocalArtifactStore(fsspec.core.strip_protocol(root) if protocol else root)
    return FsspecArtifactStore(root, cache_dir=cache_dir, storage_options=storage_options)


def artifact_store(settings: Settings) -> ArtifactStore:
    """The artifact store the settings name (``DRIFTLINE_ARTIFACT_ROOT`` and its storage options), fetches
    cached under ``<cache dir>/artifacts``."""
    assert settings.cache_dir is not None
    return open_artifact_store(
        settings.artifact_root,
        cache_dir=settings.cache_dir / "artifacts",
        storage_options=settings.storage_options(),
    )
