"""URLs of the OpenAI face, mounted at /v1/ (the native face owns /v1/jobs)."""

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from jobs.faces.common.schema import document_view
from jobs.faces.openai import batches, embeddings, files, stored, views, webhooks
from jobs.faces.openai.responses import views as responses

urlpatterns = [
    path("chat/completions", views.ChatCompletions.as_view(), name="openai-chat-completions"),
    path("chat/completions/<str:completion_id>", stored.Completion.as_view(), name="openai-chat-completion"),
    path(
        "chat/completions/<str:completion_id>/messages",
        stored.Messages.as_view(),
        name="openai-chat-messages",
    ),
    path("chat/completions/<str:completion_id>/cancel", views.Cancel.as_view(), name="openai-chat-cancel"),
    path("completions", views.TextCompletions.as_view(), name="openai-completions"),
    path(
        "completions/<str:completion_id>/cancel", views.TextCancel.as_view(), name="openai-completion-cancel"
    ),
    path("embeddings", embeddings.Embeddings.as_view(), name="openai-embeddings"),
    path("responses", responses.Responses.as_view(), name="openai-responses"),
    path("responses/<str:response_id>", responses.Response.as_view(), name="openai-response"),
    path("responses/<str:response_id>/cancel", responses.Cancel.as_view(), name="openai-response-cancel"),
    path(
        "responses/<str:response_id>/input_items",
        responses.InputItems.as_view(),
        name="openai-response-input-items",
    ),
    path("webhook_endpoints", webhooks.Endpoints.as_view(), name="openai-webhook-endpoints"),
    path(
        "webhook_endpoints/<str:webhook_endpoint_id>",
        webhooks.Endpoint.as_view(),
        name="openai-webhook-endpoint",
    ),
    path(
        "webhook_endpoints/<str:webhook_endpoint_id>/rotate_secret",
        webhooks.RotateSecret.as_view(),
        name="openai-webhook-rotate-secret",
    ),
    path(
        "webhook_endpoints/<str:webhook_endpoint_id>/deliveries",
        webhooks.Deliveries.as_view(),
        name="openai-webhook-deliveries",
    ),
    path(
        "webhook_endpoints/<str:webhook_endpoint_id>/deliveries/<str:delivery_id>/resend",
        webhooks.Resend.as_view(),
        name="openai-webhook-resend",
    ),
    path("files", files.Files.as_view(), name="openai-files"),
    path("files/<str:file_id>", files.FileDetail.as_view(), name="openai-file"),
    path("files/<str:file_id>/content", files.FileContent.as_view(), name="openai-file-content"),
    path("batches", batches.Batches.as_view(), name="openai-batches"),
    path("batches/<str:batch_id>", batches.BatchDetail.as_view(), name="openai-batch"),
    path("batches/<str:batch_id>/cancel", batches.BatchCancel.as_view(), name="openai-batch-cancel"),
    path("models", views.Models.as_view(), name="openai-models"),
    path("models/<str:model_id>", views.Model.as_view(), name="openai-model"),
    path(
        "openapi.json",
        document_view(
            "only_v1",
            TITLE="Spool /v1",
            DESCRIPTION=(
                "The OpenAI API (chat completions, stored completions, legacy completions, responses, "
                "embeddings, models, webhook endpoints) and the native jobs API, on one key: "
                "`Authorization: Bearer <secret key>` (or Basic access:secret)."
            ),
        ),
        name="v1-openapi",
    ),  # fmt: skip
    path("docs", SpectacularSwaggerView.as_view(url_name="v1-openapi"), name="v1-docs"),
]
