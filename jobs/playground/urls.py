"""URLs of the playground, and the static files it and the admin need, mounted at the site root."""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.views import serve
from django.urls import path

from jobs.playground import views

urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("playground/login/", views.login, name="playground-login"),
    path("playground/logout/", views.logout, name="playground-logout"),
    # uvicorn serves no static files and Spool ships no reverse proxy, so without this route the
    # admin and the playground would load without their CSS and JS. `insecure` serves them with
    # DEBUG off too; a deployment behind a proxy or CDN serves STATIC_ROOT there instead.
    path(f"{settings.STATIC_URL.strip('/')}/<path:path>", serve, {"insecure": True}),
]
