"""``responses=`` for routes that answer with something else than JSON."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from viewfinder.api.errors import error_responses


def image_file(description: str, media_type: str = "image/*") -> dict[str, Any]:
    """Route keywords for ``GET .../{id}/<image>``: 200 with the image bytes (no JSON schema),
    404 when the id or the stored file is unknown."""
    return {
        "response_class": Response,
        "responses": {
            200: {
                "description": description,
                "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
            },
            **error_responses(404),
        },
    }
