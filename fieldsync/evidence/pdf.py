"""report.pdf for evidence bundles, drawn with fpdf2 from the same facts as report.html.

fpdf2 is pure Python, but Chinese text needs a TrueType CJK font on the machine: WenQuanYi
(Debian/Termux: fonts-wqy-microhei or fonts-wqy-zenhei), Microsoft YaHei/SimHei on Windows,
or any .ttf/.ttc named by $FIELDSYNC_PDF_FONT. Without one no PDF is made and the caller
says why; report.html still prints to PDF from any browser. Times are shown like report.html's,
in the display zone (clock.local_time).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from fieldsync.base.clock import local_time
from fieldsync.base.i18n import _

FONT_ENV = "FIELDSYNC_PDF_FONT"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/data/data/com.termux/files/usr/share/fonts/TTF/wqy-microhei.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
    "/System/Library/Fonts/STHeiti Light.ttc",
)
THUMB_MM = 55
TEXT = 8.5


def find_font() -> Path | None:
    """A CJK TrueType font file: $FIELDSYNC_PDF_FONT first, then the usual system places."""
    named = os.environ.get(FONT_ENV)
    for candidate in ([named] if named else []) + list(FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def render_pdf(context: dict[str, Any], out: Path) -> str | None:
    """Write the report PDF to `out`; return None, or why no PDF was made."""
    font = find_font()
    if font is None:
        return (_("no Chinese TrueType font found (install fonts-wqy-microhei, or set {FONT_ENV}); print "
                  "report.html to PDF from a browser instead").format(FONT_ENV=FONT_ENV))
    # fpdf2 (with numpy and fontTools behind it) costs about a second to import: loaded here,
    # by the one command that writes a PDF, not by every CLI start (`sync` measured 1.1 s of
    # interpreter start on a 22 MB burst, bench.link).
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    try:
        pdf.add_font("cjk", fname=str(font), collection_font_number=0)
    except Exception as exc:  # fpdf2 refuses some fonts (CFF outlines): say which and why
        return _("cannot use the font {font} for PDF ({exc}); set {FONT_ENV} to a TrueType CJK font").format(
                 font=font, exc=exc, FONT_ENV=FONT_ENV)
    pdf.set_title(f"现场检查证据 {context['bundle']['account_no']}")
    pdf.set_creator("fieldsync")
    _Writer(pdf, context).write()
    pdf.output(str(out))
    return None


def _checked(signer: dict[str, Any], keyring: str | None) -> str:
    """What a signer row proves, in the words of report.html."""
    registered = signer.get("registered")
    if registered:
        revoked = registered.get("revoked")
        return (f"已按密钥册 {keyring} 核验：设备 {signer.get('device')} 的登记密钥"
                + (f"（该密钥已于 {local_time(revoked['at'])} 吊销，吊销前的签名仍有效）" if revoked else ""))
    if signer.get("fingerprint"):
        return "签名完整，但未按密钥册核验签名者"
    return "启用签名前的记录，无签名，仅凭服务器完整性"


class _Writer:
    def __init__(self, pdf, context: dict[str, Any]):
        self.pdf, self.c = pdf, context

    def font(self, size: float = TEXT) -> None:
        self.pdf.set_font("cjk", size=size)

    def heading(self, text: str, size: float) -> None:
        self.font(size)
        self.pdf.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1.5)

    def table(self, rows: list[tuple], widths: tuple, header: tuple | None = None, size: float = TEXT) -> None:
        from fpdf.fonts import FontFace  # loaded with FPDF in render_pdf (see there)

        self.font(size)
        with self.pdf.table(col_widths=widths, text_align="LEFT", first_row_as_headings=bool(header),
                            line_height=size * 0.5, headings_style=FontFace(fill_color=(235, 238, 243)),
                            borders_layout="SINGLE_TOP_LINE" if not header else "ALL") as table:
            for row in ([header] if header else []) + rows:
                cells = table.row()
                for value in row:
                    cells.cell("" if value is None else str(value))
        self.pdf.ln(2)

    def write(self) -> None:
        c, pdf = self.c, self.pdf
        pdf.add_page()
        self.heading("现场检查证据报告", 16)
        customer = c["customer"]
        rows = [(label, customer.get(key, "")) for key, label in c["customer_labels"].items()]
        location = c["location"]
        rows.append(("客户位置", f"{location['lat']:.6f}, {location['lon']:.6f}" if location else "未记录"))
        rows.append(("生成时间", f"{local_time(c['bundle']['made_at'])} {c['bundle']['made_by']}".strip()))
        summary = c["summary"]
        rows.append(("核验结果", f"{summary['photos']} 张照片与清单的 SHA-256 一致；清单哈希链、设备台账 "
                                 f"({', '.join(c['bundle']['ledgers'])}) 与备注修改记录完整。"
                                 + (f" 提醒 {len(summary['warnings'])} 项，见各照片。" if summary["warnings"] else "")))
        for device, head in c["bundle"].get("ledger_heads", {}).items():
            rows.append((f"台账链头 {device}", head))
        rows.append(("自行核验", f"解压后运行 fieldsync verify --server {c['top']} --keyring 密钥册.json"
                                 "（用供电公司发布的密钥册核验签名设备），或在该文件夹中运行 "
                                 "sha256sum -c SHA256SUMS"))
        self.table(rows, (30, 150))
        self.heading("签名设备 Signing devices", 11)
        self.table([(s["ledger"], s.get("device") or "未核验", s.get("inspector") or "未核验",
                     s.get("fingerprint") or "无签名", s["records"], _checked(s, c["bundle"].get("keyring")))
                    for s in c["bundle"].get("signers", [])],
                   (20, 22, 22, 52, 14, 50), header=("台账", "签名设备", "检查员", "密钥指纹", "记录数", "核验"),
                   size=7)
        for index, visit in enumerate(c["visits"]):
            if index:
                pdf.add_page()
            self.visit(visit)

    def visit(self, visit: dict[str, Any]) -> None:
        info = visit["info"]
        self.heading(f"检查记录 {visit['name']}", 13)
        self.table([("位置", visit["rel"]),
                    ("业务类型 / 类别", f"{info.get('business') or ''} / {info.get('category') or ''}"),
                    ("创建时间", local_time(info.get("created_at"))),
                    ("检查员 · 设备", f"{info.get('inspector') or ''} · {info.get('device') or ''}"),
                    ("外观备注", info.get("appearance_note") or ""),
                    ("铭牌备注", info.get("nameplate_note") or ""),
                    ("清单链头", visit["head"])] + [("提醒", w) for w in visit["warnings"]], (30, 150))
        self.heading("备注修改记录", 11)
        if visit["history"]:
            labels = self.c["field_labels"]
            self.table([(local_time(h.get("at")), h.get("by"), labels.get(h.get("field"), h.get("field")), h.get("old"),
                         h.get("new")) for h in visit["history"]],
                       (35, 22, 20, 51, 52), header=("时间", "修改人", "项目", "原内容", "新内容"))
        else:
            self.heading("无修改", TEXT)
        self.heading(f"照片（{len(visit['photos'])}）", 11)
        for photo in visit["photos"]:
            self.photo(photo)
        self.heading("台账记录", 11)
        self.table([(s["device"], s["seq"], local_time(s["body"].get("at", "")), s["body"].get("photos", ""), s["hash"])
                    for s in visit["seals"]], (22, 12, 38, 14, 94),
                   header=("设备", "序号", "时间", "照片数", "记录哈希"), size=7)

    def photo(self, p: dict[str, Any]) -> None:
        pdf = self.pdf
        gps = p.get("gps")
        place = "无"
        if gps:
            place = f"{gps['lat']:.6f}, {gps['lon']:.6f}"
            if "alt" in gps:
                place += f"，海拔 {gps['alt']} m"
            if "distance_m" in p:
                place += f"，距客户位置 {p['distance_m']} m"
        camera = p.get("camera") or {}
        lines = [
            f"文件：{p['path']}（{p['kind_label']}，{p['width']}×{p['height']}，{p['bytes']} 字节）",
            f"拍摄时间 (EXIF)：{local_time(p['taken_at']) if p.get('taken_at') else '无'}",
            f"归档时间：{local_time(p.get('filed_at'))} · {p.get('inspector')} · {p.get('device')}",
            f"拍摄地点 (GPS)：{place}",
            f"相机：{(str(camera.get('make') or '') + ' ' + str(camera.get('model') or '')).strip() or '未知'}",
            f"SHA-256：{p['sha256']}",
            f"原图 SHA-256：{p['original_sha256']}（{p['original_bytes']} 字节）",
            f"条目哈希：#{p['seq']} {p['hash']}",
        ] + [f"提醒：{w}" for w in p["warnings"]]
        image_h = THUMB_MM * p["height"] / p["width"] if p.get("width") else THUMB_MM
        image_h = min(image_h, THUMB_MM * 1.4)
        if pdf.get_y() + max(image_h, len(lines) * 4.5) > pdf.page_break_trigger:
            pdf.add_page()
        x, y = pdf.l_margin, pdf.get_y()
        if p.get("thumb_jpeg"):
            pdf.image(io.BytesIO(p["thumb_jpeg"]), x=x, y=y, w=THUMB_MM, h=image_h, keep_aspect_ratio=True)
        pdf.set_xy(x + THUMB_MM + 4, y)
        self.font(7.5)
        for line in lines:
            pdf.multi_cell(pdf.epw - THUMB_MM - 4, 3.8, line, new_x="LEFT", new_y="NEXT", wrapmode="CHAR")
        pdf.set_xy(x, max(pdf.get_y(), y + image_h) + 4)
