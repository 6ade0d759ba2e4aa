"""``kallos trade``, ``kallos trade report``, ``kallos schedule`` and ``kallos status``.

Thin adapters over :mod:`kallos.trading`: parse options, load the config, open the store and the
venue, call one library function, print. Exit codes: 0 when the cycle traded, held, decided or
had nothing to do; 3 when a guard refused it (the message names the guard); 2 on bad input.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from kallos.cli.common import DataDirOpt, DbOpt, OutOpt, console, fail, parse_set
from kallos.cli.progress import RichProgress
from kallos.config import StudyConfig, load_config
from kallos.data import Store, default_database_url, ingest_data_dir, resolve_data_dir
from kallos.exceptions import KallosError
from kallos.pipeline.validate import validate_study

trade_app = typer.Typer(
    help="Trade the study's strategy: one cycle for the current period (paper by default).",
    invoke_without_command=True,
)

GUARD_EXIT = 3

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Study TOML with a [trading] section (unknown keys are errors)."),
]
ModeOpt = Annotated[
    str, typer.Option("--mode", help="paper (simulated, the default), sandbox (Binance testnet) or live.")
]
AccountOpt = Annotated[
    str | None,
    typer.Option("--account", help="Account name [default: trading.account, else the mode's name]."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Any config key, dotted: --set trading.max_turnover=0.8 (repeatable)."),
]


def register(app: typer.Typer) -> None:
    """Add ``trade`` (with ``trade report``), ``schedule`` and ``status`` to ``app``."""
    app.add_typer(trade_app, name="trade")
    app.command("schedule")(schedule_cmd)
    app.command("status")(status_cmd)


def _config(
    config: Path | None, set_: list[str] | None, account: str | None, extra: dict[str, Any]
) -> StudyConfig:
    overrides = parse_set(set_ or []) | extra
    if account:
        overrides["trading.account"] = account
    return validate_study(load_config(config, overrides))


def _store(out: Path, database_url: str | None, data_dir: Path | None = None) -> Store:
    store = Store(database_url or default_database_url(out))
    if data_dir is not None and store.is_empty():
        with RichProgress(console).stage(f"Importing {data_dir}", total=None):
            ingest_data_dir(store, resolve_data_dir(data_dir))
    return store


@trade_app.callback()
def trade_cmd(
    ctx: typer.Context,
    mode: ModeOpt = "paper",
    config: ConfigOpt = None,
    account: AccountOpt = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d"],
            help="Paper: run the cycle of this past decision close over the stored data, as of the next day.",
        ),
    ] = None,
    phase: Annotated[
        str, typer.Option(help="all; decide (record the orders, send nothing) or execute (send them).")
    ] = "all",
    no_ingest: Annotated[
        bool, typer.Option("--no-ingest", help="Do not fetch missing days first (trade the stored data).")
    ] = False,
    confirm_live: Annotated[
        bool, typer.Option("--confirm-live", help="Required with --mode live: real orders, real money.")
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Sandbox only: the venue's REST root (a stub or a testnet mirror).")
    ] = None,
    set_: SetOpt = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run one trading cycle for the current period: reconcile, decide, size, guard, execute, record.

    The same command run again sends nothing (one set of orders per period, client order ids
    derived from account, period and coin). Live mode refuses to start without --confirm-live and
    the API keys in the environment, and prints every order before sending it.
    """
    if ctx.invoked_subcommand is not None:
        return
    from kallos.trading import Trader, TradingError
    from kallos.trading.binance import open_venue

    try:
        if mode == "live" and not confirm_live:
            raise TradingError("--mode live sends real orders: add --confirm-live (and set the API keys)")
        cfg = _config(config, set_, account, {"trading.ingest": []} if no_ingest or as_of else {})
        store = _store(out, database_url, data_dir)
        venue = open_venue(mode, cfg, base_url=base_url)
        printer = Console(width=160)

        def show(lines: list[str]) -> None:
            printer.print(f"[bold]{'Sending' if mode != 'paper' else 'Filling (paper)'}:[/]")
            for line in lines:
                printer.print(f"  {line}", markup=False, highlight=False)

        trader = Trader(
            store, cfg, venue, mode=mode, out_dir=out, progress=RichProgress(console), on_plan=show
        )
        try:
            result = trader.run(as_of=pd.Timestamp(as_of.date()) if as_of else None, phase=phase)
        finally:
            venue.close()
    except KallosError as err:
        raise fail(err) from None
    _print_result(result, trader)
    if result.status == "refused":
        raise typer.Exit(code=GUARD_EXIT)


