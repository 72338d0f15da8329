"""URLs of the SEMOSS face, mounted at /Monolith/api/."""

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from jobs.faces.common.schema import document_view
from jobs.faces.semoss import views

urlpatterns = [
    # The polls first: Django tries the patterns in order, and they are most of the requests.
    path("engine/pixelJobStreaming", views.PixelJobStreaming.as_view()),
    path("engine/partial", views.Partial.as_view()),
    path("config", views.Config.as_view()),
    path("logout/all", views.LogoutAll.as_view()),
    path("engine/runPixel", views.RunPixel.as_view()),
    path("engine/runPixelAsync", views.RunPixelAsync.as_view()),
    path("engine/result", views.Result.as_view()),
    path("engine/status", views.Status.as_view()),
    path("engine/terminate", views.Terminate.as_view()),
    path(
        "openapi.json",
        document_view(
            "only_semoss",
            TITLE="Spool SEMOSS face",
            DESCRIPTION=(
                "The SEMOSS protocol as the ai-server-sdk and frontends speak it: form-encoded (or JSON) "
                "bodies, Basic access_key:secret_key or the session cookie GET /config sets."
            ),
        ),
        name="semoss-openapi",
    ),  # fmt: skip
    path("docs", SpectacularSwaggerView.as_view(url_name="semoss-openapi"), name="semoss-docs"),
]
