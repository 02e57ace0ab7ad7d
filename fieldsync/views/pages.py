"""Generated human-facing pages (index.html) and texts, rendered from templates/ with Jinja2.

Pages use only relative links, so they work from the tablet's file manager (file://), from
the server share and from any static web server alike.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path
from urllib.parse import quote

from fieldsync.base.atomic import write_text
from fieldsync.base.rendering import render_template, template_dirs
from fieldsync.config import Config
from fieldsync.location.locate import load_last_fix
from fieldsync.masterdata import querydata
from fieldsync.masterdata.store import FIELD_LABELS, FIELDS
from fieldsync.media.imaging import DecodeBudget, is_photo_name
from fieldsync.media.preview import PREVIEWS_DIR, THUMBS_DIR, foreign_format
from fieldsync.media.thumbs import ThumbnailCache, thumb_rel
from fieldsync.tree.folders import read_customer
from fieldsync.tree.layout import CUSTOMER_FILE, PAGE_FILE, account_of_folder
from fieldsync.tree.visits import read_visit
from fieldsync.views import mapview


def _map_view(location):
    """_map.html.j2 completes a bare {lat, lon, ...} location (server pages) with this; optional
    keys `assets` (href of ROOT/_assets from the page) and `maps` (config) turn on Leaflet."""
    return mapview.view(location, maps=location.get("maps"), assets=location.get("assets"))


def render_page(name: str, **values) -> str:
    """A page template, with what _map.html.j2 needs to complete a bare location."""
    return render_template(name, map_view=_map_view, **values)


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text(path, text)
    return True


def _photos(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and is_photo_name(p.name))


VISIT_BLANKS = {"created_at": "", "inspector": "", "device": "", "appearance_note": "", "nameplate_note": "",
                "history": []}


def derived_images(cfg: Config) -> ThumbnailCache:
    """The tablet's thumbnails and previews (ROOT/.fieldsync/thumbs, .../previews), made only for
    photos browsers cannot show (HEIC): the pages show the others as they are."""
    return ThumbnailCache(cfg.root, cfg.state_dir / THUMBS_DIR, cfg.state_dir / PREVIEWS_DIR,
                          DecodeBudget.from_config(cfg.photos), cfg.photos.max_pixels)


def _link(page_dir: str, target: str) -> str:
    """A relative, percent-encoded link from a page in `page_dir` to `target` (both from ROOT)."""
    return quote(posixpath.relpath(target, page_dir))


def _photo_links(cfg: Config, visit: Path, folder: str, page_dir: str, images: ThumbnailCache) -> list[dict]:
    """The photos of one kind folder as the pages show them: `src` for the <img> (None: the
    photo cannot be read, a placeholder is shown) and `href` to view it. A photo browsers show
    is both; one they cannot (HEIC) has a JPEG thumbnail and preview made for it, and its
    `original` is offered as a download (named by its `format`)."""
    visit_rel = visit.relative_to(cfg.root).as_posix()
    photos = []
    names = _photos(visit / folder)
    rels = {name: f"{visit_rel}/{folder}/{name}" for name in names}
    formats = {name: foreign_format(str(visit / folder / name)) for name in names}
    thumbs = images.ensure_all([rels[name] for name in names if formats[name]])
    images.prune(f"{visit_rel}/{folder}", [name for name in names if formats[name]])
    derived = cfg.state_dir.relative_to(cfg.root).as_posix()
    for name in names:
        rel = rels[name]
        original = _link(page_dir, rel)
        if rel not in thumbs:
            photos.append({"name": name, "href": original, "src": original, "original": None, "format": ""})
            continue
        src = _link(page_dir, f"{derived}/{THUMBS_DIR}/{thumb_rel(rel)}") if thumbs[rel] else None
        view = _link(page_dir, f"{derived}/{PREVIEWS_DIR}/{thumb_rel(rel)}") if images.previews.get(rel) else None
        photos.append({"name": name, "href": view or original, "src": src, "original": original,
                       "format": formats[name]})
    return photos


def visit_context(cfg: Config, visit: Path, page_dir: str | None = None,
                  images: ThumbnailCache | None = None) -> dict:
    """What the visit and customer pages show of a visit; links are relative to the page's
    folder `page_dir` (from ROOT; the visit's own folder when None)."""
    # A visit made by hand has no visit.yaml (or one with only some keys): show blanks.
    data = {**VISIT_BLANKS, "name": visit.name, **read_visit(visit)}
    page_dir = visit.relative_to(cfg.root).as_posix() if page_dir is None else page_dir
    images = images or derived_images(cfg)
    kinds = [
        {"kind": kind, "folder": folder, "label": folder,
         "photos": _photo_links(cfg, visit, folder, page_dir, images)}
        for kind, folder in cfg.layout.kind_folders.items()
    ]
    return {"name": visit.name, "data": data, "kinds": kinds,
            "photo_count": sum(len(k["photos"]) for k in kinds)}


def render_visit(cfg: Config, visit: Path) -> bool:
    # A customer folder made by hand may have no customer.yaml yet: fall back to its name.
    folder = visit.parent.parent.parent
    customer = {"name": folder.name, "account_no": "", **read_customer(folder)}
    text = render_page("visit.html.j2", visit=visit_context(cfg, visit), customer=customer,
                           business=visit.parent.parent.name, category=visit.parent.name)
    return _write_if_changed(visit / PAGE_FILE, text)


def customer_context(cfg: Config, folder: Path) -> dict:
    # Hand-made customer folders may lack customer.yaml (or some fields): show blanks.
    data = {**dict.fromkeys(FIELDS), "name": folder.name, **read_customer(folder)}
    businesses = []
    images = derived_images(cfg)
    for business in cfg.layout.businesses:
        categories = []
        base = folder / business
        for category in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) \
                if base.is_dir() else []:
            visits = [visit_context(cfg, v, folder.name, images) for v in
                      sorted((p for p in category.iterdir() if p.is_dir() and not p.name.startswith(".")),
                             key=lambda p: p.name, reverse=True)]
            categories.append({"name": category.name, "visits": visits})
        businesses.append({"name": business, "categories": categories})
    docs = folder / cfg.layout.documents_folder
    documents = sorted(p.name for p in docs.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if docs.is_dir() else []
    return {"folder": folder.name, "data": data, "labels": FIELD_LABELS, "businesses": businesses,
            "documents_folder": cfg.layout.documents_folder, "documents": documents,
            "location": data.get("location"), "map": _customer_map(cfg, data)}


def _customer_map(cfg: Config, data: dict) -> dict | None:
    # The map part of a customer page (P12); Leaflet is copied to ROOT/_assets/ only when needed.
    view = mapview.view(data.get("location"), maps=cfg.maps, assets=f"../{mapview.ASSETS_DIR}",
                        last_fix=load_last_fix(cfg), name=str(data.get("name") or ""),
                        address=str(data.get("address") or ""))
    if view is not None:
        mapview.install_assets(cfg.root)
    return view


def render_customer(cfg: Config, folder: Path) -> bool:
    text = render_page("customer.html.j2", customer=customer_context(cfg, folder),
                           maps=cfg.maps)
    return _write_if_changed(folder / PAGE_FILE, text)


# The category the query page's "start a visit" command names (the spec's example); the
# inspector may change it before running the command.
VISIT_CATEGORY = "计量装置"


def _visit_commands(cfg: Config) -> dict[str, str]:
    """The query page's commands that start a visit, with {account} for the page to fill in:
    `visit new` needs the customer's folder (made by `customer open`, for customers without
    one); `--create-category` makes the category when the customer has none of that name."""
    business, category = shlex.quote(cfg.layout.businesses[0]), shlex.quote(VISIT_CATEGORY)
    return {"open_command": "fieldsync customer open {account} && ",
            "visit_command": f"fieldsync visit new {{account}} {business} {category} --create-category"}


def render_root(cfg: Config) -> bool:
    """ROOT/index.html: the offline query page over all master data (P2), linking the
    customers that have a folder; its data lives in ROOT/_query/ (see querydata.py)."""
    folders = {}
    for folder in sorted(p for p in cfg.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        account = account_of_folder(folder.name, cfg.layout)
        if account and (folder / CUSTOMER_FILE).exists():
            folders[account] = folder.name
    script = next(d / querydata.SCRIPT for d in template_dirs() if (d / querydata.SCRIPT).is_file())
    data_changed = querydata.write_data(cfg.root, cfg.state_dir, script)
    # The template writes `folders` with Jinja's tojson, which escapes < > & ': a folder name
    # (data) can neither end the inline JSON ("</script>") nor open a comment ("<!--").
    text = render_page("root.html.j2", folders=folders, folder_count=len(folders),
                           inspector=cfg.inspector, device=cfg.device, data_dir=querydata.DATA_DIR,
                           **_visit_commands(cfg))
    return _write_if_changed(cfg.root / PAGE_FILE, text) or data_changed
