"""Dispute bundles: one customer's visits as a zip that proves itself.

The zip holds, under one top folder, the same relative paths as the tree (so
`fieldsync verify --server FOLDER` works on it as on the server), plus:
  report.html                 printable report: thumbnails, time, place, hashes, remark history
  report.pdf                  the same as PDF (fpdf2), when a Chinese TrueType font is installed
  bundle.json                 what is in it, who made it, the folder layout used
  SHA256SUMS                  every file's hash, checkable with plain `sha256sum -c`
  .fieldsync/ledgers/<device> ledger excerpt: the whole chain, bodies of other visits removed;
                              every record keeps its device signature (it covers the record's
                              hash, so a record without its body still proves the chain)
bundle.json names the keys that signed (public key, fingerprint, and, when the bundle was
made with a keyring, the keyring entry vouching for each). A third party checks all of it
with `fieldsync verify --server FOLDER --keyring FILE` and nothing else: rewriting photo,
manifest, excerpt, bundle.json and SHA256SUMS together still needs the tablet's private key.
The bundle is built in a staging folder and verified there before the zip is written: a
bundle that would not verify on its own is never handed out. Symbolic links in the customer's
folder are never followed (one could point anywhere, e.g. /etc/shadow): they are left out and
named in the bundle's warnings and in bundle.json.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, ImageOps

from fieldsync.base import clock
from fieldsync.base.atomic import atomic_open
from fieldsync.base.hashing import file_sha256
from fieldsync.base.i18n import _
from fieldsync.base.names import normalize_account
from fieldsync.base.paths import planted_link
from fieldsync.base.rendering import render_template
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import Layout
from fieldsync.errors import BadInput, EvidenceBroken, ImageError, TreeError
from fieldsync.evidence import keys, ledger, manifest, verify
from fieldsync.evidence import receipts as receipts_mod
from fieldsync.evidence.pdf import render_pdf
from fieldsync.masterdata.store import FIELD_LABELS as CUSTOMER_LABELS
from fieldsync.media.imaging import open_image, register_heif
from fieldsync.tree.layout import CUSTOMER_FILE, MANIFEST_FILE, PAGE_FILE, VISIT_FILE, find_customer_dir

FORMAT = "fieldsync-evidence/1"
REPORT_FILE = "report.html"
PDF_FILE = "report.pdf"
SUMS_FILE = "SHA256SUMS"
THUMB_EDGE = 320
KIND_LABELS = {"appearance": "外观", "nameplate": "铭牌"}
FIELD_LABELS = {"name": "名称", "appearance_note": "外观备注", "nameplate_note": "铭牌备注"}


@dataclass(frozen=True)
class Bundle:
    path: Path
    visits: int
    photos: int
    warnings: list[str]
    pdf_missing: str | None = None  # why no report.pdf was made, if none was


ProgressFn = Callable[[int, int], None]  # (done, total): the CLI draws a bar, core never prints


def build_bundle(root: Path, layout: Layout, ledger_files: dict[str, Path], account_no: str,
                 out: Path, *, visit: str | None = None, made_by: str = "",
                 options: verify.Options = verify.DEFAULT_OPTIONS,
                 keyring: keys.Keyring | None = None,
                 receipts: receipts_mod.Receipts | None = None,
                 progress: ProgressFn | None = None) -> Bundle:
    """Write the evidence bundle for ACCOUNT (all its visits, or one) to `out` (a .zip);
    with a keyring, only when every signature is vouched for by it; with the server's
    receipts, an excerpt of them for these visits, checked like the rest. `progress(done,
    total)` is told of every photo put into the report (thumbnails: the slow part)."""
    root = Path(root)
    if not Path(out).resolve().parent.is_dir():
        raise BadInput(_("the folder for {out} does not exist; create it or choose another --out").format(out=out))
    account_no = normalize_account(account_no)
    customer = find_customer_dir(root, account_no, layout)
    if customer is None:
        raise TreeError(_("customer {account_no} has no folder in {root}; check the account number").format(
                          account_no=account_no, root=root))
    visits = select_visits(root, customer, visit)
    made_at = clock.now()
    top = f"evidence_{account_no}_{made_at:%Y%m%d_%H%M%S}"
    with tempfile.TemporaryDirectory(prefix=".bundle.", dir=Path(out).resolve().parent) as tmp:
        stage = Path(tmp) / top
        visit_ids, links = _stage_tree(root, customer, visits, stage)
        links = sorted(set(links) | set(linked_visits(customer)))
        devices = _stage_ledgers(ledger_files, visit_ids, stage)
        staged_receipts = None
        if receipts is not None:
            staged = receipts_mod.receipts_file(stage)
            staged.parent.mkdir(parents=True)
            staged.write_text(receipts_mod.excerpt(receipts.records, set(visit_ids.values()), set(devices),
                                                   receipts.tree), encoding="utf-8")
            staged_receipts = receipts_mod.load(staged, receipts.server_key)
        # One bar over both slow parts: hashing every photo, then a thumbnail of each.
        hashing = (lambda done, total: progress(done, 2 * total)) if progress else None
        report = verify.verify_tree(stage, layout, ledger.server_ledgers(stage), options=options,
                                    excerpts=True, keyring=keyring, receipts=staged_receipts, progress=hashing)
        if report.problems:
            raise EvidenceBroken(_("the records of {account_no} do not verify, so no bundle was made; restore the "
                                   "files from the server, or run 'fieldsync verify' for details").format(
                                   account_no=account_no), [str(p) for p in report.problems])
        description = {
            "format": FORMAT, "account_no": account_no, "made_at": clock.iso(made_at),
            "made_by": made_by, "ledgers": devices,
            # Compare these with the server's ledgers: equal heads prove the excerpt is the
            # whole history up to the bundle's making, nothing dropped or rewritten.
            "ledger_heads": {d: report.ledger_heads[d] for d in devices},
            # Who signed: checked again by whoever verifies the bundle, against their keyring.
            "signers": signers_of(report),
            "keyring": keyring.path.name if keyring else None,
            # When the server received each visit: proven only against the server's public key,
            # which the verifier gets from the server admin (this copy is for reference).
            "receipts": ({"server_key": receipts.server_key, "fingerprint": receipts.fingerprint,
                          "received": report.receipts["received"] if report.receipts else {}}
                         if receipts is not None else None),
            "visits": [{"path": str(rel), "visit_id": vid} for rel, vid in visit_ids.items()],
            "skipped_links": links,
            "layout": {"customer_folder": layout.customer_folder, "businesses": list(layout.businesses),
                       "documents_folder": layout.documents_folder, "visit_folder": layout.visit_folder,
                       "appearance_folder": layout.appearance_folder,
                       "nameplate_folder": layout.nameplate_folder},
        }
        thumbnails = (lambda done, total: progress(total + done, 2 * total)) if progress else None
        context = report_context(stage, customer.name, visit_ids, description, report, thumbnails)
        (stage / REPORT_FILE).write_text(render_template("evidence.html.j2", **context), encoding="utf-8")
        pdf_missing = render_pdf(context, stage / PDF_FILE)
        description["pdf"] = PDF_FILE if pdf_missing is None else None
        description["pdf_missing"] = pdf_missing
        (stage / verify.BUNDLE_FILE).write_text(json.dumps(description, ensure_ascii=False, indent=1),
                                                encoding="utf-8")
        _write_sums(stage)
        _zip(stage, Path(out))
    skipped = [_("{link}: is a symbolic link, left out of the bundle (not followed)").format(link=link)
               for link in links]
    return Bundle(Path(out), len(visit_ids), report.photos, skipped + [str(w) for w in report.warnings],
                  pdf_missing)


# --------------------------------------------------------------------------- choosing visits

def visits_of(customer: Path) -> list[Path]:
    """Every visit folder of a customer (business/category/visit) holding evidence; a folder
    reached through a symbolic link is not one (see linked_visits)."""
    return sorted(p for p in customer.glob("*/*/*")
                  if p.is_dir() and not any(part.startswith(".") for part in p.relative_to(customer).parts)
                  and planted_link(customer, p.relative_to(customer)) is None
                  and ((p / MANIFEST_FILE).exists() or (p / VISIT_FILE).exists()))


def linked_visits(customer: Path) -> list[str]:
    """The parts of the customer's folder, down to the visits, that are symbolic links."""
    found = set()
    for p in customer.glob("*/*/*"):
        rel = p.relative_to(customer)
        link = planted_link(customer, rel)
        if link is not None and not any(part.startswith(".") for part in rel.parts):
            found.add(f"{customer.name}/{link}")
    return sorted(found)


