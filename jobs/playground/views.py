"""The playground page and its sign-in; the page itself talks to the SEMOSS face like a frontend."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse_lazy

from jobs.models import Engine

# What the page asks for unless the person changes it: short and unhurried enough to watch.
DEFAULT_MAX_TOKENS = 200
DEFAULT_TEMPERATURE = 0.7


@login_required(login_url=reverse_lazy("playground-login"))
def playground(request: HttpRequest) -> HttpResponse:
    engines = Engine.objects.filter(is_active=True).order_by("name").values("id", "name", "kind")
    return render(
        request,
        "playground/index.html",
        {
            "engines": list(engines),
            "semoss_base": get_script_prefix() + "Monolith/api",
            "max_tokens": DEFAULT_MAX_TOKENS,
            "temperature": DEFAULT_TEMPERATURE,
        },
    )


login = auth_views.LoginView.as_view(
    template_name="playground/login.html",
    redirect_authenticated_user=True,
    next_page=reverse_lazy("playground"),
)
logout = auth_views.LogoutView.as_view(next_page=reverse_lazy("playground-login"))
