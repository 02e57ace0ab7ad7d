"""`fieldsync find`: search customers by any of the seven fields, alone or combined (P2)."""

from __future__ import annotations

import json
import unicodedata

import click

from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, pass_app
from fieldsync.errors import UnknownCustomer
from fieldsync.masterdata import search
from fieldsync.masterdata.store import FIELD_LABELS, FIELDS, CustomerStore

MAX_CELL = 40  # terminal columns a table cell may take
RANK_LABELS = {search.EXACT: "exact", search.PREFIX: "prefix", search.SUBSTRING: "substring"}


def _width(text: str) -> int:
    # CJK characters take two columns in a terminal.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _cut(text: str, width: int = MAX_CELL) -> str:
    """`text` in at most `width` terminal columns, '…' where it was cut: one long name must not
    pad the whole table (--json has every value in full)."""
    if _width(text) <= width:
        return text
    out, used = [], 1
    for char in text:
        used += _width(char)
        if used > width:
            break
        out.append(char)
    return "".join(out) + "…"


@click.command("find")
@click.argument("text", nargs=-1)
@click.option("--account", "account_no", metavar="A", help="户号 contains A (digits anywhere).")
@click.option("--name", metavar="N", help="户名 contains every word of N, or its pinyin (hzmm, hangzhou).")
@click.option("--meter", "meter_no", metavar="M", help="表计局号 contains M.")
@click.option("--capacity", "capacity_kva", metavar="C", multiple=True,
              help="合同容量: N, >=N, <=N, >N, <N or A-B; repeated bounds all apply.")
@click.option("--address", metavar="S", help="用电地址 contains S, or its pinyin.")
@click.option("--line", metavar="L", help="线路名称 contains L, or its pinyin.")
@click.option("--voltage", metavar="V", help="供电电压等级, the level: 10kV = 10 KV = 10千伏 (never 110kV).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0),
              help="At most this many results (0: all).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON: {total, total_exact, results: [{rank, ...fields}]}.")
@pass_app
def find_command(app: AppContext, text: tuple[str, ...], limit: int, as_json: bool,
                 **fields: str | tuple[str, ...] | None) -> None:
    """Find customers: every word of TEXT in some field, and every given field option (AND).

    \b
    Case, full-width/half-width, whitespace and NFKC forms do not matter; Chinese fields
    also match pinyin initials (a run: hzmm, jx) and full pinyin (docs/search.md).
    Best first: exact, then prefix, then substring matches, each by account no. Only the
    rows shown are ranked; for a very frequent phrase the count is then "about" (--limit 0
    reads every match and counts exactly).
    """
    state_dir = app.config.state_dir
    if not CustomerStore(state_dir).exists():
        raise UnknownCustomer(_("no master data yet; run 'fieldsync customers import FILE' "
                                "(or 'fieldsync customers pull') first"))
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items() if v}
    results = search.find(state_dir, " ".join(text), given, limit or None)
    if as_json:
        click.echo(json.dumps({"total": results.total, "total_exact": results.exact, "results": [
            {"rank": RANK_LABELS[h.rank], **h.record} for h in results.hits]}, ensure_ascii=False))
        return
    if not results.hits:
        echo(app, _("no customer matches"))
        return
    rows = [[FIELD_LABELS[f] for f in FIELDS]]
    rows += [["" if h.record[f] is None else _cut(str(h.record[f])) for f in FIELDS] for h in results.hits]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(FIELDS))]
    for row in rows:
        click.echo("  ".join(_pad(cell, w) for cell, w in zip(row, widths)).rstrip())
    shown = len(results.hits)
    if not results.exact:  # a frequent phrase: only the rows shown were read (search.Results)
        echo(app, _("about {total} customers, the first {shown} shown (--limit 0 shows all and an exact count)").format(
            total=results.total, shown=shown))
    elif shown < results.total:
        echo(app, _("{total} customers, the first {shown} shown (--limit 0 shows all)").format(
            total=results.total, shown=shown))
    else:
        echo(app, _("{total} customers").format(total=results.total))


COMMANDS = [find_command]
