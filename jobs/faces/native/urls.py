"""URLs of the native jobs face, mounted at /v1/jobs (every pattern starts with "/" or is "")."""

from django.urls import path

from jobs.faces.native import views

urlpatterns = [
    path("", views.jobs, name="native-jobs"),
    # Before "/<job_id>", which would take it for a job id.
    path("/openapi.json", views.openapi, name="native-openapi"),
    # Ids are matched as text so a malformed one gets the same 404 envelope as an unknown one.
    path("/<str:job_id>", views.job, name="native-job"),
    path("/<str:job_id>/chunks", views.chunks, name="native-job-chunks"),
    path("/<str:job_id>/events", views.events, name="native-job-events"),
    path("/<str:job_id>/cancel", views.cancel, name="native-job-cancel"),
]
