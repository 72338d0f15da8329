"""URLs of the native jobs face, mounted at /v1/ before the OpenAI face."""

from django.urls import path

from jobs.faces.common.schema import document_view
from jobs.faces.native import completions, embeddings, views

urlpatterns = [
    path("jobs", views.Jobs.as_view(), name="native-jobs"),
    # Before "jobs/<job_id>", which would take it for a job id.
    path(
        "jobs/openapi.json",
        document_view("only_native", TITLE="Spool native jobs API"),
        name="native-openapi",
    ),
    path("jobs/completions", completions.StoredCompletions.as_view(), name="native-completions"),
    path("jobs/embeddings", embeddings.Embeddings.as_view(), name="native-embeddings"),
    # Ids are matched as text so a malformed one gets the same 404 envelope as an unknown one.
    path("jobs/<str:job_id>", views.JobDetail.as_view(), name="native-job"),
    path("jobs/<str:job_id>/chunks", views.Chunks.as_view(), name="native-job-chunks"),
    path("jobs/<str:job_id>/events", views.Events.as_view(), name="native-job-events"),
    path("jobs/<str:job_id>/cancel", views.Cancel.as_view(), name="native-job-cancel"),
    path("jobs/<str:job_id>/read_tokens", views.ReadTokens.as_view(), name="native-job-read-tokens"),
]
