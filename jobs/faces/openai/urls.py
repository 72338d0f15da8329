"""URLs of the OpenAI face, mounted at /v1/ (the native face owns /v1/jobs)."""

from django.urls import path

from jobs.faces import openapi_v1
from jobs.faces.openai import stored, views

urlpatterns = [
    path("chat/completions", views.ChatCompletions.as_view(), name="openai-chat-completions"),
    path("chat/completions/<str:completion_id>", stored.Completion.as_view(), name="openai-chat-completion"),
    path(
        "chat/completions/<str:completion_id>/messages",
        stored.Messages.as_view(),
        name="openai-chat-messages",
    ),
    path("chat/completions/<str:completion_id>/cancel", views.Cancel.as_view(), name="openai-chat-cancel"),
    path("models", views.Models.as_view(), name="openai-models"),
    path("models/<str:model_id>", views.Model.as_view(), name="openai-model"),
    path("openapi.json", openapi_v1.openapi, name="v1-openapi"),
]
