"""The admin site: its index is the operator overview (jobs/admin/overview.py), then the models.

Outside the jobs.admin package on purpose: Django imports this class while it first builds
`admin.site`, and importing jobs.admin then would register every ModelAdmin on a site that the
one being built replaces.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse


class SpoolAdminSite(admin.AdminSite):
    index_template = "admin/jobs/overview/index.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from jobs.admin import overview  # see the module docstring

        return super().index(request, {**overview.context(), **(extra_context or {})})
