"""An HTML report (v1 `example_html_table.py` style): the SPA renders string results starting with '<'."""

import html

from bifrost import param, workflow

LICENSES = [
    ("Microsoft 365 E3", 25, 23),
    ("Microsoft 365 Business Premium", 40, 40),
    ("Exchange Online (Plan 1)", 10, 4),
]


@workflow(name="license_report", description="License usage as an HTML table", category="Reports")
@param("max_rows", "int", default_value=10, help_text="1-100 rows")
async def license_report(context, max_rows: int = 10):
    max_rows = max(1, min(int(max_rows), 100))
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{used}/{total}</td></tr>" for name, total, used in LICENSES[:max_rows]
    )
    title = html.escape(context.org_name or "All organizations")
    return f"<h2>Licenses for {title}</h2><table><tr><th>SKU</th><th>Used</th></tr>{rows}</table>"
