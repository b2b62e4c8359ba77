"""The options every simulator command shares: which business to simulate, and how faulty."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from retreasure_sim.config import Faults, SimConfig

Seed = Annotated[int, typer.Option(help="Random seed: the same seed gives the same business.")]
Start = Annotated[str, typer.Option(help="First simulated day (YYYY-MM-DD).")]
Scale = Annotated[float, typer.Option(help="Volume multiplier: 1.0 is ~20k orders a year.")]
WithFaults = Annotated[bool, typer.Option("--faults/--no-faults", help="Inject duplicates, 429s, broken records...")]


def sim_config(seed: int, start: str, days: int, scale: float, faults: bool) -> SimConfig:
    return SimConfig(seed, date.fromisoformat(start), days, scale, Faults.on() if faults else Faults())
