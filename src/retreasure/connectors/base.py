"""What a connector declares, and the record shape it yields.

A connector is small: its entities (business key, change time, where the PII is), its own settings section
(``settings_model``, read from ``RETREASURE_<NAME>__<FIELD>``) and a generator that yields records as received.
Paging, retries, masking, hashing, idempotent landing and the ingest log are shared mechanisms
(``retreasure.http``, ``retreasure.bronze``), never a connector's business.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from retreasure.http.client import HttpClient, RequestStats
from retreasure.records.pii import PiiSpec
from retreasure.settings import Settings, SourceSettings, declare_section


@dataclass(frozen=True)
class Entity:
    """One kind of record from a source, landing in bronze table ``<source>_<name>``."""

    name: str
    key: str  # dotted path to the business key in the payload ("id", "properties.zone_id")
    updated_at: str | None = None  # dotted path to the change time (ISO 8601 or epoch seconds)
    pii: PiiSpec = field(default_factory=lambda: PiiSpec({}))
    description: str = ""
    files: str | None = None  # file sources: glob under the source's landing folder
    # File sources: one JSON object a line, read by ``FileSource.read`` (each record dated by its file's name
    # where it carries no change time), which lets bronze land a file a batch of lines at a time.
    json_lines: bool = False


@dataclass(frozen=True)
class Window:
    """The half-open change-time range an incremental extract asks for."""

    start: datetime
    end: datetime


@dataclass(slots=True)
class RawRecord:
    """A record as received: a parsed JSON object, or text (an XML element, a line that did not parse)."""

    payload: Any
    origin: str  # the request URL (without credentials) or the file it came from
    error: str | None = None  # why the record is malformed; it is still landed raw, and quarantined
    key: str | None = None  # set by the connector only where no path can find it
    updated_at: datetime | None = None
    partition_date: date | None = None  # a file's business date, where the record carries none


class SourceError(Exception):
    """A source failed in a way a retry does not fix; the message names the source."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


SalesKind = Literal["online", "store"]


class Source:
    """Base of every connector; subclasses register themselves by their ``name``."""

    name: ClassVar[str]
    system: ClassVar[str] = ""  # the business system behind it (Shopify, POS/ERP...)
    # A sales channel, named after its connector: "online" (orders shipped to buyers) or "store" (till sales).
    sells: ClassVar[SalesKind | None] = None
    entities: ClassVar[tuple[Entity, ...]]
    incremental: ClassVar[bool] = False  # API sources extract a change-time window
    # The source's own settings section, RETREASURE_<NAME>__<FIELD>: its URL, credentials, page size... A source
    # with nothing to configure keeps the empty section.
    settings_model: ClassVar[type[SourceSettings]] = SourceSettings
    registry: ClassVar[dict[str, type[Source]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Source.registry[cls.name] = cls
            declare_section(cls.name, cls.settings_model)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = self.configured(settings)
        self.stats = RequestStats()

    @classmethod
    def configured(cls, settings: Settings) -> SourceSettings:
        """This source's section of ``settings``, validated by its model (its secrets now known to the masker)."""
        return settings.source(cls.name, cls.settings_model)

    def http(self, base_url: str, headers: dict[str, str], **options: Any) -> HttpClient:
        """The shared client, configured from settings, counting into this source's stats."""
        h = self.settings.http
        return HttpClient(
            self.name,
            base_url,
            headers,
            timeout_s=h.timeout_s,
            max_retries=h.max_retries,
            backoff_base_s=h.backoff_base_s,
            backoff_max_s=h.backoff_max_s,
            retry_after_max_s=h.retry_after_max_s,
            stats=self.stats,
            **options,
        )

    def entity(self, name: str) -> Entity:
        return next(e for e in self.entities if e.name == name)

    def extract(self, entity: Entity, window: Window) -> Iterator[RawRecord]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileSource(Source):
    """A source whose records arrive as files dropped under ``<landing_dir>/<name>/``."""

    def folder(self) -> Path:
        return Path(self.settings.landing_dir) / self.name

    def files(self, entity: Entity) -> list[Path]:
        assert entity.files, f"{self.name}.{entity.name} declares no file pattern"
        return sorted(p for p in self.folder().glob(entity.files) if p.is_file())

    def read(self, entity: Entity, path: Path) -> Iterator[RawRecord]:
        """The file's records; JSON Lines entities are read here, any other format by the connector."""
        if not entity.json_lines:
            raise NotImplementedError
        from retreasure.connectors.files import file_date, json_lines, origin_of

        origin, day = origin_of(self, path), file_date(path)  # where a line without a readable time lands
        for payload, error in json_lines(path, self.settings.ingest.max_line_bytes):
            yield RawRecord(payload, origin, error=error, partition_date=day)


def load_sources() -> dict[str, type[Source]]:
    """Every connector module in this package, found by convention (one module or package per source)."""
    import retreasure.connectors as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in {"base", "files"}:
            importlib.import_module(f"{package.__name__}.{info.name}")
    return dict(sorted(Source.registry.items()))


def sales_channels(kind: SalesKind | None = None) -> list[str]:
    """The sales channels, every one or those of one kind: what the API and dashboards offer as filters."""
    return [name for name, source in load_sources().items() if source.sells and kind in (None, source.sells)]
