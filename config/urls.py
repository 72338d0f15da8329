"""Top-level URLs: the admin and each API face."""

from django.contrib import admin
from django.urls import include, path

from jobs import health
from jobs.metrics_view import metrics_view

urlpatterns = [
    # Probes, outside the API faces: no key, no rate limit, no face's error envelope.
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", metrics_view),  # Prometheus; keep it inside the cluster, as the probes
    path("admin/", admin.site.urls),
    path("Monolith/api/", include("jobs.faces.semoss.urls")),
    path("v1/", include("jobs.faces.native.urls")),  # /v1/jobs..., tried before the OpenAI face
    path("v1/", include("jobs.faces.openai.urls")),
    path("", include("jobs.playground.urls")),
]
