"""Staging the simulated business for a run: its truth on disk, its file drops, its servers on loopback."""

from __future__ import annotations

import importlib
import pkgutil
import secrets
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from retreasure.redact import register_secret
from retreasure.settings import Settings
from retreasure_sim.business import simulate
from retreasure_sim.config import SimConfig
from retreasure_sim.model import Truth
from retreasure_sim.servers.base import FakeServer

# Local runs get a Shopify Plus shop (a 10,000-point bucket restoring 1,000 points/s): the default 50/s would
# make a laptop demo wait minutes for a bucket that exists to protect a shared service.
SERVER_OPTIONS: dict[str, dict[str, object]] = {"shopify": {"bucket_size": 10_000.0, "restore_rate": 1000.0}}


# What the fake servers read of the truth (the web events, by far the largest table, are not among them).
SERVED_TABLES = (
    "orders",
    "customers",
    "products",
    "fulfillments",
    "refunds",
    "faults",
    "inventory_movements",
    "fx_rates",
    "stores",
)


def build(config: SimConfig, sim_dir: Path, landing: Path, formats: Iterable[str] | None = None) -> Truth:
    """Simulate, drop the files a real shop would receive, and keep the truth (with every fault) on disk."""
    truth = simulate(config)
    drop_files(truth, config, sim_dir, landing, formats)
    return truth


def drop_files(
    truth: Truth, config: SimConfig, sim_dir: Path, landing: Path, formats: Iterable[str] | None = None
) -> None:
    """Drop the files of ``formats`` (``files.FORMATS``, all by default) and keep the truth, with their faults,
    on disk: the demo drops the web files only when its web events cannot go through a broker."""
    from retreasure_sim.files import render_files

    truth["faults"].extend(render_files(truth, landing, config.faults, config.seed, formats))
    truth.save(sim_dir / "truth")


def server_modules() -> list[ModuleType]:
    """Each fake marketplace lives in its own module beside ``base``, found by convention."""
    import retreasure_sim.servers as package

    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if info.name != "base"
    ]


def server_classes() -> dict[str, type[FakeServer]]:
    found: dict[str, type[FakeServer]] = {}
    for module in server_modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, FakeServer) and value.__module__ == module.__name__:
                found[value.name] = value
    return dict(sorted(found.items()))


def expected_counts(truth: Truth) -> dict[str, int]:
    """Distinct well-formed records each bronze table should hold after a complete ingest."""
    from retreasure_sim import files

    counts: dict[str, int] = dict(files.expected_counts(truth))
    for module in server_modules():
        counts.update(module.expected_counts(truth))
    return dict(sorted(counts.items()))


@dataclass
class Credentials:
    """Throwaway credentials for one run of the fake servers; registered so that logs mask them."""

    shopify_token: str
    ebay_token: str
    etsy_key: str
    etsy_token: str

    @classmethod
    def fresh(cls) -> Credentials:
        made = cls(*(f"sim-{secrets.token_urlsafe(18)}" for _ in range(4)))
        for value in vars(made).values():
            register_secret(value)
        return made


@contextmanager
def running_servers(
    truth: Truth, config: SimConfig, credentials: Credentials, settings: Settings
) -> Iterator[tuple[Settings, dict[str, FakeServer]]]:
    """Start every fake marketplace on a free loopback port; yield settings that point the connectors at them."""
    given = {
        "shopify": {"access_token": credentials.shopify_token},
        "ebay": {"access_token": credentials.ebay_token},
        "etsy": {"api_key": credentials.etsy_key, "access_token": credentials.etsy_token},
    }
    with ExitStack() as stack:
        servers: dict[str, FakeServer] = {}
        for name, cls in server_classes().items():
            server = cls(
                truth, given.get(name, {}), faults=config.faults, seed=config.seed, **SERVER_OPTIONS.get(name, {})
            )
            servers[name] = stack.enter_context(server)
        served = settings
        for name, server in servers.items():
            # Each connector reads its section (the tokens become SecretStr, known to the masker) when it is made.
            served = served.with_source(name, base_url=server.url, **given.get(name, {}))
        yield served, servers
