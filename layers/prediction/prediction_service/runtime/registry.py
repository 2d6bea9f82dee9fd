"""Models by name: the manifest, each version's files through the artifact cache, and the one
place a manifest entry becomes its runtime (`runtime`)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from prediction_service.catalog.manifest import (
    ClassifierEntry,
    EnsembleEntry,
    FileEntry,
    FileRef,
    Manifest,
    ModelSpec,
    TextEntry,
)
from prediction_service.catalog.routing import Route, route
from prediction_service.errors import IntegrityError, ManifestError, ModelLoadError, PredictionError
from prediction_service.runtime.base import Member, Runtime
from prediction_service.runtime.ensemble import Ensemble
from prediction_service.runtime.onnx import OnnxModel, load_model_file
from prediction_service.runtime.text import TextEncoder, load_tokenizer
from prediction_service.storage.tables import Table

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from prediction_service.storage.cache import ArtifactCache

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
        """A version's manifest entry (catalog/manifest.py `Manifest.get`)."""
        return self.manifest().get(name, version)

    def route(self, name: str, version: str | None = None, key: str | None = None) -> Route:
        """The version that answers a request for `name` (catalog/routing.py)."""
        return route(self.manifest(), name, version, key)

    def runtime(self, chosen: Route, *, tables: bool = False) -> Runtime:
        """The runtime of the version `chosen` names, its files loaded (`tables`: its data tables
        too, for a request that reads them). An ensemble's members are routed like the request
        (its key), whatever the protocol. Raises ModelLoadError when a file cannot be loaded."""
        entry = chosen.spec
        if isinstance(entry, EnsembleEntry):
            members = [self._member(chosen, m.model, m.version, m.weight, tables) for m in entry.members]
            try:
                return Ensemble(members, classifier=isinstance(entry.members_entry, ClassifierEntry))
            except IntegrityError as exc:
                raise ModelLoadError(entry.name, exc) from exc
        if not self.files_in_memory(entry, tables=tables):
            self.load(entry, tables=tables)
        model = self.model(entry)
        if isinstance(entry, TextEntry):
            return TextEncoder(model, self.tokenizer(entry), entry.max_tokens)
        return model

    def _member(self, ensemble: Route, name: str, version: str | None, weight: float, tables: bool) -> Member:
        chosen = route(ensemble.manifest or self.manifest(), name, version, ensemble.key)
        return Member(chosen.name, chosen.version, weight, self.runtime(chosen, tables=tables))

    def model(self, entry: FileEntry) -> OnnxModel:
        """The entry's graph, built from its file in /tmp (never all its bytes in memory)."""
        key = self._key(entry.file)
        return self._load(entry, lambda: self._cache.get_file(key, load_model_file, entry.sha256))

    def table(self, entry: ModelSpec, ref: FileRef) -> Table:
        key = self._key(ref.file)
        return self._load(entry, lambda: self._cache.get(key, Table.parse, ref.sha256))

    def tokenizer(self, entry: TextEntry) -> Tokenizer:
        """A text model's tokenizer.json, checksummed like every file."""
        ref = entry.tokenizer
        return self._load(entry, lambda: self._cache.get(self._key(ref.file), load_tokenizer, ref.sha256))

    def session_in_memory(self, entry: ModelSpec) -> bool:
        """Whether the entry's graph (an ensemble's: every member's) is held in memory (what
        GET /v1/models calls `loaded`)."""
        if isinstance(entry, EnsembleEntry):
            manifest = self.manifest()
            return all(self.session_in_memory(manifest.get(m.model, m.version)) for m in entry.members)
        return isinstance(entry, FileEntry) and self._key(entry.file) in self._cache

    def all_files_in_memory(self, name: str) -> bool:
        """Whether a prediction with this model would need no download (unknown names: False)."""
        try:
            return self.files_in_memory(self.manifest().get(name))
        except PredictionError:
            return False

    def files_in_memory(self, entry: ModelSpec, *, tables: bool = True) -> bool:
        return all(self._key(ref.file) in self._cache for ref in self.files_of(entry, tables=tables))

    def files_of(self, entry: ModelSpec, *, tables: bool = True) -> list[FileRef]:
        """The files a version reads; an ensemble's are its members' (every version they may take)."""
        if isinstance(entry, EnsembleEntry):
            manifest = self.manifest()
            return [ref for m in entry.members for member in manifest.reachable(m.model, m.version)
                    for ref in self.files_of(member, tables=tables)]
        return entry.files(tables=tables)

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
        for entry in versions:
            for ref in self.files_of(entry):
                self._cache.invalidate(self._key(ref.file), ref.sha256)
        for entry in versions:
            self.load(entry)

    def load(self, entry: ModelSpec, *, tables: bool = True) -> None:
        """Load whatever of the version's files is not cached yet: its other files (data table,
        tokenizer) in threads while the graph loads in this one, so that on a cold start their S3
        round trips overlap instead of adding up. Raises the graph's error first. `tables`: its
        data tables too, which only predictions from the model's own data read. An ensemble
        loads every version its members may take, one after another."""
        if isinstance(entry, EnsembleEntry):
            manifest = self.manifest()
            for m in entry.members:
                for member in manifest.reachable(m.model, m.version):
                    self.load(member, tables=tables)
            return
        refs = entry.data_files(tables=tables)
        others = [self._loaders.submit(self._file, entry, ref) for ref in refs]
        try:
            self.model(entry)
        finally:
            for other in others:
                other.exception()  # wait: a caller never returns while its loads still run
        for other in others:
            other.result()

    def _file(self, entry: FileEntry, ref: FileRef) -> object:
        if isinstance(entry, TextEntry) and ref is entry.tokenizer:
            return self.tokenizer(entry)
        return self.table(entry, ref)

    def _load(self, entry: ModelSpec, load: Callable[[], T]) -> T:
        try:
            return load()
        except PredictionError as exc:
            raise ModelLoadError(entry.name, exc) from exc

    def _key(self, relative: str) -> str:
        return self._prefix + relative
