"""Models by name: the manifest and each model's session and data, through the artifact cache."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from .errors import IntegrityError, ManifestError, ModelLoadError, PredictionError
from .inference import OnnxModel, load_model_file
from .manifest import FileRef, Manifest, ModelSpec
from .tables import Table
from .text import load_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from .cache import ArtifactCache

T = TypeVar("T")


class ModelRegistry:
    def __init__(
        self,
        cache: ArtifactCache,
        *,
        prefix: str,
        manifest_key: str,
        reload_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._cache = cache
        self._prefix = prefix
        self._manifest_key = manifest_key
        self._reload_interval = reload_interval
        self._clock = clock
        self._reloaded_at: dict[str, float] = {}
        # Loads a model's other files (data table, tokenizer) beside the model itself.
        self._loaders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="load")

    def manifest(self) -> Manifest:
        try:
            return self._cache.get(self._manifest_key, Manifest.parse)
        except ManifestError:
            raise
        except PredictionError as exc:
            raise ManifestError(exc.message, detail=exc.detail) from exc

    def spec(self, name: str, version: str | None = None) -> ModelSpec:
        return self.manifest().get(name, version)

    def model(self, spec: ModelSpec) -> OnnxModel:
        """The model's session, built from its file in /tmp (never all its bytes in memory)."""
        assert spec.file is not None and spec.sha256 is not None, "an ensemble has no file of its own"
        key = self._key(spec.file)
        return self._load(spec, lambda: self._cache.get_file(key, load_model_file, spec.sha256))

    def table(self, spec: ModelSpec, ref: FileRef) -> Table:
        key = self._key(ref.file)
        return self._load(spec, lambda: self._cache.get(key, Table.parse, ref.sha256))

    def tokenizer(self, spec: ModelSpec) -> Tokenizer:
        """A text model's tokenizer.json, checksummed like every file."""
        if spec.tokenizer is None:
            raise ModelLoadError(spec.name, IntegrityError("the manifest names no tokenizer for it"))
        ref = spec.tokenizer
        return self._load(spec, lambda: self._cache.get(self._key(ref.file), load_tokenizer, ref.sha256))

    def session_in_memory(self, spec: ModelSpec) -> bool:
        """Whether the model's ONNX session is held in memory (what GET /v1/models calls `loaded`)."""
        return spec.file is not None and self._key(spec.file) in self._cache

    def all_files_in_memory(self, name: str) -> bool:
        """Whether a prediction with this model would need no download (unknown names: False)."""
        try:
            spec = self.manifest().get(name)
        except PredictionError:
            return False
        return self.files_in_memory(spec)

    def files_in_memory(self, spec: ModelSpec, *, tables: bool = True) -> bool:
        return all(self._key(ref.file) in self._cache for ref in self.files_of(spec, tables=tables))

    def files_of(self, spec: ModelSpec, *, tables: bool = True) -> list[FileRef]:
        """The files a version reads: its model, its tokenizer, its data tables (with `tables`);
        an ensemble's are its members'."""
        if spec.members is not None:
            return [ref for member in self.manifest().members_of(spec) for ref in self.files_of(member, tables=tables)]
        assert spec.file is not None and spec.sha256 is not None
        extra = [spec.dataset, spec.features] if tables else []
        return [ref for ref in (FileRef(file=spec.file, sha256=spec.sha256), spec.tokenizer, *extra) if ref is not None]

    def reload(self, name: str) -> None:
        """Fetch the manifest and the files of every version of the model from S3 again.

        At most once per revalidation period per model: within it the cached copies serve,
        so no caller can make every request download the model again."""
        now = self._clock()
        last = self._reloaded_at.get(name)
        if last is not None and now - last < self._reload_interval:
            return
        self._reloaded_at[name] = now
        self._cache.invalidate(self._manifest_key)
        versions = self.manifest().versions(name)
        for spec in versions:
            for ref in self.files_of(spec):
                self._cache.invalidate(self._key(ref.file), ref.sha256)
        for spec in versions:
            self.load(spec)

    def load(self, spec: ModelSpec, *, tables: bool = True) -> None:
        """Load whatever of the model's files is not cached yet: its other files (data table,
        tokenizer) in threads while the model loads in this one, so that on a cold start their S3
        round trips overlap instead of adding up. Raises the model's error first. `tables`: its
        dataset or feature table too, which only predictions from the model's own data read.
        An ensemble loads its members, one after another."""
        if spec.members is not None:
            for member in self.manifest().members_of(spec):
                self.load(member, tables=tables)
            return
        refs = (spec.dataset, spec.features) if tables else ()
        others = [self._loaders.submit(self.table, spec, ref) for ref in refs if ref]
        if spec.tokenizer is not None:
            others.append(self._loaders.submit(self.tokenizer, spec))
        try:
            self.model(spec)
        finally:
            for other in others:
                other.exception()  # wait: a caller never returns while its loads still run
        for other in others:
            other.result()

    def _load(self, spec: ModelSpec, load: Callable[[], T]) -> T:
        try:
            return load()
        except PredictionError as exc:
            raise ModelLoadError(spec.name, exc) from exc

    def _key(self, relative: str) -> str:
        return self._prefix + relative
