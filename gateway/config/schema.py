"""The JSON Schema of ``gateway.yaml``, generated from :class:`~gateway.config.document.Document`.

``gateway config-schema`` prints it; ``config/gateway.schema.json`` is a checked-in copy (a test
keeps it equal) that ``gateway.yaml`` and every preset name in their first line,
``# yaml-language-server: $schema=…``, so editors with the YAML language server complete and check
keys as they are typed. Rules across sections (a route naming an upstream) are not in the schema;
``gateway check`` reports those.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.config.document import Document

__all__ = ["json_schema", "render"]


def json_schema() -> dict[str, Any]:
    """The schema as a JSON-able mapping (draft 2020-12, what pydantic generates)."""
    schema = Document.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render() -> str:
    """The schema as the text ``gateway config-schema`` prints and the checked-in copy holds."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
