"""`fieldsync customers import|show`: customer master data (P1).

Other modules add subcommands (publish, pull) to `customers_group`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fieldsync.cli.base import AppContext, echo, pass_app
from fieldsync.cli.tree import derive_after
from fieldsync.errors import BadInput
from fieldsync.masterdata import importer
from fieldsync.masterdata.catalog import IndexedStore
from fieldsync.masterdata.store import FIELD_LABELS, FIELDS, INDEX_STEP, STORE_STEP, CustomerStore


@click.group("customers")
def customers_group() -> None:
    """Customer master data: import the marketing system's export, show a record."""


@customers_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def import_command(app: AppContext, file: Path) -> None:
    """Import customers from FILE (CSV in UTF-8/GBK/GB18030, or XLSX).

    \b
    Headers may be Chinese or English (户号/account_no, 户名/name, 表计局号/meter_no,
    合同容量/capacity_kva, 用电地址/address, 线路名称/line, 供电电压等级/voltage).
    All or nothing: if any row is bad, nothing is imported and every bad row is listed.
    Re-importing updates customers by account no.
    """
    if not file.is_file():
        raise BadInput(f"{file}: no such file; give the path of the CSV or XLSX export")
    cfg = app.config
    total = file.stat().st_size
    stderr = sys.stderr
    # The bars only make sense on a terminal; scripts get the summary line alone.
    hidden = app.quiet or not stderr.isatty()
    with click.progressbar(length=total, label="reading", file=stderr, show_percent=True,
                           show_eta=True, hidden=hidden) as bar:
        records = importer.parse(file, progress=bar.update)
    labels = {STORE_STEP: "writing the store", INDEX_STEP: "building the search index"}
    with click.progressbar(length=len(labels), label="saving", file=stderr, hidden=hidden) as bar:
        def step(name: str) -> None:
            if bar.label != "saving":
                bar.update(1)  # the phase before is done
            bar.label = labels[name]
            bar.render_progress()

        summary = IndexedStore(cfg.state_dir).merge(records, str(file), step=step)
        bar.update(1)
    if cfg.root.is_dir():  # customer.yaml of open customers and the query page follow the import
        derive_after(app, [], master_data_changed=True)
    echo(app, f"imported {len(records)} customers from {file.name}: {summary.added} added, "
              f"{summary.changed} changed, {summary.unchanged} unchanged ({summary.total} in total)")


@customers_group.command("show")
@click.argument("account")
@pass_app
def show_command(app: AppContext, account: str) -> None:
    """Show one customer's master data by account no."""
    record = CustomerStore(app.config.state_dir).get(account)
    width = max(len(FIELD_LABELS[f]) for f in FIELDS)
    for field in FIELDS:
        value = record.get(field)
        click.echo(f"{FIELD_LABELS[field]:\u3000<{width}}  {'' if value is None else value}")


COMMANDS = [customers_group]
