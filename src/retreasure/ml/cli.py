"""`retreasure ml forecast` and `retreasure ml recommend`: train, judge against a baseline and (when better) promote
the demand forecast and the recommendations."""

from __future__ import annotations

from typing import Annotated

import typer

from retreasure.exitcodes import ExitCode

ml_app = typer.Typer(help="Machine learning on gold: demand forecasts and recommendations.", no_args_is_help=True)


@ml_app.command()
def forecast(
    model: Annotated[str, typer.Option(help="AutoETS, AutoARIMA or HistoricAverage.")] = "AutoETS",
    horizon: Annotated[int, typer.Option(min=1, max=52, help="Weeks to forecast.")] = 13,
    planned_uplift: Annotated[float, typer.Option(min=0.0, help="Scale every forecast (a what-if); 1 for none.")] = 1.0,
) -> None:
    """Refresh the weekly features, backtest the model against seasonal-naive, forecast the next weeks; exit 3
    (partial) when the model lost to the baseline and the served forecast was kept."""
    from retreasure.ml.forecast import MODELS, ForecastParams, run_forecast, write_features

    if model not in MODELS:
        typer.echo(f"unknown model {model!r}: one of {', '.join(MODELS)}", err=True)
        raise typer.Exit(ExitCode.USAGE)
    from retreasure.lake import Lake  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.settings import get_settings

    lake = Lake.from_settings(get_settings())
    try:
        write_features(lake)
        result = run_forecast(lake, ForecastParams(horizon=horizon, model=model, planned_uplift=planned_uplift))  # type: ignore[arg-type]
    except ValueError as exc:
        typer.echo(f"forecast failed: {exc}", err=True)
        raise typer.Exit(ExitCode.FAILED) from None
    typer.echo(f"run {result.run.run_id}: {result.summary()}")
    if not result.promoted:
        raise typer.Exit(ExitCode.PARTIAL)


@ml_app.command()
def recommend(
    force: Annotated[bool, typer.Option(help="Publish even when the run does not beat popularity.")] = False,
) -> None:
    """Evaluate on the last weeks against popularity, train on all history, score every customer and listing;
    exit 3 (partial) when the run lost to popularity and the served recommendations were kept."""
    from retreasure.lake import Lake  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.ml import reco_run
    from retreasure.settings import get_settings

    lake = Lake.from_settings(get_settings())
    try:
        result = reco_run.run(lake, force=force)
    except ValueError as exc:
        typer.echo(f"recommendations failed: {exc}", err=True)
        raise typer.Exit(ExitCode.FAILED) from None
    published = result.promoted or force
    typer.echo(
        f"run {result.run_id}: {result.judged()}; {result.recommendations} recommendations, "
        f"{result.similar} similar items; "
        f"{'published' if published else 'NOT published: popularity did better'}"
    )
    if not published:
        raise typer.Exit(ExitCode.PARTIAL)
