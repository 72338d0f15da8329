"""URLs of the OpenAI face, mounted at /v1/ (the native face owns /v1/jobs)."""

from django.urls import path

from jobs.faces import openapi_v1
from jobs.faces.openai import stored, views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="openai-chat-completions"),
    path("chat/completions/<str:completion_id>", stored.completion, name="openai-chat-completion"),
    path("chat/completions/<str:completion_id>/messages", stored.messages, name="openai-chat-messages"),
    path("chat/completions/<str:completion_id>/cancel", views.cancel, name="openai-chat-cancel"),
    path("models", views.models, name="openai-models"),
    path("models/<str:model_id>", views.model, name="openai-model"),
    path("openapi.json", openapi_v1.openapi, name="v1-openapi"),
]
