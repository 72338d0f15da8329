"""URLs of the native jobs face, mounted at /v1/ before the OpenAI face."""

from django.urls import path

from jobs.faces.native import views

urlpatterns = [
    path("jobs", views.jobs, name="native-jobs"),
    # Before "jobs/<job_id>", which would take it for a job id.
    path("jobs/openapi.json", views.openapi, name="native-openapi"),
    # Ids are matched as text so a malformed one gets the same 404 envelope as an unknown one.
    path("jobs/<str:job_id>", views.job, name="native-job"),
    path("jobs/<str:job_id>/chunks", views.chunks, name="native-job-chunks"),
    path("jobs/<str:job_id>/events", views.events, name="native-job-events"),
    path("jobs/<str:job_id>/cancel", views.cancel, name="native-job-cancel"),
]
