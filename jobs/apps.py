"""App configs for jobs, and the admin whose default site is Spool's (the overview first)."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import onloop, redis_topology  # noqa: F401  (registers its check)

        onloop.install()


class SpoolAdminConfig(admin_apps.AdminConfig):
    default = False  # named in INSTALLED_APPS; "jobs" alone still means JobsConfig
    default_site = "jobs.adminsite.SpoolAdminSite"