def _print_result(result: Any, trader: Any) -> None:
    out = Console(width=160)
    period = result.period.date() if result.period is not None else "–"
    colour = {"refused": "red", "done": "green"}.get(result.status, "cyan")
    out.print(
        f"[bold]{result.account}[/] ({result.mode}) period {period}: [{colour}]{result.status}[/]"
        + (f" — guard [bold]{result.guard}[/]" if result.guard else ""),
        highlight=False,
    )
    if result.message:
        out.print(f"  {result.message}", markup=False, highlight=False)
    for note in result.notes:
        out.print(f"  note: {note}", markup=False, highlight=False)
    if len(result.orders):
        table = Table(title=f"Orders of {period}")
        for col in (
            "client order id",
            "side",
            "symbol",
            "target",
            "quantity",
            "filled",
            "price",
            "fee",
            "status",
        ):
            table.add_column(
                col, justify="left" if col in ("client order id", "side", "symbol", "status") else "right"
            )
        for o in result.orders.itertuples(index=False):
            avg = "–" if pd.isna(o.average_price) else f"{o.average_price:.6g}"
            table.add_row(
                o.client_order_id,
                o.side,
                o.symbol,
                f"{o.target_weight:.2%}",
                f"{o.quantity:.8g}",
                f"{o.filled_quantity:.8g}",
                avg,
                f"{o.fee_quote:.4f}",
                o.status + (f" ({o.reason})" if o.reason else ""),
            )
        out.print(table)
    if result.nav is not None:
        after = f", after trading {result.nav_after:,.2f}" if result.nav_after is not None else ""
        out.print(f"  value {result.nav:,.2f} {trader.trading.quote}{after}; {result.sent} order(s) sent")


@trade_app.command("report")
def trade_report_cmd(
    mode: ModeOpt = "paper",
    config: ConfigOpt = None,
    account: AccountOpt = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Where to write the page [default: <out>/trading/<account>.html]."),
    ] = None,
    set_: SetOpt = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
) -> None:
    """Write the parity report: the account beside a shadow backtest of the same strategy and weeks."""
    from kallos.forecast.model_store import ModelRegistry
    from kallos.trading.parity import compute_parity
    from kallos.trading.report import write_trade_report

    try:
        cfg = _config(config, set_, account, {})
        name = cfg.trading.mode_account(mode)
        store = _store(out, database_url)
        parity = compute_parity(
            store,
            name,
            registry=ModelRegistry.for_store(store, out, cfg.compute.artifact_dir),
            progress=RichProgress(console),
        )
        path = write_trade_report(html or out / "trading" / f"{name}.html", parity)
    except KallosError as err:
        raise fail(err) from None
    printer = Console()
    printer.print(
        f"{name}: {len(parity.periods)} decision close(s); largest difference from the backtest "
        f"{parity.max_abs_difference:.3g} {parity.account.quote} "
        f"({parity.max_rel_difference:.3g} of the initial cash)",
        highlight=False,
    )
    printer.print(f"Report: [bold]{path}[/]")


def schedule_cmd(
    mode: ModeOpt = "paper",
    config: ConfigOpt = None,
    account: AccountOpt = None,
    split: Annotated[
        bool,
        typer.Option(
            help="Decide at trading.cycle_time, send at trading.execute_time (the Saturday/Sunday split)."
        ),
    ] = False,
    run: Annotated[
        bool, typer.Option("--run", help="Run the schedule in this process (APScheduler, UTC).")
    ] = False,
    set_: SetOpt = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
) -> None:
    """Print a crontab matching the backtest's rebalance calendar, or run it in process with --run."""
    from kallos.trading.schedule import cron_entries, crontab_text

    try:
        cfg = _config(config, set_, account, {})
        command = ["kallos", "trade", "--mode", mode, "--out", str(out.resolve())]
        if config is not None:
            command += ["--config", str(config.resolve())]
        if account:
            command += ["--account", account]
        if mode == "live":
            command.append("--confirm-live")
        entries = cron_entries(cfg, command, split=split)
    except KallosError as err:
        raise fail(err) from None
    if not run:
        sys.stdout.write(crontab_text(cfg, entries))
        return
    _run_schedule(cfg, entries, mode, out, database_url)


