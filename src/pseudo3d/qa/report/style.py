"""The page's inline stylesheet (no external fonts or resources: the file must work offline)."""

from __future__ import annotations

from pseudo3d.qa.report import theme

_TEMPLATE = """
*{box-sizing:border-box}
html{scroll-behavior:smooth;scroll-padding-top:56px}
body{margin:0;background:CANVAS;color:INK;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;-webkit-font-smoothing:antialiased}
.wrap{max-width:1180px;margin:0 auto;padding:0 28px}
header.top{background:INK;color:#fff;padding:26px 0 18px}
header.top .kicker{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:ACCENT_LIGHT;margin:0}
header.top h1{margin:2px 0 4px;font-size:26px;font-weight:650;letter-spacing:-.01em}
header.top .sub{margin:0;color:#c9d1dd;font-size:13px}
nav.toc{position:sticky;top:0;z-index:5;background:rgba(255,255,255,.96);border-bottom:1px solid RULE;backdrop-filter:blur(6px)}
nav.toc .wrap{display:flex;gap:4px;overflow-x:auto;padding-top:8px;padding-bottom:8px}
nav.toc a{color:MUTED;text-decoration:none;font-size:13px;padding:4px 10px;border-radius:999px;white-space:nowrap}
nav.toc a:hover{background:CANVAS;color:INK}
section{background:PAPER;border:1px solid RULE;border-radius:12px;margin:22px 0;padding:22px 26px 24px}
section h2{margin:0 0 2px;font-size:18px;font-weight:650;letter-spacing:-.01em}
section .lead{margin:0 0 18px;color:MUTED;font-size:13px;max-width:860px}
h3{font-size:14px;margin:22px 0 8px}
.verdict{display:flex;align-items:center;gap:12px;padding:12px 16px;border-radius:10px;margin:0 0 18px;font-size:15px}
.verdict.good{background:#e8f3ec}.verdict.review{background:#fdf3e1}.verdict.poor{background:ALERT_LIGHT}
.pill{display:inline-block;font-size:11px;font-weight:700;letter-spacing:.06em;text-transform:uppercase;padding:3px 9px;border-radius:999px;color:#fff;white-space:nowrap}
.pill.good,.pill.ok{background:GOOD}.pill.review{background:WARN}.pill.poor,.pill.failed{background:ALERT}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(165px,1fr));gap:12px}
.stat{border:1px solid RULE;border-radius:10px;padding:12px 14px}
.stat .k{font-size:12px;color:MUTED;text-transform:uppercase;letter-spacing:.05em}
.stat .v{font-size:24px;font-weight:650;line-height:1.25;font-variant-numeric:tabular-nums}
.stat .d{font-size:12.5px;color:MUTED}
.funnel{display:grid;grid-template-columns:170px 1fr 230px;column-gap:16px;align-items:center}
.funnel .label{font-weight:600}
.funnel .label small,.funnel .value small{display:block;font-weight:400;color:MUTED;font-size:12px}
.funnel .bar{height:30px;background:CANVAS;border-radius:6px;overflow:hidden}
.funnel .bar span{display:block;height:100%;background:ACCENT;border-radius:6px;min-width:3px}
.funnel .step.inputs .bar span{background:ACCENT_LIGHT}
.funnel .value{font-variant-numeric:tabular-nums}
.funnel .drop{grid-column:2/4;color:ALERT;font-size:12.5px;padding:3px 0 7px 10px;border-left:2px solid ALERT_LIGHT;margin:3px 0 8px 12px}
.funnel .drop.none{color:MUTED;border-left-color:RULE}
.funnel .step{display:contents}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:600;color:MUTED;font-size:12px;text-transform:uppercase;letter-spacing:.04em;border-bottom:1px solid RULE;padding:8px 10px}
td{border-bottom:1px solid RULE;padding:7px 10px;vertical-align:top}
tbody tr:last-child td{border-bottom:none}
tbody tr:hover td{background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.file{font-weight:600;min-width:190px;overflow-wrap:anywhere}
td.msg{color:MUTED}
td.reason{color:ALERT}
code,.mono{font-family:ui-monospace,"SF Mono",Menlo,Consolas,monospace;font-size:12px}
.tag{display:inline-block;font-size:12px;padding:1px 8px;border-radius:6px;background:CANVAS;border:1px solid RULE;white-space:nowrap}
.tablewrap{overflow-x:auto;border:1px solid RULE;border-radius:10px}
details>summary{cursor:pointer;font-weight:600;font-size:14px;margin:22px 0 8px}
#sources>details>summary{margin-top:0}
.minibar{display:inline-block;width:70px;height:7px;background:CANVAS;border-radius:4px;margin-right:8px;vertical-align:middle;overflow:hidden}
.minibar i{display:block;height:100%;background:ALERT}
.empty{color:MUTED;font-style:italic;margin:4px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.card{border:1px solid RULE;border-radius:10px;padding:12px 14px 10px;display:flex;flex-direction:column}
.card h4{margin:0;font-size:13.5px}
.card .meta{font-size:12px;color:MUTED;margin:1px 0 6px}
.card .meta .bad{color:ALERT;font-weight:600}
.card img{width:100%;height:auto;display:block}
.card .foot{font-size:12px;color:MUTED;margin-top:4px;font-variant-numeric:tabular-nums}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:18px;align-items:start}
.pair img{width:100%;height:auto}
.keynums{display:flex;flex-wrap:wrap;gap:8px 26px;margin:6px 0 14px;font-size:13px}
.keynums b{font-size:17px;font-variant-numeric:tabular-nums}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:16px}
.shot{border:1px solid RULE;border-radius:10px;overflow:hidden}
.shot header{padding:10px 14px 6px}
.shot header h4{margin:0;font-size:14px;word-break:break-all}
.shot header .meta{font-size:12px;color:MUTED}
.shot .views{display:grid;grid-template-columns:1fr 1fr;gap:2px;background:RULE}
.shot figure{margin:0;background:CANVAS;display:flex;flex-direction:column}
.shot figure img{width:100%;aspect-ratio:1/1;object-fit:contain;display:block;background:INK}
.shot figure.mesh img{background:CANVAS}
.shot figcaption{font-size:11.5px;color:MUTED;padding:5px 10px 7px;background:PAPER}
.shot .missing{aspect-ratio:1/1;display:flex;align-items:center;justify-content:center;text-align:center;padding:18px;color:ALERT;font-size:12.5px;background:ALERT_LIGHT}
.shot .plot{padding:6px 10px 2px}
.shot .plot img{width:100%;height:auto;display:block}
.shot .foot{font-size:12px;color:MUTED;padding:0 14px 10px;font-variant-numeric:tabular-nums}
footer{color:MUTED;font-size:12px;padding:8px 0 40px}
footer code{font-size:11.5px}
@media (max-width:760px){.funnel{grid-template-columns:1fr}.funnel .drop{grid-column:1}.pair{grid-template-columns:1fr}.gallery{grid-template-columns:1fr}}
@media print{nav.toc{display:none}section{break-inside:avoid;border:none}}
"""



def _themed(css: str) -> str:
    """Substitute the palette names of :mod:`.theme` (longest first) and drop the line breaks."""
    for name in sorted(("ACCENT_LIGHT", "ALERT_LIGHT", "ACCENT", "ALERT", "CANVAS", "PAPER", "MUTED", "RULE",
                        "INK", "GOOD", "WARN"), key=len, reverse=True):
        css = css.replace(name, getattr(theme, name))
    return " ".join(line.strip() for line in css.strip().splitlines())


CSS = _themed(_TEMPLATE)
