"""`fieldsync customers import|show`: customer master data (P1).

Other modules add subcommands (publish, pull) to `customers_group`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fieldsync.base.i18n import N_, _
from fieldsync.cli.base import AppContext, echo, pass_app, progress_bar
from fieldsync.cli.tree import derive_after
from fieldsync.errors import BadInput
from fieldsync.masterdata import importer
from fieldsync.masterdata.catalog import IndexedStore
from fieldsync.masterdata.store import (
    FIELD_LABELS,
    FIELDS,
    INDEX_STEP,
    STORE_STEP,
    CustomerStore,
    ImportSummary,
)


@click.group("customers")
def customers_group() -> None:
    """Customer master data: import the marketing system's export, show a record."""


MISSING_SHOWN = 10  # accounts missing from the file that the summary names


@customers_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read and check the file and show what would change; write nothing.")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="Read column COLUMN as FIELD (account_no, name, meter_no, capacity_kva, address, line, "
                   "voltage, or their Chinese names), or 'COLUMN=ignore'. Repeatable.")
@click.option("--replace", is_flag=True,
              help="The file is the whole master data: blank the fields it lacks, remove the customers it lacks.")
@click.option("--json", "as_json", is_flag=True, help="Print the mapping and the summary as one JSON object.")
@pass_app
def import_command(app: AppContext, file: Path, dry_run: bool, maps: tuple[str, ...], replace: bool,
                   as_json: bool) -> None:
    """Import customers from FILE (CSV in UTF-8/GBK/GB18030, or XLSX).

    \b
    Headers may be Chinese or English (户号/account_no, 户名/name, 表计局号/meter_no,
    合同容量/capacity_kva, 用电地址/address, 线路名称/line, 供电电压等级/voltage and
    synonyms such as 电能表资产号, 电表号, 线路); title rows above the header are skipped.
    Every column is listed with the field it fills, or "ignored"; name others with --map.
    All or nothing: if any row is bad, nothing is imported and every bad row is listed.
    Re-importing updates customers by account no., and only the fields the file has:
    a missing column or customer is kept (--replace blanks or removes it).
    """
    if not file.is_file():
        raise BadInput(_("{file}: no such file; give the path of the CSV or XLSX export").format(file=file))
    cfg = app.config
    reading = importer.Reading(file, importer.column_map(maps))
    if not as_json:
        for line in mapping_lines(reading.parsed, replace):
            echo(app, line)
    with progress_bar(app, file.stat().st_size, _("reading")) as bar:
        parsed = reading.read(progress=bar.update)
    store = IndexedStore(cfg.state_dir)
    if dry_run:
        summary = store.preview(parsed.records, parsed.fields, replace=replace)
    else:
        labels = {STORE_STEP: _("writing the store"), INDEX_STEP: _("building the search index")}
        with progress_bar(app, len(labels), _("saving")) as bar:
            def step(name: str) -> None:
                if bar.label in labels.values():
                    bar.update(1)  # the phase before is done
                bar.label = labels[name]
                bar.render_progress()

            summary = store.merge(parsed.records, str(file), step=step, fields=parsed.fields, replace=replace)
            bar.update(1)
        if cfg.root.is_dir():  # customer.yaml of open customers and the query page follow the import
            derive_after(app, [], master_data_changed=True)
    if as_json:
        click.echo(json.dumps(summary_json(parsed, summary, dry_run, replace), ensure_ascii=False, indent=2))
        return
    for line in summary_lines(parsed, summary, dry_run, replace):
        echo(app, line)


ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": N_("UTF-8 with BOM"), "gb18030": "GBK/GB18030"}


