"""The landing sensor: new files under the landing folder request a run of the file sources that received them.

The cursor is the newest (mtime, path) seen, so a file is asked for once; a file rewritten later gets a newer
mtime and is asked for again (the ingest lands a file by path and content hash, so a file caught while still
being written is landed again once complete). A file that arrives with an mtime older than the cursor (copied
with its original time) is not seen here: the hourly ingest, which reads every new file, picks it up.
"""

import json
from typing import TYPE_CHECKING

import dagster as dg

from retreasure.connectors.base import FileSource
from retreasure.pipeline.assets import source_keys
from retreasure.pipeline.resources import RetreasureResource
from retreasure.settings import Settings

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

Mark = tuple[int, str]  # (mtime in ns, path)
SENSOR = "landing_sensor"


def newest_files(file_sources: dict[str, type[FileSource]], settings: Settings, after: Mark | None) -> dict[str, Mark]:
    """Per source, the newest mark of its files newer than ``after``; sources with nothing new are absent."""
    found: dict[str, Mark] = {}
    for name, cls in file_sources.items():
        source = cls(settings)
        try:
            for entity in cls.entities:
                for path in source.files(entity):
                    try:
                        mark = (path.stat().st_mtime_ns, path.as_posix())
                    except FileNotFoundError:  # removed between the listing and the stat
                        continue
                    if (after is None or mark > after) and (name not in found or mark > found[name]):
                        found[name] = mark
        finally:
            source.close()
    return found


def landing_sensor(
    file_sources: dict[str, type[FileSource]], job: "UnresolvedAssetJobDefinition"
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR,
        job=job,
        minimum_interval_seconds=30,
        description="Ingest the file sources that received new files in the landing folder.",
    )
    def landing(context: dg.SensorEvaluationContext, retreasure: RetreasureResource) -> dg.SensorResult | dg.SkipReason:
        after = _parse(context.cursor)
        fresh = newest_files(file_sources, retreasure.settings(), after)
        if not fresh:
            return dg.SkipReason("no new files in the landing folder")
        newest = max(fresh.values())
        keys = [key for name in sorted(fresh) for key in source_keys(name, file_sources[name])]
        request = dg.RunRequest(
            run_key=f"landing:{newest[0]}:{newest[1]}",
            asset_selection=keys,
            tags={"retreasure/trigger": "landing", "retreasure/sources": ",".join(sorted(fresh))},
        )
        return dg.SensorResult(run_requests=[request], cursor=json.dumps(list(newest)))

    return landing


def _parse(cursor: str | None) -> Mark | None:
    if not cursor:
        return None
    mtime, path = json.loads(cursor)
    return int(mtime), str(path)
