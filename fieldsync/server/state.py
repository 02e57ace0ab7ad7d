"""The index builder's cache: one SQLite file under SERVER/.fieldsync/server-index/.

It remembers each customer's and visit's stamp and the summary the pages need, so a rebuild
reads only what changed and renders the root and customer pages from the cache. It is only a
cache: deleting it costs one full rebuild. SQLite (not pickle) because the share is writable
by inspectors' accounts, and a cache must never be able to run code.

Visits are ordered by `created_utc`, the instant in UTC: created_at keeps each tablet's own
offset, and as text "…T11:00+08:00" sorts after "…T04:00+00:00" although it happened first.
A cache from before the column gets it, filled from created_at, when it is opened.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from pathlib import Path

from fieldsync.base import clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    folder TEXT PRIMARY KEY, stamp TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS visits (
    rel TEXT PRIMARY KEY, customer TEXT NOT NULL, stamp TEXT NOT NULL,
    created_at TEXT NOT NULL, inspector TEXT NOT NULL, device TEXT NOT NULL,
    photos INTEGER NOT NULL, summary TEXT NOT NULL, created_utc TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS visits_customer ON visits (customer);
DROP INDEX IF EXISTS visits_created;
DROP TABLE IF EXISTS folders;
CREATE TABLE IF NOT EXISTS folder_stamps (
    top TEXT NOT NULL, level INTEGER NOT NULL, paths TEXT NOT NULL, mtimes BLOB NOT NULL,
    inodes BLOB NOT NULL, PRIMARY KEY (top, level));
"""
# After _add_created_utc: a cache from before the column has none to index until then.
INDEXES = "CREATE INDEX IF NOT EXISTS visits_utc ON visits (created_utc);"
# folder_stamps.level: which runs stat the folders of a row (see scan.py's module docstring).
EVERY_RUN, DEEP_CHECK = 0, 1


