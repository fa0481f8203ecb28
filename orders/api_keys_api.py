"""The session and API key management over HTTP, for people and for a bot's first set-up.

``POST /api/v1/session`` logs in with username and password (the one place the API hashes a password;
``DELETE`` logs out). ``/api/v1/keys`` lists, creates and revokes the user's keys, authenticated by the
session (with its CSRF token) or, to create a key, by username and password in the body ("password
once"). Never by an API key: a key cannot mint keys, so a leaked trading key cannot make itself
permanent.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, get_user, login, logout
from django.middleware.csrf import get_token
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.api import ExactJSONParser, _validated
from orders.apikeys import api_key_create, api_key_list, api_key_revoke
from orders.models import ApiKey, ApiKeyScope, choices
from orders.schema import errors

# JSON only: a browser sends JSON cross-site only after a CORS preflight this API never grants, so a
# hostile page cannot log a visitor in (or out) with a form.
JSON_ONLY = [ExactJSONParser]
NO_SESSION = "log in first (POST /api/v1/session), or send username and password with this request"


class SessionLogin(SessionAuthentication):
    """The session with its CSRF check; unlike DRF's, answers a request without one 401 with
    ``WWW-Authenticate``, as HTTP asks."""

    def authenticate_header(self, request: Request) -> str:
        return 'Session realm="api", login="/api/v1/session"'


class LoginInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class KeyCreateInput(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=choices(ApiKeyScope)), allow_empty=False)
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=100
    )
    # Password once: instead of a session, to create a key from a script.
    username = serializers.CharField(max_length=150, required=False)
    password = serializers.CharField(max_length=4096, required=False, trim_whitespace=False)


class KeyOutput(serializers.Serializer):
    key_id = serializers.CharField()
    label = serializers.CharField()
    scopes = serializers.SerializerMethodField()
    allowed_ips = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_scopes(self, key: ApiKey) -> list[str]:
        return sorted(key.scope_set)


class KeyCreatedOutput(KeyOutput):
    """The answer to creating a key (describes it in the OpenAPI schema; the view adds ``secret``)."""

    secret = serializers.CharField(help_text="The key's secret: shown this once, never again.")


SESSION_OUTPUT = inline_serializer(
    "Session",
    {
        "username": serializers.CharField(),
        "csrf_token": serializers.CharField(help_text="Send as X-CSRFToken with this session's POST and DELETE."),
    },
)


class SessionApi(APIView):
    """``POST /api/v1/session`` {username, password}: logs in (a session cookie) and answers the CSRF
    token the session's unsafe requests must send as ``X-CSRFToken``. ``DELETE``: logs out (204)."""

    authentication_classes: list[Any] = []  # login needs none; logout checks the session itself
    permission_classes = [AllowAny]
    parser_classes = JSON_ONLY

    def get_authenticate_header(self, request: Request) -> str:
        return SessionLogin().authenticate_header(request)  # a wrong password is 401, not DRF's 403

    @extend_schema(
        operation_id="session_create",
        summary="Log in: a session cookie and its CSRF token",
        request=LoginInput,
        responses={200: SESSION_OUTPUT, **errors(400, 401, 413, 415, 429, 503)},
    )
    def post(self, request: Request) -> Response:
        data = _validated(LoginInput, request.data)
        user = _password_user(request, data["username"], data["password"])
        login(request._request, user)
        return Response({"username": user.get_username(), "csrf_token": get_token(request._request)})

    @extend_schema(
        operation_id="session_destroy",
        summary="Log out",
        responses={204: OpenApiResponse(description="Logged out (or there was no session)."), **errors(403, 429, 503)},
    )
    def delete(self, request: Request) -> Response:
        if get_user(request._request).is_authenticated:  # the session's user (DRF's request.user is anonymous)
            SessionLogin().enforce_csrf(request)
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyListCreateApi(APIView):
    """``GET /api/v1/keys``: the user's keys, newest first, revoked ones too (no secrets).
    ``POST /api/v1/keys`` {label, scopes, allowed_ips}: a new key; the answer holds its ``secret``, shown
    this once (201)."""

    authentication_classes = [SessionLogin]
    permission_classes = [AllowAny]  # checked per method below: the session, or password once
    parser_classes = JSON_ONLY

    @extend_schema(
        operation_id="keys_list",
        summary="The user's API keys, revoked ones too (no secrets)",
        responses={200: KeyOutput(many=True), **errors(401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        user = _session_user(request)
        return Response(KeyOutput(api_key_list(user=user), many=True).data)

    @extend_schema(
        operation_id="keys_create",
        summary="Create an API key; the answer holds its secret, shown this once",
        request=KeyCreateInput,
        responses={201: KeyCreatedOutput, **errors(400, 401, 403, 413, 415, 429, 503)},
    )
    def post(self, request: Request) -> Response:
        data = _validated(KeyCreateInput, request.data)
        if "username" in data or "password" in data:
            user = _password_user(request, data.get("username", ""), data.get("password", ""))
        else:
            user = _session_user(request)
        key, secret = api_key_create(
            user=user, label=data["label"], scopes=data["scopes"], allowed_ips=data["allowed_ips"]
        )
        return Response({**KeyOutput(key).data, "secret": secret}, status=status.HTTP_201_CREATED)


class KeyDetailApi(APIView):
    """``DELETE /api/v1/keys/<key_id>``: revokes the user's key (204; at once on every web worker)."""

    authentication_classes = [SessionLogin]
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="keys_revoke",
        summary="Revoke one of the user's API keys",
        parameters=[OpenApiParameter("key_id", str, OpenApiParameter.PATH, description="The key's public id.")],
        responses={
            204: OpenApiResponse(description="Revoked (already revoked is fine)."),
            **errors(401, 403, 404, 429, 503),
        },
    )
    def delete(self, request: Request, key_id: str) -> Response:
        api_key_revoke(key_id=key_id, user=_session_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _session_user(request: Request) -> Any:
    if not request.user or not request.user.is_authenticated:
        raise NotAuthenticated(NO_SESSION)
    return request.user


def _password_user(request: Request, username: str, password: str) -> Any:
    user = authenticate(request._request, username=username, password=password)
    if user is None:  # also an inactive user: ModelBackend refuses them
        raise AuthenticationFailed("wrong username or password")
    return user
