"""A lake on Azure storage, seen through delta-rs's own object store: what a local lake does with folders (find
its tables), done with the very credentials delta-rs writes with, so that no second client needs configuring."""

from __future__ import annotations

import os

import pyarrow.fs as pafs
from deltalake.fs import DeltaStorageHandler

# Where delta-rs sends a lake's requests when its storage options say `use_emulator` (Azurite); it reads only this
# variable for it (an `azure_storage_endpoint` option instead breaks MERGE against Azurite).
EMULATOR_URL_VARIABLE = "AZURITE_BLOB_STORAGE_URL"


def use_emulator(url: str | None) -> None:
    """Send this process's emulated lakes to ``url`` (Azurite's blob endpoint; None: the variable as it is, or
    delta-rs's default http://127.0.0.1:10000). One emulator per process: the variable is the process's."""
    if url is None:
        return
    current = os.environ.get(EMULATOR_URL_VARIABLE)
    if current is not None and current.rstrip("/") != url.rstrip("/"):
        raise ValueError(
            f"{EMULATOR_URL_VARIABLE} is {current}, and the storage settings name the emulator {url}: one "
            "process reaches one emulator"
        )
    os.environ[EMULATOR_URL_VARIABLE] = url


def filesystem(uri: str, storage_options: dict[str, str] | None) -> pafs.FileSystem:
    """The storage under ``uri`` as a pyarrow file system (paths relative to ``uri``), through delta-rs."""
    return pafs.PyFileSystem(DeltaStorageHandler(uri, storage_options))


def tables(uri: str, storage_options: dict[str, str] | None, layer: str | None = None) -> list[tuple[str, str]]:
    """(layer, name) of every folder ``<uri>/<layer>/<name>`` that holds a ``_delta_log``, sorted: two listings
    and one look per table, where a local lake globs."""
    storage = filesystem(uri, storage_options)
    layers = [layer] if layer else _folders(storage, "")
    candidates = [(found, name) for found in layers for name in _folders(storage, found)]
    logs = storage.get_file_info([f"{found}/{name}/_delta_log" for found, name in candidates])
    return sorted(pair for pair, log in zip(candidates, logs, strict=True) if log.type != pafs.FileType.NotFound)


def _folders(storage: pafs.FileSystem, path: str) -> list[str]:
    listing = storage.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
    return sorted(info.base_name for info in listing if info.type == pafs.FileType.Directory)