class IndexState:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        # WAL keeps a reader (a second `server index` or the report) from blocking the writer.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._add_created_utc()
        self.db.executescript(INDEXES)

    def _add_created_utc(self) -> None:
        """Give a cache written before created_utc the column, filled from its created_at."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(visits)")}
        if "created_utc" in columns:
            return
        try:
            self.db.execute("ALTER TABLE visits ADD COLUMN created_utc TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError:  # another run opening the same cache added it first
            if "created_utc" in {row[1] for row in self.db.execute("PRAGMA table_info(visits)")}:
                return
            raise
        self.db.executemany("UPDATE visits SET created_utc=? WHERE rel=?",
                            [(clock.utc_key(created), rel) for rel, created in
                             self.db.execute("SELECT rel, created_at FROM visits").fetchall()])
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> IndexState:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -------------------------------------------------------------- customers
    def customer_stamps(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT folder, stamp FROM customers"))

    def customer(self, folder: str) -> dict | None:
        row = self.db.execute("SELECT data FROM customers WHERE folder=?", (folder,)).fetchone()
        return json.loads(row[0]) if row else None

    def all_customers(self) -> list[tuple[str, dict]]:
        return [(folder, json.loads(data)) for folder, data in
                self.db.execute("SELECT folder, data FROM customers ORDER BY folder")]

    def put_customer(self, folder: str, stamp: str, data: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO customers VALUES (?, ?, ?)",
                        (folder, stamp, json.dumps(data, ensure_ascii=False)))

    def drop_customer(self, folder: str) -> None:
        self.db.execute("DELETE FROM customers WHERE folder=?", (folder,))
        self.db.execute("DELETE FROM visits WHERE customer=?", (folder,))

    # -------------------------------------------------------------- visits
    def visit_stamps(self, customers: list[str] | None = None) -> dict[str, str]:
        if customers is None:
            return dict(self.db.execute("SELECT rel, stamp FROM visits"))
        stamps: dict[str, str] = {}
        for folder in customers:
            stamps.update(self.db.execute("SELECT rel, stamp FROM visits WHERE customer=?", (folder,)))
        return stamps

    def put_visit(self, summary: dict, stamp: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO visits (rel, customer, stamp, created_at, inspector, device, photos,"
            " summary, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (summary["rel"], summary["customer"], stamp, summary["created_at"],
             summary["inspector"], summary["device"], summary["photo_count"],
             json.dumps(summary, ensure_ascii=False), clock.utc_key(summary["created_at"])))

    def drop_visit(self, rel: str) -> None:
        self.db.execute("DELETE FROM visits WHERE rel=?", (rel,))

    def visits_of(self, folder: str) -> list[dict]:
        return [json.loads(s) for (s,) in self.db.execute(
            "SELECT summary FROM visits WHERE customer=? ORDER BY rel", (folder,))]

    def latest_visits(self, limit: int) -> list[dict]:
        return [json.loads(s) for (s,) in self.db.execute(
            "SELECT summary FROM visits ORDER BY created_utc DESC, rel DESC LIMIT ?", (limit,))]

    def totals(self) -> dict:
        customers = self.db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
        visits, photos = self.db.execute("SELECT COUNT(*), COALESCE(SUM(photos), 0) FROM visits").fetchone()
        return {"customers": customers, "visits": visits, "photos": photos}

    def inspector_activity(self) -> list[dict]:
        """Per inspector: counts, and the first and last visit as UTC ISO times (pages show them
        in the display zone); a created_at that is no time counts for neither."""
        rows = self.db.execute(
            "SELECT inspector, COUNT(*), SUM(photos), COUNT(DISTINCT customer), MIN(NULLIF(created_utc, '')),"
            " MAX(NULLIF(created_utc, '')), GROUP_CONCAT(DISTINCT device) FROM visits GROUP BY inspector"
            " ORDER BY MAX(created_utc) DESC, inspector")
        return [{"inspector": r[0], "visits": r[1], "photos": r[2], "customers": r[3],
                 "first": r[4] or "", "last": r[5] or "", "devices": sorted(filter(None, (r[6] or "").split(",")))}
                for r in rows]

    # -------------------------------------------------------------- folders
    # Every folder of the tree as (mtime_ns, inode), so an incremental run stats folders instead
    # of walking the tree; see scan.changed_customers. Per top-level (customer) folder one row for
    # the folders every run checks and one for the photo folders only a deep check stats, each
    # packed (paths joined by NUL, stamps as int64 arrays): a million-photo tree has a quarter of
    # a million folders, and fetching that many SQLite rows alone took 0.3 s.
    def folder_groups(self, deep: bool = False) -> list[tuple[str, list[str], array, array]]:
        groups = []
        levels = (EVERY_RUN, DEEP_CHECK) if deep else (EVERY_RUN,)
        for top, paths, mtimes, inodes in self.db.execute(
                f"SELECT top, paths, mtimes, inodes FROM folder_stamps WHERE level IN ({','.join('?' * len(levels))})",
                levels):
            m, i = array("q"), array("Q")
            m.frombytes(mtimes)
            i.frombytes(inodes)
            groups.append((top, paths.split("\0"), m, i))
        return groups

    def replace_folders(self, groups: dict[str, tuple[list, list]], everything: bool) -> None:
        """Remember, per top-level (customer) folder, the folders (path from ROOT, mtime_ns, inode)
        that every run, resp. only a deep check, stats; `everything` drops the groups not given
        (they come from a whole-tree scan)."""
        if everything:
            self.db.execute("DELETE FROM folder_stamps")
        packed = []
        for top, (rows, deep_rows) in groups.items():
            if not everything:
                self.db.execute("DELETE FROM folder_stamps WHERE top=?", (top,))
            for level, items in ((EVERY_RUN, rows), (DEEP_CHECK, deep_rows)):
                if items:
                    packed.append((top, level, "\0".join(r[0] for r in items),
                                   array("q", [r[1] for r in items]).tobytes(),
                                   array("Q", [r[2] for r in items]).tobytes()))
        self.db.executemany("INSERT INTO folder_stamps VALUES (?, ?, ?, ?, ?)", packed)

    def root_folders(self, sources: tuple[str, ...]) -> list[tuple[str, int, int]] | None:
        """The sources' root rows stored by the last run, or None when they were other sources."""
        value = self.get_meta("root_folders")
        if not value:
            return None
        rows = [tuple(row) for row in json.loads(value)]
        return rows if tuple(row[0] for row in rows) == tuple(sources) else None

    def set_root_folders(self, rows: list[tuple[str, int, int]]) -> None:
        self.set_meta("root_folders", json.dumps(rows))

    def commit(self) -> None:
        self.db.commit()