def mapping_lines(parsed: importer.Parsed, replace: bool) -> list[str]:
    """How the file is read: encoding, title rows skipped, each column -> field or ignored."""
    encoding = _(ENCODING_NAMES.get(parsed.encoding, parsed.encoding))
    lines = [_("{file}: encoding {encoding}, header on line {line}").format(
        file=parsed.path.name, encoding=encoding, line=parsed.header_line)]
    for line, text in parsed.skipped:
        lines.append(_("  line {line} skipped (above the header): {text}").format(line=line, text=text))
    width = max(len(c.title) for c in parsed.columns)
    for column in parsed.columns:
        target = (f"{FIELD_LABELS[column.field]} ({column.field})" if column.field else _("ignored"))
        how = " (--map)" if column.by_map else ""
        title = column.title or _("(column {number})").format(number=column.index + 1)
        lines.append(f"  {title:\u3000<{width}} -> {target}{how}")
    kept = [f"{FIELD_LABELS[f]} ({f})" for f in FIELDS if f not in parsed.fields]
    if kept:
        fate = _("blanked (--replace)") if replace else _("kept as they are")
        lines.append(_("  not in the file, {fate}: {fields}").format(fate=fate, fields=", ".join(kept)))
    return lines


def summary_lines(parsed: importer.Parsed, summary: ImportSummary, dry_run: bool, replace: bool) -> list[str]:
    counts = _("{added} added, {changed} changed, {unchanged} unchanged ({total} in total)").format(
        added=summary.added, changed=summary.changed, unchanged=summary.unchanged, total=summary.total)
    if dry_run:
        lines = [_("dry run, nothing written: {records} customers in {file} would give {counts}").format(
            records=len(parsed.records), file=parsed.path.name, counts=counts)]
    else:
        lines = [_("imported {records} customers from {file}: {counts}").format(
            records=len(parsed.records), file=parsed.path.name, counts=counts)]
    if parsed.cleaned:
        tidied = _(", ").join(_("{count} with {kind}").format(count=count, kind=_(kind))
                              for kind, count in parsed.cleaned.items())
        lines.append(_("cells tidied: {tidied}").format(tidied=tidied))
    for change in summary.changes:
        fields = "; ".join(f"{FIELD_LABELS[key]} {_shown(old)} -> {_shown(new)}" for key, old, new in change.fields)
        lines.append(_("  changed {account}: {fields}").format(account=change.account_no, fields=fields))
    if summary.changed > len(summary.changes):
        lines.append(_("  ... and {count} more changed").format(count=summary.changed - len(summary.changes)))
    if summary.missing:
        fate = _("removed (--replace)") if replace else _("kept (--replace would remove them)")
        named = ", ".join(summary.missing[:MISSING_SHOWN])
        more = _(" and {count} more").format(count=len(summary.missing) - MISSING_SHOWN) \
            if len(summary.missing) > MISSING_SHOWN else ""
        lines.append(_("{count} customers in the master data are not in the file, {fate}: {named}{more}").format(
            count=len(summary.missing), fate=fate, named=named, more=more))
    return lines


def summary_json(parsed: importer.Parsed, summary: ImportSummary, dry_run: bool, replace: bool) -> dict:
    return {
        "file": str(parsed.path), "encoding": parsed.encoding, "header_line": parsed.header_line,
        "skipped_rows": [{"line": line, "text": text} for line, text in parsed.skipped],
        "columns": [{"column": c.index + 1, "title": c.title, "field": c.field, "by_map": c.by_map}
                    for c in parsed.columns],
        "fields": list(parsed.fields), "cleaned": parsed.cleaned, "dry_run": dry_run, "replace": replace,
        "records": len(parsed.records), "added": summary.added, "changed": summary.changed,
        "unchanged": summary.unchanged, "total": summary.total,
        "missing": list(summary.missing), "removed": summary.removed,
        "changes": [{"account_no": c.account_no,
                     "fields": {key: {"old": old, "new": new} for key, old, new in c.fields}}
                    for c in summary.changes],
    }


def _shown(value: object) -> str:
    return _("(empty)") if value in (None, "") else repr(str(value)) if " " in str(value) else str(value)


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
