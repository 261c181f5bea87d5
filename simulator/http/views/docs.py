"""The API description: /openapi.yaml, Swagger UI at /docs and ReDoc at /redoc, all offline (no CDN)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound

bp = Blueprint("docs", __name__)

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
#: The Swagger UI files the /docs page loads, served from the installed swagger-ui-bundle package (no CDN), each
#: with its media type spelled out: every answer says nosniff, so a browser runs or styles nothing mislabelled.
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Video translation job simulator — API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.yaml",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      deepLinking: true,
      validatorUrl: null  // the default would send the document to an online validator
    });
  </script>
</body>
</html>
"""


REDOC_DIR = Path(__file__).resolve().parent.parent / "vendor" / "redoc"
REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Video translation job simulator — API reference</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
  <redoc spec-url="/openapi.yaml"></redoc>
  <script src="/redoc/redoc.standalone.js"></script>
</body>
</html>
"""


@bp.get("/redoc")
def redoc() -> Response:
    """Answer the ReDoc page (the API reference, read-only, offline)."""
    return Response(REDOC_PAGE, mimetype="text/html")


@bp.get("/redoc/redoc.standalone.js")
def redoc_script() -> Response:
    """Answer ReDoc's script, vendored in simulator/http/vendor/redoc."""
    return Response((REDOC_DIR / "redoc.standalone.js").read_bytes(), mimetype="text/javascript")


@bp.get("/openapi.yaml")
def openapi_document() -> Response:
    """Answer the OpenAPI document."""
    return Response(OPENAPI_PATH.read_text(encoding="utf-8"), mimetype="application/yaml")


@bp.get("/docs")
def docs() -> Response:
    """Answer the Swagger UI page."""
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/<asset>")
def docs_asset(asset: str) -> Response:
    """Answer one of the Swagger UI files."""
    mimetype = DOCS_ASSETS.get(asset)
    if mimetype is None:
        raise NotFound()
    return Response((swagger_ui_path / asset).read_bytes(), mimetype=mimetype)
