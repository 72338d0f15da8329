"""What every /v1 view shares: Bearer auth, allowed methods, JSON bodies, query integers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from jobs import jsonbody
from jobs.auth import user_from_key
from jobs.faces.openai.errors import ApiError, unauthorized

View = Callable[..., Awaitable[HttpResponse]]


def api_view(*methods: str) -> Callable[[View], View]:
    """Authenticate (Bearer secret key, or Basic access:secret), check the method, and turn an
    ApiError raised anywhere below into OpenAI's error envelope."""

    def decorate(view: View) -> View:
        @wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                header = request.headers.get("Authorization", "")
                user = await user_from_key(request) if header else None
                if user is None:
                    raise unauthorized(header)
                if request.method not in methods:
                    raise ApiError(
                        f"Method {request.method} is not allowed here; use {' or '.join(methods)}.",
                        status=405,
                        code="method_not_allowed",
                        retry=False,
                    )
                return await view(request, user, *args, **kwargs)
            except ApiError as exc:
                return exc.response()

        return csrf_exempt(wrapper)

    return decorate


def json_body(request: HttpRequest) -> Any:
    try:
        return jsonbody.loads(request.body)
    except ValueError:
        raise ApiError(
            "We could not parse the JSON body of your request. The API expects a JSON payload "
            "(Content-Type: application/json).",
            code="invalid_json",
        ) from None


def query_int(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            f"Invalid type for '{name}': expected an integer, but got a string instead.",
            param=name,
            code="invalid_type",
        ) from None
    if value < low:
        raise ApiError(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got "
            f"{value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if value > high:
        raise ApiError(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got "
            f"{value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def query_order(request: HttpRequest) -> str:
    order = request.GET.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise ApiError(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
    return order
