"""Build the ops admins' pages over the server tree, rebuilding only what changed.

Pages live under SERVER/.fieldsync/site/ (root, one per customer, one per visit) plus a visible
entry page SERVER/fieldsync.html. Every link is relative, so the pages work from the share opened
as file:// and from any static web server. Which pages are affected comes from comparing
`scan` stamps with the `state` cache: one new visit rewrites its own page, its customer's page
and the root page, and nothing else.

With `tablets=True` the root is a share of chrooted tablet accounts (docs/deployment.md): the
pages go to SHARE/.fieldsync/site and SHARE/fieldsync.html, out of every tablet's reach, and index
every SHARE/tablets/ACCOUNT/fieldsync as one site: a customer folder found in several tablets'
trees is one customer page listing all their visits, each linking into its own tablet's tree.
The share's root belongs to root there (sshd's chroot rule), so no entry page is written at the
root: the site's own index.html is the entry (nginx redirects / to it).

Tablets can write into the server tree (their ledgers live under SERVER/.fieldsync/), so every
page written or removed is first checked to be reached through no symbolic link: a planted
link (.fieldsync, .fieldsync/site, .fieldsync/thumbs, a customer's page folder...) is reported
in the result's problems and left alone, never written or deleted through.

A photo browsers cannot show (HEIC) gets a JPEG preview under .fieldsync/previews/ (beside the
thumbnails, same paths): its page links the preview for viewing and the photo, as mirrored, for
download. In a single tree these are the paths the tablet's own pages use (ROOT/.fieldsync/...
there), so the tablet's pages mirrored here show their HEIC photos too once the site is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import jinja2

from fieldsync.base import clock
from fieldsync.base.atomic import write_text
from fieldsync.base.i18n import _
from fieldsync.base.paths import planted_link
from fieldsync.base.rendering import environment
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import STATE_DIR, Layout
from fieldsync.errors import FieldsyncError, TreeError
from fieldsync.evidence import manifest
from fieldsync.masterdata import querydata
from fieldsync.masterdata.publish import REMOTE_DATA, SHARE_MASTER
from fieldsync.masterdata.store import FIELD_LABELS, FIELDS, CustomerStore
from fieldsync.media.preview import PREVIEWS_DIR, THUMBS_DIR, foreign_format
from fieldsync.media.thumbs import ThumbnailCache, thumb_rel
from fieldsync.server import scan
from fieldsync.server.scan import as_text
from fieldsync.server.state import IndexState
from fieldsync.tree.layout import CUSTOMER_FILE, account_of_folder
from fieldsync.views import mapview
from fieldsync.views.pages import render_page

SITE = f"{STATE_DIR}/site"
THUMBS = f"{STATE_DIR}/{THUMBS_DIR}"
PREVIEWS = f"{STATE_DIR}/{PREVIEWS_DIR}"
STATE_FILE = f"{STATE_DIR}/server-index/state.sqlite"
ENTRY_PAGE = "fieldsync.html"
CUSTOMERS_SCRIPT = "customers.js"
SEARCH_SCRIPT = "server-search.js"  # the root page's search, a file: the pages forbid inline script
MATCHING_SCRIPT = querydata.MATCHING_SCRIPT  # the matching rules, the same file the tablet's page loads
TEMPLATES = ("_base.html.j2", "server_root.html.j2", "server_customer.html.j2",
             "server_visit.html.j2", "server_entry.html.j2", "_server_style.html.j2",
             "_map.html.j2", "_csp.html.j2", SEARCH_SCRIPT, MATCHING_SCRIPT)
FORMAT_VERSION = "2"  # bump when the cached summary's shape changes (2: kinds' "previewed")
DIRS_FORMAT = "2"  # the folder stamps are complete (a whole-tree scan stored them)
# How old the last deep check (photo folders stat'ed too) may get before a plain run does one;
# it is what finds photos put on the server without fieldsync (see scan.py's docstring).
DEEP_CHECK_SECONDS = 3600
LATEST_VISITS = 30
THUMBS_PER_VISIT_ON_CUSTOMER_PAGE = 6


def site_dir(root: Path) -> Path:
    return Path(root) / SITE


@dataclass
class BuildResult:
    """What a build did: the pages it wrote (paths relative to ROOT), and any problems."""

    pages: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    customers: int = 0
    visits_scanned: int = 0
    folders_checked: int = 0  # folders stat'ed to find what changed (incremental runs)
    deep: bool = False  # photo folders were checked too (or the whole tree was scanned)
    visits_changed: int = 0
    thumbs_made: int = 0
    thumbs_failed: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    full: bool = False
    entry: str = ENTRY_PAGE  # the page to open, from ROOT


ProgressFn = Callable[[int, int], None]  # (done, total): the CLI draws a bar, core never prints


def _no_progress(done: int, total: int) -> None:
    """Nobody watches (the watcher's rebuilds, tests)."""


def build(root: Path, layout: Layout | None = None, *, full: bool = False,
          only: set[str] | None = None, maps: dict | None = None, deep: bool | None = None,
          tablets: bool = False, progress: ProgressFn | None = None) -> BuildResult:
    """(Re)build the pages of the server tree at `root` (of every tablet tree in the share at
    `root` with `tablets`).

    `full` ignores the cache and rewrites every page (thumbnails stay if fresh). `only` limits
    the scan to those customer folders (the watcher knows which ones an upload touched).
    Otherwise the remembered folder stamps tell which customers to scan (one stat per folder
    down to the visits; no walk), after a first run that scanned the whole tree to store them.
    `deep` also stats every photo folder; None does so when the last deep check is older than
    DEEP_CHECK_SECONDS. `progress(done, total)` is told of every visit (re)built.
    """
    started = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise TreeError(_("{root} is not a folder; give the server tree's root (the remote root the tablets upload "
                          "to)").format(root=root))
    link = planted_link(root, posixpath.dirname(STATE_FILE))
    if link is not None:  # sqlite would open its files through it
        raise TreeError(_("{link} is a symbolic link fieldsync did not make; the index keeps its state there, so "
                          "nothing was built. Remove it (someone with write access to the share planted it) and run "
                          "'fieldsync server index' again").format(link=root / link))
    layout = layout or Layout()
    sources = scan.tablet_sources(root) if tablets else scan.SINGLE
    builder = _Builder(root, layout, maps or {}, sources)
    with IndexState(root / STATE_FILE) as state:
        result = builder.run(state, full=full, only=only, deep=deep, progress=progress or _no_progress)
    result.seconds = time.perf_counter() - started
    return result


def _template_fingerprint() -> str:
    """Changes when a template, the cache format or the display zone (pages show times in it)
    changes, so such a change rebuilds everything."""
    digest = hashlib.sha256(f"{FORMAT_VERSION}\0{clock.zone_key()}".encode())
    env = environment()
    for name in TEMPLATES:
        try:
            source, _, _ = env.loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            source = "-"
        digest.update(name.encode() + b"\0" + source.encode())
    return digest.hexdigest()


def url(from_page: str, target: str) -> str:
    """A relative, percent-encoded link from the page at `from_page` to `target` (both from ROOT)."""
    return quote(posixpath.relpath(target, posixpath.dirname(from_page)))


def up_to_root(page: str) -> str:
    """The relative link from `page` back to ROOT ("../../"); page paths are never ".." or "."."""
    return "../" * page.count("/")


def customer_page(folder: str) -> str:
    return f"{SITE}/{folder}/index.html"


def visit_page(rel: str) -> str:
    return f"{SITE}/{rel}.html"


def _same_sources(stored: str | None, sources: tuple[str, ...]) -> bool:
    """Whether the folder stamps were stored over these sources; a tablet added or removed changes
    what every customer holds, so all are scanned once. (Caches from before sources: one tree.)"""
    return stored == json.dumps(sources) or (stored is None and sources == scan.SINGLE)


def _static_text(name: str) -> str:
    """A file shipped beside the templates (a script the pages load)."""
    env = environment()
    source, _, _ = env.loader.get_source(env, name)
    return source


def _has_template(name: str) -> bool:
    try:
        environment().get_template(name)
    except jinja2.TemplateNotFound:
        return False
    return True


class _Builder:
    def __init__(self, root: Path, layout: Layout, maps: dict, sources: tuple[str, ...]):
        self.root = root
        self.sources = sources
        self.layout = layout
        self.maps = maps
        self.thumbs = ThumbnailCache(root, root / THUMBS, root / PREVIEWS)
        self.result = BuildResult(entry=ENTRY_PAGE if sources == scan.SINGLE else f"{SITE}/index.html")
        self._links: set[str] = set()  # planted links already reported

    # ------------------------------------------------------------------ orchestration
    def run(self, state: IndexState, *, full: bool, only: set[str] | None, deep: bool | None,
            progress: ProgressFn) -> BuildResult:
        result = self.result
        fingerprint = _template_fingerprint()
        if state.get_meta("fingerprint") != fingerprint:
            full = True
        if full:
            only = None  # every stamp counts as changed; the cache still tells what disappeared
        result.full = full
        # Stamps taken from now on that are newer than this may hide a change (see scan's "racy").
        started = time.time()
        cutoff = time.time_ns() - scan.RACY_NS
        # Before any listing of a source's root:
        root_rows = [scan.dir_row(str(self.root), prefix, cutoff) for prefix in self.sources]
        sources_key = json.dumps(self.sources)
        incremental = (only is None and not full and state.get_meta("dirs") == DIRS_FORMAT
                       and _same_sources(state.get_meta("sources"), self.sources))
        if incremental:
            if deep is None:
                deep = started - float(state.get_meta("deep_checked_at") or 0) >= DEEP_CHECK_SECONDS
            groups = state.folder_groups(deep=deep)
            result.folders_checked = sum(len(group[1]) for group in groups) + 1
            only = scan.changed_customers(self.root, groups, state.root_folders(self.sources), root_rows,
                                          self.sources)
        result.deep = only is None or bool(incremental and deep)
        if result.deep:
            state.set_meta("deep_checked_at", repr(started))
        known_customers = state.customer_stamps()
        known_visits = state.visit_stamps(None if only is None else sorted(only))
        scanned = scan.scan_tree(self.root, self.layout, only, cutoff=cutoff,
                                 known={**known_visits, **known_customers}, sources=self.sources)
        scope = set(known_customers) if only is None else set(only) & set(known_customers)
        result.customers = len(scanned)
        result.visits_scanned = sum(len(c.visits) for c in scanned.values())

        known_by_customer: dict[str, list[str]] = {}
        for rel in known_visits:
            known_by_customer.setdefault(scan.customer_of(rel), []).append(rel)
        dirty_customers: set[str] = set()
        customer_data_changed = False
        for folder in sorted(scope - set(scanned)):  # customer folders that are gone
            self._drop_customer(state, folder, known_by_customer.get(folder, []))
            customer_data_changed = True
        to_build = {folder: sorted(r for r, stamp in found.visits.items() if full or known_visits.get(r) != stamp)
                    for folder, found in scanned.items()}
        total, built = sum(map(len, to_build.values())), 0
        for folder, found in scanned.items():
            for rel in to_build[folder]:
                self._build_visit(state, rel, found.visits[rel])
                dirty_customers.add(folder)
                built += 1
                progress(built, total)
            for rel in [r for r in known_by_customer.get(folder, ()) if r not in found.visits]:
                state.drop_visit(rel)
                self._remove(visit_page(rel), f"{THUMBS}/{rel}")
                dirty_customers.add(folder)
            if full or known_customers.get(folder) != found.stamp:
                customer_data_changed = True
                dirty_customers.add(folder)
                state.put_customer(folder, found.stamp, self._read_customer(folder))
        for folder in sorted(dirty_customers):
            self._render_customer(state, folder)
        entry_missing = not (self.root / result.entry).exists()
        master = self._master_data()
        master_stamp = "" if master is None else f"{master.stat().st_size}-{master.stat().st_mtime_ns}"
        master_changed = state.get_meta("master") != master_stamp
        if dirty_customers or customer_data_changed or full or entry_missing or master_changed:
            self._render_root(state, write_customers=customer_data_changed or full or master_changed)
        state.set_meta("master", master_stamp)
        self._remember_folders(state, scanned, only, root_rows, incremental, cutoff)
        state.set_meta("sources", sources_key)
        state.set_meta("fingerprint", fingerprint)
        state.commit()
        result.thumbs_made, result.thumbs_failed = self.thumbs.made, self.thumbs.failed
        for link in sorted(self.thumbs.links - self._links):
            self._report_link(link)
        return result

    def _drop_customer(self, state: IndexState, folder: str, visits: list[str]) -> None:
        for rel in visits:  # its visits' pages go too, in every tree (a tablet offboarded)
            state.drop_visit(rel)
            self._remove(visit_page(rel), f"{THUMBS}/{rel}")
        state.drop_customer(folder)
        self._remove(customer_page(folder), f"{THUMBS}/{scan.joined(self.sources[0], folder)}", tree=True)
        for prefix in self.sources[1:]:
            self._remove_thumbs(f"{THUMBS}/{scan.joined(prefix, folder)}")

    def _remember_folders(self, state: IndexState, scanned: dict[str, scan.CustomerScan],
                          only: set[str] | None, root_rows, incremental: bool, cutoff: int) -> None:
        """Store the folder stamps of what was scanned, for the next run's changed_customers."""
        root = str(self.root)
        tops = scan.customer_folders(self.root, self.sources) if only is None else sorted(only)
        groups = {}
        for top in tops:
            if top in scanned:
                # A racy photo folder is checked by every run until its stamp can be trusted:
                # left to the deep check, a change in its last tick could wait an hour.
                photo_dirs = scanned[top].photo_dirs
                groups[top] = (scanned[top].dirs + [r for r in photo_dirs if r[1] == scan.RACY],
                               [r for r in photo_dirs if r[1] != scan.RACY])
            else:  # not (yet) a customer folder: watch the folder itself, in case it becomes one
                rows = [scan.dir_row(root, scan.joined(prefix, top), cutoff) for prefix in self.sources]
                groups[top] = ([row for row in rows if row is not None], [])
        state.replace_folders(groups, everything=only is None)
        if only is None:
            state.set_meta("dirs", DIRS_FORMAT)
        if (only is None or incremental) and None not in root_rows:
            state.set_root_folders(root_rows)

    def _report_link(self, link: str) -> None:
        if link not in self._links:
            self._links.add(link)
            self.result.problems.append(
                _("{link} is a symbolic link fieldsync did not make; nothing was written or removed through it. "
                  "Remove it (someone with write access to the share planted it) and run 'fieldsync server index' "
                  "again").format(link=self.root / link))

    def _linked(self, rel: str) -> bool:
        """True (and reported) when ROOT/rel is reached through a symbolic link."""
        link = planted_link(self.root, rel)
        if link is None:
            return False
        self._report_link(link)
        return True

    def _write(self, rel: str, text: str) -> None:
        if self._linked(rel):
            return
        path = self.root / rel
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except (FileNotFoundError, UnicodeDecodeError):
            path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)
        self.result.pages.append(rel)

    def _remove(self, page: str, thumbs: str, tree: bool = False) -> None:
        target = self.root / page
        if not self._linked(posixpath.dirname(page) if tree else page):
            if tree:
                shutil.rmtree(target.parent, ignore_errors=True)
            elif target.exists():
                target.unlink()
            self.result.removed.append(page)
        self._remove_thumbs(thumbs)

    def _remove_thumbs(self, thumbs: str) -> None:
        """Remove the thumbnails under `thumbs` (a folder of THUMBS) and the previews beside them."""
        for rel in (thumbs, PREVIEWS + thumbs[len(THUMBS):]):
            if not self._linked(rel):
                shutil.rmtree(self.root / rel, ignore_errors=True)

    # ------------------------------------------------------------------ customers
    def _customer_dirs(self, folder: str) -> list[str]:
        """The customer's folder in each source that has it, as paths from ROOT."""
        return [rel for rel in (scan.joined(prefix, folder) for prefix in self.sources)
                if (self.root / rel).is_dir() and not (self.root / rel).is_symlink()]

    def _read_customer(self, folder: str) -> dict:
        # Several tablets may hold the customer's folder: the newest customer.yaml speaks for it.
        files = [self.root / rel / CUSTOMER_FILE for rel in self._customer_dirs(folder)]
        files = [f for f in files if f.is_file() and not f.is_symlink()]
        path = max(files, key=lambda f: f.stat().st_mtime_ns) if files else None
        data: dict = {}
        if path is not None:
            try:
                data = read_yaml(path)
            except FieldsyncError as exc:
                self.result.problems.append(str(exc))
        fields = {key: as_text(data.get(key)) for key in FIELDS}
        if not fields["account_no"]:
            fields["account_no"] = account_of_folder(folder, self.layout) or ""
        if not fields["name"]:
            fields["name"] = folder
        location = data.get("location") if isinstance(data.get("location"), dict) else None
        return {"fields": fields, "location": location}

    def _render_customer(self, state: IndexState, folder: str) -> None:
        page = customer_page(folder)
        data = state.customer(folder) or {"fields": {"name": folder, "account_no": ""}, "location": None}
        visits = state.visits_of(folder)
        businesses = []
        for business in self.layout.businesses:
            categories: dict[str, list[dict]] = {}
            for visit in visits:
                if visit["business"] == business:
                    categories.setdefault(visit["category"], []).append(self._visit_link(page, visit))
            for items in categories.values():
                items.sort(key=lambda v: (clock.utc_key(v["created_at"]), v["name"]), reverse=True)
            businesses.append({"name": business,
                               "categories": [{"name": n, "visits": categories[n]} for n in sorted(categories)]})
        docs_folder = self.layout.documents_folder
        dirs = self._customer_dirs(folder) or [scan.joined(self.sources[0], folder)]
        documents = [{"name": name, "href": url(page, f"{rel}/{docs_folder}/{name}")}
                     for rel in dirs for name in self._documents(rel)]
        text = render_page(
            "server_customer.html.j2", customer=data, labels=FIELD_LABELS, folder=folder,
            businesses=businesses, documents=documents, documents_folder=docs_folder,
            visit_count=len(visits), photo_count=sum(v["photo_count"] for v in visits),
            home=url(page, f"{SITE}/index.html"), map=self._map_values(data, page),
            folder_href=url(page, f"{dirs[0]}/"), has_map=_has_template("_map.html.j2"))
        self._write(page, text)

    def _documents(self, customer_dir: str) -> list[str]:
        path = os.path.join(self.root, customer_dir, self.layout.documents_folder)
        try:
            with os.scandir(path) as entries:
                return sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _map_values(self, data: dict, page: str) -> dict | None:
        """The location for _map.html.j2: mapview's full view (Leaflet copied beside the pages,
        tile URL from `maps` config), or the bare coordinates when the map template is absent."""
        location = data.get("location")
        if not _has_template("_map.html.j2"):
            try:
                return {"lat": float(location["lat"]), "lon": float(location["lon"]),
                        "accuracy_m": location.get("accuracy_m"), "at": as_text(location.get("at")),
                        "by": as_text(location.get("by"))}
            except (KeyError, TypeError, ValueError):
                return None
        fields = data.get("fields", {})
        view = mapview.view(location, maps=self.maps, assets=url(page, f"{SITE}/{mapview.ASSETS_DIR}"),
                            name=fields.get("name", ""), address=fields.get("address", ""))
        if view is not None and not self._linked(SITE):  # install_assets trusts the folder it is given
            try:
                mapview.install_assets(self.root / SITE)
            except TreeError as exc:
                self.result.problems.append(str(exc))
        return view

    def _visit_link(self, page: str, visit: dict) -> dict:
        """What a customer or root page shows of a visit, with links relative to `page`."""
        rel = visit["rel"]
        thumbs = []
        for kind in visit["kinds"]:
            previewed = set(kind.get("previewed", ()))
            for name in kind["preview"]:
                if len(thumbs) >= THUMBS_PER_VISIT_ON_CUSTOMER_PAGE:
                    break
                photo = f"{rel}/{kind['folder']}/{name}"
                view = f"{PREVIEWS}/{thumb_rel(photo)}" if name in previewed else photo
                thumbs.append({"src": url(page, f"{THUMBS}/{thumb_rel(photo)}"),
                               "href": url(page, view), "alt": f"{kind['folder']} {name}"})
        return {**visit, "href": url(page, visit_page(rel)), "thumbs": thumbs,
                "customer_href": url(page, customer_page(visit["customer"]))}

    # ------------------------------------------------------------------ visits
    def _build_visit(self, state: IndexState, rel: str, stamp: str) -> None:
        self.result.visits_changed += 1
        customer, business, category, name = rel.split("/")[-4:]
        path = self.root / rel
        data, problem = scan.read_visit_file(path)
        if problem:
            self.result.problems.append(problem)
        kinds = []
        page = visit_page(rel)
        # Links built by string prefix, not one relpath() per photo: a visit can hold hundreds.
        to_root = up_to_root(page)
        names = {folder: scan.photo_names(str(path / folder)) for folder in self.layout.kind_folders.values()}
        usable = self.thumbs.ensure_all([f"{rel}/{folder}/{n}" for folder, ns in names.items() for n in ns])
        for folder, photo_names in names.items():
            self.thumbs.prune(f"{rel}/{folder}", photo_names)
        for kind, folder in self.layout.kind_folders.items():
            photos = [self._photo(to_root, f"{rel}/{folder}", name, usable) for name in names[folder]]
            kinds.append({"kind": kind, "folder": folder, "photos": photos})
        created_at = scan.visit_time(data, path)
        inspector, device = scan.visit_attribution(data, path)
        summary = {
            "rel": rel, "customer": customer, "business": business, "category": category,
            "name": name, "created_at": created_at, "day": created_at[:10],
            "inspector": inspector or "(未知)",
            "device": device,
            "customer_name": as_text(data.get("customer_name")) or scan.customer_name(path.parents[2]),
            "appearance_note": as_text(data.get("appearance_note")),
            "nameplate_note": as_text(data.get("nameplate_note")),
            "has_visit_file": bool(data),
            "photo_count": sum(len(k["photos"]) for k in kinds),
            "kinds": [{"kind": k["kind"], "folder": k["folder"], "count": len(k["photos"]),
                       "preview": [p["name"] for p in k["photos"] if p["src"]][:THUMBS_PER_VISIT_ON_CUSTOMER_PAGE],
                       "previewed": [p["name"] for p in k["photos"] if p["viewable"]]}
                      for k in kinds],
        }
        summary["evidence"] = self._evidence(path, kinds)
        history = data.get("history") if isinstance(data.get("history"), list) else []
        history = [{key: as_text(h.get(key)) for key in ("at", "by", "field", "old", "new")}
                   for h in history if isinstance(h, dict)]
        state.put_visit(summary, stamp)
        text = render_page(
            "server_visit.html.j2", visit=summary, kinds=kinds, history=history,
            home=url(page, f"{SITE}/index.html"), customer_href=url(page, customer_page(customer)),
            folder_href=url(page, f"{rel}/"))
        self._write(page, text)

    def _photo(self, to_root: str, folder: str, name: str, usable: dict[str, bool]) -> dict:
        """One photo of a visit page (links from the page, `to_root` leading back to ROOT): its
        thumbnail (None: unreadable, a placeholder), what to open to view it, and for a photo
        browsers cannot show (HEIC) its JPEG preview to view and the original to download.
        Links are built by string prefix, not one relpath() per photo: a visit can hold hundreds."""
        rel = f"{folder}/{name}"
        href = to_root + quote(rel)
        src = to_root + quote(f"{THUMBS}/{thumb_rel(rel)}") if usable[rel] else None
        if rel not in self.thumbs.previews:
            return {"name": name, "href": href, "src": src, "original": None, "format": "", "viewable": False}
        viewable = self.thumbs.previews[rel]
        view = to_root + quote(f"{PREVIEWS}/{thumb_rel(rel)}") if viewable else href
        return {"name": name, "href": view, "src": src, "original": href,
                "format": foreign_format(str(self.root / rel)), "viewable": viewable}

    def _evidence(self, path: Path, kinds: list[dict]) -> dict:
        """The photos against manifest.json: listed, unlisted, missing, and the hash chain intact.

        Cheap (no photo is hashed): checking each photo's SHA-256 is `fieldsync verify --server`.
        """
        present = {f"{k['folder']}/{p['name']}" for k in kinds for p in k["photos"]}
        try:
            data = manifest.load(path)
        except FieldsyncError as exc:
            self.result.problems.append(str(exc))
            return {"status": "broken", "entries": 0, "photos": len(present), "unlisted": [],
                    "missing": [], "chain": [], "pending": []}
        if data is None:
            return {"status": "none", "entries": 0, "photos": len(present), "unlisted": [],
                    "missing": [], "chain": [], "pending": []}
        listed = set(manifest.current_entries(data))
        chain = manifest.chain_problems(data)
        unlisted, missing = sorted(present - listed), sorted(listed - present)
        status = "ok" if not (unlisted or missing or chain) else "mismatch"
        return {"status": status, "entries": len(listed), "photos": len(present), "unlisted": unlisted,
                "missing": missing, "chain": chain[:5], "pending": sorted(data.get("pending") or {})}

    # ------------------------------------------------------------------ root
    def _master_data(self) -> Path | None:
        """The master data published on this server (publish.py; on a share of tablets the back
        office's SHARE/master), if any: the root page searches all of it, not only folders."""
        for base in ("", f"{SHARE_MASTER}/"):
            rel = f"{base}{REMOTE_DATA}"
            if (self.root / rel).is_file() and not self._linked(rel):
                return self.root / rel
        return None

    def _customers_script(self, state: IndexState, page: str) -> str:
        """customers.js: every customer of the master data and every customer folder, normalised
        for matching.js like the tablet's query page; customers with a folder link to its page."""
        records: dict[str, dict] = {}
        links: dict[str, str] = {}
        for folder, data in state.all_customers():
            fields = data["fields"]
            account = str(fields.get("account_no") or account_of_folder(folder) or "")
            records[account] = {**fields, "account_no": account}
            links[account] = url(page, customer_page(folder))
        master = self._master_data()
        if master is not None:
            try:
                published = CustomerStore(master.parent).all()
            except (OSError, ValueError) as exc:  # a damaged file: the folders are still searched
                self.result.problems.append(_("{master}: unreadable master data, not searched ({exc})").format(
                                              master=master, exc=exc))
                published = []
            records.update((str(r.get("account_no")), r) for r in published if r.get("account_no"))
        rows, readings = querydata.page_rows(list(records.values()))
        # A script file (not fetch) because browsers refuse fetch() from file:// pages.
        payload = json.dumps({"rows": [[links.get(row[0], "")] + row for row in rows], "readings": readings},
                             ensure_ascii=False, separators=(",", ":"))
        return f"window.FIELDSYNC_CUSTOMERS = {payload};\n"

    def _render_root(self, state: IndexState, write_customers: bool) -> None:
        page = f"{SITE}/index.html"
        script = f"{SITE}/{CUSTOMERS_SCRIPT}"
        if write_customers or not (self.root / script).exists():
            self._write(script, self._customers_script(state, page))
        self._write(f"{SITE}/{MATCHING_SCRIPT}", _static_text(MATCHING_SCRIPT))
        self._write(f"{SITE}/{SEARCH_SCRIPT}", _static_text(SEARCH_SCRIPT))
        latest = [self._visit_link(page, v) for v in state.latest_visits(LATEST_VISITS)]
        text = render_page(
            "server_root.html.j2", totals=state.totals(), latest=latest,
            inspectors=state.inspector_activity(), labels=FIELD_LABELS, fields=list(FIELDS),
            customers_script=CUSTOMERS_SCRIPT, search_script=SEARCH_SCRIPT, matching_script=MATCHING_SCRIPT,
            home="index.html")
        self._write(page, text)
        if self.result.entry != ENTRY_PAGE:
            return
        target = url(ENTRY_PAGE, page)
        self._write(ENTRY_PAGE, render_page("server_entry.html.j2", target=target))
