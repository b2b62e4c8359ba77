"""Every table machine learning writes and what each is made from: the data dictionary's ML section (each
table's meaning and columns come from its contract, ``ml/contracts/<name>.yml``)."""

from __future__ import annotations

from retreasure.contracts.model import Contract
from retreasure.lake.store import TableRef
from retreasure.ml import forecast, reco_data, reco_run, runs

# table -> the tables it is made from
READS: dict[TableRef, tuple[TableRef, ...]] = {
    forecast.FEATURES: (forecast.SALES,),
    forecast.BACKTEST: (forecast.FEATURES,),
    forecast.FORECAST: (forecast.FEATURES,),
    forecast.SOURCING: (forecast.FORECAST,),
    reco_run.EVAL: reco_data.INPUTS,
    reco_run.RECOMMENDATIONS: reco_data.INPUTS,
    reco_run.SIMILAR: reco_data.INPUTS,
    reco_run.AFFINITY: reco_data.INPUTS,
    runs.ML_RUNS: (),
}


def documented_tables() -> list[tuple[TableRef, Contract, tuple[TableRef, ...]]]:
    """Each ML table with its contract and inputs, in name order: the data dictionary's ML section."""
    from retreasure.ml.tables import contract

    return [(ref, contract(ref), READS[ref]) for ref in sorted(READS, key=str)]
