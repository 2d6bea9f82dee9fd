"""Models by name: the manifest and each model's session and data, through the artifact cache."""

from __future__ import annotations

import onnxruntime as ort

from .cache import ArtifactCache, CacheStats
from .inference import load_session
from .manifest import FileRef, Manifest, ModelSpec
from .tables import Table


class ModelRegistry:
    def __init__(self, cache: ArtifactCache, *, prefix: str, manifest_key: str) -> None:
        self._cache = cache
        self._prefix = prefix
        self._manifest_key = manifest_key

    @property
    def cache_stats(self) -> CacheStats:
        return self._cache.stats

    def manifest(self) -> Manifest:
        return self._cache.get(self._manifest_key, Manifest.parse)

    def spec(self, name: str) -> ModelSpec:
        return self.manifest().get(name)

    def session(self, spec: ModelSpec) -> ort.InferenceSession:
        return self._cache.get(self._key(spec.file), load_session, spec.sha256)

    def table(self, ref: FileRef) -> Table:
        return self._cache.get(self._key(ref.file), Table.parse, ref.sha256)

    def is_loaded(self, spec: ModelSpec) -> bool:
        return self._key(spec.file) in self._cache

    def is_ready(self, name: str) -> bool:
        """Whether a prediction with this model would need no download (unknown names: False)."""
        try:
            spec = self.manifest().get(name)
        except Exception:
            return False
        return all(self._key(ref.file) in self._cache for ref in self.files_of(spec))

    def files_of(self, spec: ModelSpec) -> list[FileRef]:
        data = spec.dataset or spec.features
        return [FileRef(file=spec.file, sha256=spec.sha256), *([data] if data else [])]

    def reload(self, spec: ModelSpec) -> ModelSpec:
        """Fetch the manifest and the model's files from S3 again; the spec as the new manifest has it."""
        self._cache.invalidate(self._manifest_key)
        fresh = self.spec(spec.name)
        for ref in self.files_of(fresh):
            self._cache.invalidate(self._key(ref.file), ref.sha256)
        self.load(fresh)
        return fresh

    def load(self, spec: ModelSpec) -> None:
        """Load whatever of the model's files is not cached yet."""
        self.session(spec)
        for ref in (spec.dataset, spec.features):
            if ref is not None:
                self.table(ref)

    def _key(self, relative: str) -> str:
        return self._prefix + relative
