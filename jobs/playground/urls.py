"""URLs of the playground, mounted at the site root (WhiteNoise serves its static files)."""

from __future__ import annotations

from django.urls import path

from jobs.playground import views

urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("playground/login/", views.login, name="playground-login"),
    path("playground/logout/", views.logout, name="playground-logout"),
]
