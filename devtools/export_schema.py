"""Write the JSON Schema of the ``start_render`` message body for foreign producers.

``python -m devtools.export_schema`` regenerates ``schemas/render-message.schema.json``; a test
fails if the committed file differs from what the code would generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.render_request import RenderMessage

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "render-message.schema.json"


def render_schema() -> str:
    schema = RenderMessage.model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://renderq.dev/schemas/render-message.schema.json",
        "title": "renderq start_render message body",
        "description": (
            "The single positional argument (args[0]) of a start_render message. Limits on "
            "resolution, duration, fps and input_props size are deployment settings and are "
            "checked by the worker; a message breaking them ends as a failed render with "
            "error_code limit_exceeded."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main() -> int:
    SCHEMA_PATH.parent.mkdir(exist_ok=True)
    SCHEMA_PATH.write_text(render_schema())
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