def select_visits(root: Path, customer: Path, visit: str | None) -> list[Path]:
    """All the customer's visits, or the one named by path (from ROOT or the customer) or name."""
    found = visits_of(customer)
    if visit:
        wanted = PurePosixPath(str(visit).replace("\\", "/").strip("/"))
        found = [p for p in found
                 if PurePosixPath(p.relative_to(root).as_posix()) == wanted
                 or PurePosixPath(p.relative_to(customer).as_posix()) == wanted
                 or p.name == str(wanted)]
        if len(found) > 1:
            raise TreeError(_("{visit!r} names {count} visits of {customer}; give BUSINESS/CATEGORY/VISIT: "
                              "{visits}").format(visit=visit, count=len(found), customer=customer.name,
                                                 visits=", ".join(str(p.relative_to(customer)) for p in found)))
    if not found:
        raise TreeError(_("no visit {visit} with records under {customer}; list them with 'fieldsync verify' or "
                          "the customer's index.html").format(visit=visit or "", customer=customer).replace("  ", " "))
    return found


# --------------------------------------------------------------------------- staging

def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _stage_tree(root: Path, customer: Path, visits: list[Path],
                stage: Path) -> tuple[dict[PurePosixPath, str], list[str]]:
    """Copy customer.yaml and each visit's records and photos; return visit rel -> visit_id,
    and the symbolic links found and left out (paths from ROOT)."""
    links = []
    if (customer / CUSTOMER_FILE).is_symlink():
        links.append(f"{customer.name}/{CUSTOMER_FILE}")
    elif (customer / CUSTOMER_FILE).exists():
        _copy(customer / CUSTOMER_FILE, stage / customer.name / CUSTOMER_FILE)
    visit_ids = {}
    for visit in visits:
        rel = PurePosixPath(visit.relative_to(root).as_posix())
        for dirpath, dirnames, filenames in os.walk(visit):  # never enters links to folders
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in [*dirnames, *filenames]:
                source = Path(dirpath) / name
                if source.is_symlink():
                    links.append(f"{rel}/{source.relative_to(visit).as_posix()}")
                elif name in filenames and not name.startswith(".") and name != PAGE_FILE:
                    _copy(source, stage / rel / source.relative_to(visit))
        data = manifest.load(visit)
        visit_ids[rel] = data["visit_id"] if data else ""
    return visit_ids, links


