"""URLs of the SEMOSS face, mounted at /Monolith/api/."""

from django.urls import path

from jobs.faces.semoss import views

urlpatterns = [
    path("config", views.Config.as_view()),
    path("logout/all", views.LogoutAll.as_view()),
    path("engine/runPixel", views.RunPixel.as_view()),
    path("engine/runPixelAsync", views.RunPixelAsync.as_view()),
    path("engine/pixelJobStreaming", views.PixelJobStreaming.as_view()),
    path("engine/partial", views.Partial.as_view()),
    path("engine/result", views.Result.as_view()),
    path("engine/status", views.Status.as_view()),
    path("engine/terminate", views.Terminate.as_view()),
]
