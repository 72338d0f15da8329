"""The base view of the OpenAI face: the common DRF pipeline, errors in OpenAI's envelope."""

from __future__ import annotations

from jobs.faces.common.views import FaceView


class OpenAIView(FaceView):
    face = "openai"
    invalid_json = (
        "We could not parse the JSON body of your request. The API expects a JSON payload "
        "(Content-Type: application/json)."
    )