def _run_schedule(cfg: StudyConfig, entries: list, mode: str, out: Path, database_url: str | None) -> None:
    from kallos.data.locks import store_lock
    from kallos.trading import Trader
    from kallos.trading.binance import open_venue
    from kallos.trading.schedule import build_scheduler

    try:
        store = _store(out, database_url)
        name = cfg.trading.mode_account(mode)
        lock = store_lock(store, name, "trade", timeout=0)
        lock.__enter__()
    except KallosError as err:
        raise fail(err) from None

    def run_cycle(phase: str) -> None:
        venue = open_venue(mode, cfg)
        try:
            result = Trader(store, cfg, venue, mode=mode, out_dir=out).run(phase=phase, lock_held=True)
            console.print(
                f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC {name}: {result.status} {result.message}"
            )
        except KallosError as err:
            console.print(f"[bold red]cycle failed:[/] {err}", highlight=False)
        finally:
            venue.close()

    scheduler = build_scheduler(entries, run_cycle)
    console.print(f"Holding the lock of account {name!r}; cycles at:")
    for e in entries:
        console.print(f"  {e.line()}  # {e.phase}", highlight=False)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lock.__exit__(None, None, None)


def status_cmd(
    mode: ModeOpt = "paper",
    config: ConfigOpt = None,
    account: AccountOpt = None,
    set_: SetOpt = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
) -> None:
    """Show the account, its last cycle, the next one and any guard that fired."""
    from kallos.trading.status import account_status

    try:
        cfg = _config(config, set_, account, {})
        name = cfg.trading.mode_account(mode)
        kill = Path(cfg.trading.kill_switch)
        kill = kill if kill.is_absolute() else out / kill
        s = account_status(_store(out, database_url), cfg, name, kill, dt.datetime.now(dt.UTC))
    except KallosError as err:
        raise fail(err) from None
    printer = Console()
    if s.account is None:
        printer.print(f"account {name!r}: not opened yet (the first `kallos trade --mode {mode}` opens it)")
    else:
        a = s.account
        first = a.first_period.date() if a.first_period is not None else "–"
        printer.print(
            f"[bold]{a.account_id}[/] ({a.mode}, {a.venue}) trades [bold]{a.strategy}[/] since {first}; "
            f"value {s.nav:,.2f} {a.quote} at {s.nav_date.date() if s.nav_date is not None else '–'}"
            if s.nav is not None
            else f"[bold]{a.account_id}[/] ({a.mode}) trades {a.strategy}; no cycle yet",
            highlight=False,
        )
        table = Table(title="Holdings (at the last decision close)")
        for col in ("asset", "quantity", "price", "value"):
            table.add_column(col, justify="left" if col == "asset" else "right")
        for p in s.positions.itertuples(index=False):
            table.add_row(p.asset, f"{p.quantity:.8g}", f"{p.price:.6g}", f"{p.value:,.2f}")
        printer.print(table)
        if s.last_cycle:
            c = s.last_cycle
            printer.print(
                f"last cycle: {pd.Timestamp(c['period']).date()} {c['status']}"
                + (f" (guard {c['guard']}: {c['message']})" if c.get("guard") else ""),
                highlight=False,
            )
        if s.last_guard:
            g = s.last_guard
            printer.print(
                f"last guard fired: {g['guard']} at {pd.Timestamp(g['period']).date()}: {g['message']}",
                highlight=False,
            )
        if s.inconsistent:
            printer.print(f"[red]ledger inconsistent[/]: positions minus fills {s.inconsistent}")
    printer.print(f"next cycle: {s.next_run:%Y-%m-%d %H:%M} UTC for the close of {s.next_period.date()}")
    path, exists = s.kill_switch
    printer.print(f"kill switch {path}: {'[red]PRESENT: trading stopped[/]' if exists else 'absent'}")
    if s.locked:
        printer.print("a cycle or `kallos schedule --run` holds the account's lock now")
