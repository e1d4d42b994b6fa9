"""``/v1/docs``: the API's reference page, built from the OpenAPI document, with no CDN.

FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN, which a deployment behind
a firewall (or a careful one) does not reach; they are switched off (``web/app.py``). This
page is plain HTML rendered on the server from ``/openapi.json``: every operation with its
scope, parameters, body and answers, and every problem type (``problems.TYPES``), which the
problem documents' ``type`` links to.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from web.api.problems import TYPES

router = APIRouter()

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f4}pre{padding:.6rem;overflow:auto}
h2{border-bottom:1px solid #ddd;margin-top:2.5rem}h3{margin-bottom:.2rem}
.m{display:inline-block;min-width:4.5rem;font-weight:600}.s{color:#666}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
"""


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if ref:
        name = str(ref).rsplit("/", 1)[-1]
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    return html.escape(str(schema.get("title") or schema.get("type") or "object"))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    out = [
        f'<h3 id="{html.escape(op.get("operationId", ""))}"><span class="m">{method.upper()}</span>'
        f"<code>{html.escape(path)}</code> {html.escape(op.get('summary', ''))}</h3>",
        f'<p class="s">scope: <code>{html.escape(str(op.get("x-scope", "-")))}</code></p>',
    ]
    if op.get("description"):
        out.append(f"<p>{html.escape(op['description'])}</p>")
    params = op.get("parameters") or []
    if params:
        rows = "".join(
            f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(p['in'])}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td>{html.escape(p.get('description', ''))}</td></tr>"
            for p in params
        )
        out.append(
            f"<table><tr><th>parameter</th><th>in</th><th>required</th><th></th></tr>{rows}</table>"
        )
    body = (op.get("requestBody") or {}).get("content", {}).get("application/json")
    if body:
        out.append(f"<p>body: {_schema_name(body.get('schema', {}))}</p>")
    answers = []
    for status, answer in (op.get("responses") or {}).items():
        content = answer.get("content") or {}
        first: dict[str, Any] = next(iter(content.values()), {}) if content else {}
        schema = first.get("schema", {})
        shown = _schema_name(schema) if schema else ""
        said = html.escape(answer.get("description", ""))
        answers.append(f"<li><b>{html.escape(status)}</b> {said} {shown}</li>")
    out.append(f"<ul>{''.join(answers)}</ul>")
    return "\n".join(out)


def render_page(spec: dict[str, Any]) -> str:
    ops = [
        _operation(path, method, op)
        for path, methods in spec.get("paths", {}).items()
        if path.startswith("/v1/")
        for method, op in methods.items()
    ]
    problems = "".join(
        f'<tr id="problem-{slug}"><td><code>{slug}</code></td><td>{status}</td>'
        f"<td>{html.escape(title)}</td></tr>"
        for slug, (status, title) in TYPES.items()
    )
    schemas = "".join(
        f'<h3 id="schema-{html.escape(name)}">{html.escape(name)}</h3>'
        f"<pre>{html.escape(json.dumps(schema, indent=2))}</pre>"
        for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items())
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>renderq HTTP API</title><style>{_STYLE}</style></head><body>
<h1>renderq HTTP API <span class="s">v1</span></h1>
<p>Send <code>Authorization: Bearer rq_&lt;id&gt;_&lt;secret&gt;</code> (create a key with
<code>python -m scripts.api_keys create --name NAME --scope produce --scope read</code>).
Errors are <a href="https://www.rfc-editor.org/rfc/rfc9457">RFC 9457</a> problem documents
(<code>application/problem+json</code>). The machine-readable document is
<a href="/openapi.json">/openapi.json</a>; try the operations in the browser at
<a href="/v1/docs/try">/v1/docs/try</a>.</p>
<h2>Operations</h2>{"".join(ops)}
<h2>Problem types</h2><table><tr><th>type</th><th>status</th><th>title</th></tr>{problems}</table>
<h2>Schemas</h2>{schemas}
</body></html>"""


@router.get("/docs", include_in_schema=False)
def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(render_page(request.app.openapi()))


#: Swagger UI's two files, from the ``swagger-ui-bundle`` package (vendored there).
_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
}


@router.get("/docs/try", include_in_schema=False)
def try_page() -> HTMLResponse:
    """Swagger UI over ``/openapi.json`` (Authorize with an API key, then "Try it out"),
    its script and style served from this process."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="renderq HTTP API: try it",
        swagger_js_url="/v1/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/v1/docs/assets/swagger-ui.css",
        swagger_favicon_url="data:,",
    )


@router.get("/docs/assets/{name}", include_in_schema=False)
def asset(name: str) -> Response:
    if name not in _ASSETS:
        return Response(status_code=404)
    path = Path(swagger_ui_bundle.swagger_ui_path) / name
    return FileResponse(path, media_type=_ASSETS[name], headers={"Cache-Control": "max-age=86400"})
