"""App configs for jobs, and the admin whose default site is Spool's (the overview first)."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registered here: the system check, and the tasks, which jobs.queueing sends by name
        # (Celery discovers them by itself in a worker only).
        from jobs import redis_topology, tasks  # noqa: F401
        from jobs.compat import onloop
        from jobs.scheduling import signals  # noqa: F401

        onloop.install()


class SpoolAdminConfig(admin_apps.AdminConfig):
    default = False  # named in INSTALLED_APPS; "jobs" alone still means JobsConfig
    default_site = "jobs.adminsite.SpoolAdminSite"