def _stage_ledgers(ledger_files: dict[str, Path], visit_ids: dict, stage: Path) -> list[str]:
    """Excerpts of every ledger that speaks of these visits: whole chain, their bodies only."""
    wanted = {v for v in visit_ids.values() if v}
    devices = []
    for device, path in sorted(ledger_files.items()):
        parsed = ledger.read(path)
        if not wanted & set(parsed.bodies_by_visit()):
            continue
        target = stage / ledger.REMOTE_DIR / device
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(ledger.excerpt(parsed.records, wanted), encoding="utf-8")
        devices.append(device)
    return devices


def _write_sums(stage: Path) -> None:
    lines = []
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        rel = path.relative_to(stage).as_posix()
        lines.append(f"{file_sha256(path)[0]}  {rel}\n")
    (stage / SUMS_FILE).write_text("".join(lines), encoding="utf-8")


def _zip(stage: Path, out: Path) -> None:
    # JPEG/HEIC do not compress: store them, deflate the text files.
    with atomic_open(out, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            arcname = path.relative_to(stage.parent).as_posix()
            packed = zipfile.ZIP_DEFLATED if path.suffix.lower() in (".json", ".yaml", ".html", "") \
                or path.name == SUMS_FILE or path.parent.name == "ledgers" else zipfile.ZIP_STORED
            archive.write(path, arcname, compress_type=packed)


# --------------------------------------------------------------------------- the report

def thumbnail_jpeg(path: Path, edge: int = THUMB_EDGE) -> bytes | None:
    """A small upright JPEG of the photo (for the report: one printable file, no links)."""
    register_heif()
    try:
        with open_image(path) as image:
            image.draft("RGB", (edge, edge))  # JPEG DCT scaling: decode at 1/2..1/8 size
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail((edge, edge))
    except (ImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def data_uri(jpeg: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") if jpeg else None


def report_context(stage: Path, customer_folder: str, visit_ids: dict, description: dict,
                   report: verify.Report, progress: ProgressFn | None = None) -> dict[str, Any]:
    customer = read_yaml(stage / customer_folder / CUSTOMER_FILE) \
        if (stage / customer_folder / CUSTOMER_FILE).exists() else {}
    location = customer.get("location") if isinstance(customer.get("location"), dict) else None
    warnings: dict[str, list[str]] = {}
    for finding in report.warnings:
        warnings.setdefault(finding.path, []).append(finding.message)
    ledgers = {d: ledger.read(p) for d, p in ledger.server_ledgers(stage).items()}
    visits = []
    for rel, visit_id in visit_ids.items():
        folder = stage / rel
        data = manifest.load(folder) or {"entries": [], "head": ""}
        info = read_yaml(folder / VISIT_FILE) if (folder / VISIT_FILE).exists() else {}
        photos = []
        for entry in manifest.current_entries(data).values():
            if entry.get("removed"):
                continue
            photo = dict(entry)
            photo["thumb_jpeg"] = thumbnail_jpeg(folder / entry["path"])
            photo["thumb"] = data_uri(photo["thumb_jpeg"])
            photo["kind_label"] = KIND_LABELS.get(entry.get("kind"), entry.get("kind"))
            if entry.get("gps") and location and "lat" in location and "lon" in location:
                photo["distance_m"] = round(verify.distance_m(entry["gps"], location))
            photo["warnings"] = warnings.get(f"{rel}/{entry['path']}", [])
            photos.append(photo)
            if progress is not None:
                progress(sum(len(v["photos"]) for v in visits) + len(photos), report.photos)
        seals = [{"device": device, **record} for device, parsed in ledgers.items()
                 for record in parsed.records
                 if isinstance(record.get("body"), dict) and record["body"].get("visit_id") == visit_id]
        info = {**info, **_attribution(info, data, seals)}
        visits.append({"rel": str(rel), "name": folder.name, "info": info, "photos": photos,
                       "head": data.get("head"), "seals": seals,
                       "history": info.get("history") or [],
                       "warnings": warnings.get(f"{rel}/{VISIT_FILE}", [])})
    return {"bundle": description, "customer": customer, "customer_labels": CUSTOMER_LABELS,
            "location": location, "visits": visits, "field_labels": FIELD_LABELS,
            "summary": report.as_dict(), "top": stage.name}


def signers_of(report: verify.Report) -> list[dict[str, Any]]:
    """One row per (ledger, signing key): fingerprint, key, records, the keyring entry if checked."""
    rows = []
    for device, signers in report.signers.items():
        for signer in signers:
            registered = signer.get("registered") or {}
            rows.append({"ledger": device, "fingerprint": signer["fingerprint"], "key": signer["key"],
                         "records": signer["records"], "device": registered.get("device"),
                         "inspector": registered.get("inspector"), "registered": signer.get("registered")})
        if report.unsigned.get(device):
            rows.append({"ledger": device, "fingerprint": None, "key": None,
                         "records": report.unsigned[device], "device": None, "inspector": None,
                         "registered": None})
    return rows


def _attribution(info: dict, sealed: dict, seals: list[dict]) -> dict:
    """Who made a visit and on which device, when its visit.yaml does not say (a folder made
    by hand): the newest photo sealed in its manifest names both, its ledger the device."""
    found = {key: info.get(key) for key in ("inspector", "device") if info.get(key)}
    for entry in reversed(sealed.get("entries") or []):
        for key in ("inspector", "device"):
            if not found.get(key) and isinstance(entry, dict) and entry.get(key):
                found[key] = entry[key]
    if not found.get("device") and seals:
        found["device"] = seals[-1]["device"]
    return found
