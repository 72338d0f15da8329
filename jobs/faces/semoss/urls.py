"""URLs of the SEMOSS face, mounted at /Monolith/api/."""

from django.urls import path

from jobs.faces.semoss import views

urlpatterns = [
    path("config", views.config),
    path("logout/all", views.logout_all),
    path("engine/runPixel", views.run_pixel),
    path("engine/runPixelAsync", views.run_pixel_async),
    path("engine/pixelJobStreaming", views.pixel_job_streaming),
    path("engine/partial", views.partial),
    path("engine/result", views.result),
    path("engine/status", views.status),
    path("engine/terminate", views.terminate),
]
