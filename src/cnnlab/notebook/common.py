"""What the notebook views share: their scoped style and the frame around each view.

A notebook shows many views on one page, next to the notebook's own styles, so every rule is
scoped under ``.cnnlab-view`` and the style travels inside each view (an output must stand on
its own when a notebook is exported to HTML). Colours that carry meaning (the confusion cells)
are inline styles, which survive even where a front end drops ``<style>``.
"""

from __future__ import annotations

from markupsafe import Markup

from cnnlab.inspect.report.html import html

STYLE = Markup(
    "<style>"
    ".cnnlab-view{font:13px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;"
    "color:#1f2937;max-width:100%}"
    ".cnnlab-view .cv-title{font-weight:600;font-size:14px;margin:0 0 2px}"
    ".cnnlab-view .cv-meta{color:#6b7280;margin:0 0 6px}"
    ".cnnlab-view table{border-collapse:collapse;margin:4px 0;width:auto}"
    ".cnnlab-view th,.cnnlab-view td{padding:3px 10px;text-align:left;vertical-align:middle;"
    "border-bottom:1px solid #e5e7eb}"
    ".cnnlab-view thead th{color:#6b7280;font-weight:600;font-size:12px}"
    ".cnnlab-view .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".cnnlab-view .px{image-rendering:pixelated;vertical-align:middle}"
    ".cnnlab-view .note{color:#92400e;margin:4px 0}"
    ".cnnlab-view .more{color:#6b7280;font-style:italic}"
    ".cnnlab-view tr.best td{font-weight:600}"
    ".cnnlab-view figure{margin:6px 0}.cnnlab-view figure img{max-width:100%;height:auto}"
    ".cnnlab-view .cm{display:flex;flex-wrap:wrap;gap:8px 20px;align-items:flex-end}"
    ".cnnlab-view table.cm-table{border-collapse:separate;border-spacing:2px}"
    ".cnnlab-view .cm-table th,.cnnlab-view .cm-table td{border:none;padding:0 4px}"
    ".cnnlab-view .cm-table td{min-width:48px;height:38px;text-align:center;border-radius:3px}"
    ".cnnlab-view .cm-table td b,.cnnlab-view .cm-table td small{display:block}"
    ".cnnlab-view .cm-table td small{font-size:10.5px;opacity:.85}"
    ".cnnlab-view .cm-table.small td small,.cnnlab-view .cm-table.tiny td small{display:none}"
    ".cnnlab-view .cm-table td.total{color:#6b7280;background:none}"
    ".cnnlab-view .cm-legend{font-size:11.5px;color:#6b7280;width:200px}"
    ".cnnlab-view .cm-scale{display:flex;align-items:center;gap:8px;margin:2px 0}"
    ".cnnlab-view .cm-bar{height:9px;width:150px;border:1px solid #e5e7eb}"
    ".cnnlab-view .cm-ticks{position:relative;width:150px;height:15px;font-size:10px}"
    ".cnnlab-view .cm-ticks span{position:absolute;transform:translateX(-50%)}"
    ".cnnlab-view .pb-legend span{margin-right:8px}"
    "</style>"
)


def view(kind: str, title: str, meta: str, *body: object) -> str:
    """One self-contained view: the style, a title line, a line of facts, then ``body``."""
    return str(
        html(
            '<div class="cnnlab-view {}">{}<div class="cv-title">{}</div>'
            '<div class="cv-meta">{}</div>{}</div>',
            kind,
            STYLE,
            title,
            meta,
            Markup("").join(body),
        )
    )


def plural(count: int, word: str) -> str:
    """``"1 class"``, ``"10 classes"``, ``"54,000 images"``."""
    return f"{count:,} {word}" + ("" if count == 1 else "es" if word.endswith("s") else "s")
