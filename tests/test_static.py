"""htmx 2.x is served from portal/static with a matching integrity hash; nothing from other hosts."""

import base64
import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "portal" / "static"
TEMPLATES = STATIC.parent / "templates"


def test_vendored_htmx_is_version_2_and_matches_its_integrity_hash(app):
    body = (STATIC / "htmx.min.js").read_bytes()
    assert re.search(rb'version:"2\.0\.\d+"', body)
    digest = base64.b64encode(hashlib.sha384(body).digest()).decode()
    assert app.config["HTMX_INTEGRITY"] == f"sha384-{digest}"


def test_pages_reference_htmx_locally_with_its_integrity(client, app):
    page = client.get("/login").get_data(as_text=True)
    assert f'src="/static/htmx.min.js" integrity="{app.config["HTMX_INTEGRITY"]}"' in page
    response = client.get("/static/htmx.min.js")
    assert response.status_code == 200
    response.close()


def test_no_template_loads_anything_from_another_host():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), template
