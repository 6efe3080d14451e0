"""What every page kdh renders shares: its style sheet and how a matplotlib figure becomes an inline image.

The client report (:mod:`kdh_ai.report.client`), the annotator feedback page (:mod:`kdh_ai.report.feedback`)
and the trainee page (:mod:`kdh_ai.report.trainee`) are self-contained HTML files that open without a network:
one style sheet, figures as ``data:`` URIs.
"""

from __future__ import annotations

import base64
import io
from typing import Any

__all__ = ["PAGE_CSS", "figure_png"]

PAGE_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2433}
main{max-width:980px;margin:0 auto;padding:24px;box-sizing:border-box}
h1{margin:0 0 4px 0;font-size:26px} h2{margin-top:32px;border-bottom:2px solid #d9dde5;padding-bottom:4px}
.sub{color:#5b6475;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08);min-width:170px;flex:1}
.card .v{font-size:26px;font-weight:700} .card .l{color:#5b6475;font-size:13px}
.ok{color:#167a3e} .bad{color:#b42318}
table{border-collapse:collapse;background:#fff;width:100%;font-size:14px;margin:8px 0}
th,td{border-bottom:1px solid #e3e6ec;padding:6px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef0f4} td.n,th.n{text-align:right;white-space:nowrap} td.k{white-space:nowrap}
img{max-width:100%;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:8px 0}
.note{color:#5b6475;font-size:13px}
.verdict{background:#fff;border-left:6px solid #167a3e;border-radius:8px;padding:14px 18px;margin-top:16px;
 box-shadow:0 1px 3px rgba(0,0,0,.08);font-size:17px;line-height:1.45}
.verdict.miss{border-left-color:#b42318} .verdict.none{border-left-color:#8a93a6}
.verdict .how{font-size:14px;color:#3d4557;margin-top:8px}
.draft{background:#fff4e5;border:2px solid #c4320a;color:#7a2e0e;border-radius:8px;padding:12px 16px;margin-bottom:16px}
.draft b{font-size:20px;letter-spacing:.08em}
.warn{background:#fffbe6;border:1px solid #e0b400;border-radius:8px;padding:10px 16px;margin-top:12px}
.sim{background:#eef4ff;border:1px solid #7a9be0;border-radius:8px;padding:10px 16px;margin-top:12px}
footer{color:#5b6475;font-size:12px;margin-top:36px;border-top:1px solid #d9dde5;padding-top:8px}
@media print{body{background:#fff} main{max-width:none;padding:0} .card,img,.verdict{box-shadow:none}}
"""
"""The style sheet of kdh's HTML pages."""


def figure_png(fig: Any) -> str:
    """A matplotlib figure as a PNG ``data:`` URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
