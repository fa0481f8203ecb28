"""Django admin for the orders domain.

Only markets are edited here (``enabled``, the grid and fees). Orders, trades and balances are written
by intake and the matcher alone (the book in the matcher's memory must match the DB), so their admin
is read-only. Large tables skip the exact count (``show_full_result_count``) and join what a row shows.
Dead letters are read, corrected (the payload, while dead), requeued and discarded; the index shows
how many wait.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import get_content_type_for_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator, smart_split, unescape_string_literal

from orders.apikeys import api_key_create, api_key_revoke, parse_networks, parse_scopes
from orders.deadletters import dead_letter_check_payload, dead_letter_discard, dead_letter_requeue
from orders.models import (
    ApiKey,
    ApiKeyScope,
    Balance,
    DeadLetter,
    DeadLetterKind,
    DeadLetterStatus,
    Market,
    Order,
    Trade,
    choices,
)
from orders.templatetags.dead_letters import pretty_json, utc
from spot.errors import ApplicationError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and detail pages, no add, change or delete."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "tick_size",
        "lot_size",
        "min_quantity",
        "min_notional",
        "maker_fee_rate",
        "taker_fee_rate",
        "enabled",
    )
    list_display_links = ("code",)
    list_editable = ("enabled",)
    list_filter = ("enabled",)
    ordering = ("coin", "currency")
    readonly_fields = ("created_at",)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "market",
        "trade_type",
        "type",
        "price",
        "base_price",
        "stop_condition",
        "quantity",
        "executed_quantity",
        "status",
        "client_order_id",
        "updated_at",
    )
    list_filter = ("status", "trade_type", "type", "coin")
    # Not client_order_id: it is unique per user only, and OR'ed with the id it would turn every search
    # into a scan of the table (its index leads with the user).
    list_select_related = ("user",)
    search_fields = ("=id",)
    ordering = ("-created_at",)

    @admin.display(description="market", ordering="coin")
    def market(self, order: Order) -> str:
        return order.market_code


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("id", "market", "price", "quantity", "taker_side", "buy_order_id", "sell_order_id", "created_at")
    list_filter = ("coin", "taker_side")
    search_fields = ("=id", "=buy_order__id", "=sell_order__id")
    ordering = ("-created_at",)

    @admin.display(description="market", ordering="coin")
    def market(self, trade: Trade) -> str:
        return f"{trade.coin}_{trade.currency}"


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("user", "asset", "total", "held", "available", "updated_at")
    list_filter = ("asset",)
    list_select_related = ("user",)
    search_fields = ("user__username",)
    ordering = ("user_id", "asset")


# --- API keys (docs/API.md, "Authentication") ---------------------------------------------------------
#
# Created here with the service (the secret is shown on the page after saving, once, and stored
# nowhere in plain text, not even in a message cookie), revoked with the `revoke` action. A key never
# changes and is never deleted: a revoked key stays for the record, and a new key replaces it.


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=choices(ApiKeyScope), widget=forms.CheckboxSelectMultiple, initial=[ApiKeyScope.READ]
    )
    allowed_ips = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed IPs",
        help_text="IP addresses or CIDR networks, one a line; empty allows every address.",
    )

    class Meta:
        model = ApiKey
        fields = ("user", "label")

    def clean_scopes(self) -> str:
        return self._checked(parse_scopes, self.cleaned_data["scopes"])

    def clean_allowed_ips(self) -> list[str]:
        return self._checked(parse_networks, self.cleaned_data["allowed_ips"].split())

    @staticmethod
    def _checked(parse: Callable[[Any], Any], value: Any) -> Any:
        try:
            return parse(value)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("key_id", "user", "label", "scopes", "allowed", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "scopes")
    list_select_related = ("user",)
    search_fields = ("=key_id", "label", "user__username")
    ordering = ("-created_at",)
    actions = ["revoke"]
    show_full_result_count = False

    @admin.display(description="allowed IPs")
    def allowed(self, key: ApiKey) -> str:
        return ", ".join(key.allowed_ips) or "any"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("user", "label", "scopes", "allowed_ips")
        return ("key_id", "user", "label", "scopes", "allowed", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.get_fields(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a key never changes: revoke it and create another

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_apikey")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        data = form.cleaned_data
        key, secret = api_key_create(
            user=data["user"], label=data["label"], scopes=data["scopes"], allowed_ips=data["allowed_ips"]
        )
        obj.__dict__.update({f.attname: getattr(key, f.attname) for f in ApiKey._meta.concrete_fields})
        obj._state.adding = False
        request._api_key_secret = secret  # type: ignore[attr-defined]  # for response_add, this request only

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"API key {obj.key_id} created",
            "key": obj,
            "secret": request._api_key_secret,  # type: ignore[attr-defined]
            "changelist_url": reverse("admin:orders_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/orders/apikey/created.html", context)
        response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
        return response

    @admin.action(description="Revoke the selected API keys", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = []
        for key_id in queryset.filter(revoked_at__isnull=True).values_list("key_id", flat=True):
            try:
                api_key_revoke(key_id=key_id)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            revoked.append(key_id)
        if revoked:
            self.message_user(request, f"Revoked {len(revoked)} API key(s): {', '.join(revoked)}.", messages.SUCCESS)
        else:
            self.message_user(request, "No active key was selected; nothing revoked.", messages.WARNING)


# --- Dead letters (FR-RL-003, US-002: "DLQ messages can be reprocessed manually") -------------------
#
# Operators list and read dead letters here, correct a payload while a letter is still dead, and
# requeue or discard letters through a confirmation page. The writes are the services' of
# ``orders.deadletters`` (requeue at most once, whoever clicks twice); the admin only asks for them.

DEAD = DeadLetterStatus.DEAD
ORDER_ID = re.compile(r"[0-9]{1,18}")  # fits a BIGINT; anything else cannot be an order id


def pre(text: str) -> str:
    """Text shown as it is, escaped: a payload is untrusted input and must not become markup."""
    return format_html('<pre class="dead-letter-text">{}</pre>', text) if text else "-"


class DeadLetterForm(forms.ModelForm):
    """The one editable field: the payload, checked by the command codec before it is saved."""

    class Meta:
        model = DeadLetter
        fields = ("payload",)
        labels = {"payload": "Corrected payload"}
        help_texts = {
            "payload": "The command (JSON) a requeue sends. Checked by the command codec and against the "
            "order's row when saved; the original payload is kept."
        }
        widgets = {
            "payload": forms.Textarea(
                attrs={"rows": 6, "class": "vLargeTextField dead-letter-text", "spellcheck": "false"}
            )
        }

    def clean_payload(self) -> str:
        payload: str = self.cleaned_data["payload"].strip()
        if payload == self.instance.payload:
            return payload  # unchanged: nothing to check, nothing written
        if not DeadLetter.objects.filter(pk=self.instance.pk, status=DEAD).exists():
            raise forms.ValidationError("This dead letter was handled meanwhile; its payload can no longer change.")
        try:
            dead_letter_check_payload(self.instance, payload)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        return payload


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    form = DeadLetterForm
    list_display = (
        "id",
        "status",
        "market",
        "entry_id",
        "order_id",
        "reason_kind",
        "short_reason",
        "deliveries",
        "correlation_id",
        "last_failure",
        "handled_by",
    )
    list_filter = ("market", "status", "reason_kind", "last_failed_at")
    date_hierarchy = "created_at"
    # Exact matches only (each is indexed or short); see get_search_results for the order id.
    search_fields = ("=entry_id", "=correlation_id", "=order_id")
    search_help_text = "An entry id, a correlation id or an order id (exact)."
    ordering = ("-id",)
    show_full_result_count = False
    actions = ["requeue", "discard"]
    action_confirmation_template = "admin/orders/deadletter/action_confirmation.html"

    class Media:
        css = {"all": ("orders/dead_letters.css",)}

    # -- permissions: read all; change only a dead letter's payload; no add, no delete (discard/purge)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A handled letter is shown read-only: its payload is what was requeued, or evidence.
        return super().has_change_permission(request, obj) and (obj is None or obj.status == DEAD)

    # -- list

    @admin.display(description="reason")
    def short_reason(self, letter: DeadLetter) -> str:
        return Truncator(letter.reason).chars(60)

    @admin.display(description="last failure", ordering="last_failed_at")
    def last_failure(self, letter: DeadLetter) -> str:
        return utc(letter.last_failed_at)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DeadLetter], search_term: str
    ) -> tuple[QuerySet[DeadLetter], bool]:
        # Django's "=order_id" hands every term to the BIGINT lookup, and a term such as an entry id
        # ("1700000000000-0") then fails with a 500. Each term here matches an entry id or a
        # correlation id exactly, and the order id too when the term is an integer.
        matches = Q()
        for term in smart_split(search_term):
            if term[:1] in {'"', "'"} and term[0] == term[-1]:
                term = unescape_string_literal(term)
            alternatives = Q(entry_id=term) | Q(correlation_id=term)
            if ORDER_ID.fullmatch(term):
                alternatives |= Q(order_id=int(term))
            matches &= alternatives
        return queryset.filter(matches), False

    # -- detail

    def payload_editable(self, request: HttpRequest, obj: DeadLetter | None) -> bool:
        """A stream letter's payload, while it is dead (a task's letter has none to correct)."""
        return obj is not None and obj.kind == DeadLetterKind.STREAM and self.has_change_permission(request, obj)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        payload: tuple[str, ...] = ("payload_pretty",)
        if self.payload_editable(request, obj):
            payload = (*payload, "payload")
        if obj is not None and obj.payload != obj.original_payload:
            payload = (*payload, "original_payload_pretty")
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (
                None,
                {
                    "fields": (
                        ("status", "kind"),
                        ("market", "entry_id", "order_id"),
                        ("reason_kind", "deliveries"),
                        "reason",
                        "correlation_id",
                    )
                },
            ),
        ]
        if obj is None or obj.kind == DeadLetterKind.STREAM:
            fieldsets += [
                ("Payload", {"fields": payload}),
                ("Raw stream fields", {"fields": ("fields_pretty",)}),
            ]
        fieldsets.append(("Failure", {"fields": ("exception", "traceback_pretty")}))
        if obj is not None and obj.task_name:
            fieldsets.append(("Task", {"fields": ("task_name", "task_args_pretty", "task_kwargs_pretty")}))
        fieldsets.append(("Handling history", {"fields": ("history",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        shown = [
            "status",
            "kind",
            "market",
            "entry_id",
            "order_id",
            "reason_kind",
            "deliveries",
            "reason",
            "correlation_id",
            "payload_pretty",
            "original_payload_pretty",
            "fields_pretty",
            "exception",
            "traceback_pretty",
            "task_name",
            "task_args_pretty",
            "task_kwargs_pretty",
            "history",
        ]
        if not self.payload_editable(request, obj):
            shown.append("payload")
        return shown

    @admin.display(description="payload (as JSON)")
    def payload_pretty(self, letter: DeadLetter) -> str:
        return pre(pretty_json(letter.payload))

    @admin.display(description="original payload")
    def original_payload_pretty(self, letter: DeadLetter) -> str:
        return pre(pretty_json(letter.original_payload))

    @admin.display(description="fields")
    def fields_pretty(self, letter: DeadLetter) -> str:
        # One row a field, whatever its name; a JSON value (the command in ``c``) pretty-printed.
        if not letter.fields:
            return "-"
        return format_html(
            '<table class="dead-letter-fields">{}</table>',
            format_html_join(
                "",
                '<tr><th scope="row">{}</th><td>{}</td></tr>',
                ((name, pre(pretty_json(str(value)))) for name, value in letter.fields.items()),
            ),
        )

    @admin.display(description="traceback")
    def traceback_pretty(self, letter: DeadLetter) -> str:
        return pre(letter.traceback)

    @admin.display(description="arguments")
    def task_args_pretty(self, letter: DeadLetter) -> str:
        return pre(json.dumps(letter.task_args, indent=2, ensure_ascii=False))

    @admin.display(description="keyword arguments")
    def task_kwargs_pretty(self, letter: DeadLetter) -> str:
        return pre(json.dumps(letter.task_kwargs, indent=2, ensure_ascii=False))

    @admin.display(description="history")
    def history(self, letter: DeadLetter) -> str:
        events: list[tuple[Any, str]] = [
            (letter.first_failed_at, "first failed"),
            (letter.last_failed_at, f"last failed, after {letter.deliveries} delivery(ies)"),
            (letter.created_at, "recorded as a dead letter"),
        ]
        for entry in LogEntry.objects.filter(
            content_type_id=get_content_type_for_model(letter).pk, object_id=str(letter.pk)
        ).select_related("user"):
            events.append((entry.action_time, f"{entry.user.get_username()}: {entry.get_change_message()}"))
        if letter.status != DEAD:
            what = f"{letter.status} by {letter.handled_by}"
            if letter.requeued_as:
                what += f" as {letter.requeued_as}"
            if letter.handled_note:
                what += f": {letter.handled_note}"
            events.append((letter.handled_at, what))
        events.sort(key=lambda event: (event[0] is None, event[0] or 0))
        return format_html(
            '<ul class="dead-letter-history">{}</ul>',
            format_html_join("", "<li><time>{}</time> {}</li>", ((utc(when), what) for when, what in events)),
        )

    def save_model(self, request: HttpRequest, obj: DeadLetter, form: Any, change: bool) -> None:
        # Only the payload, and only while the letter is dead: a conditional update, so that a letter
        # another operator requeued meanwhile keeps the payload it went back with.
        if not DeadLetter.objects.filter(pk=obj.pk, status=DEAD).update(payload=obj.payload):
            raise PermissionDenied("this dead letter was handled meanwhile; its payload was not changed")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_handle": self.has_change_permission(request)}
        letter = self.get_object(request, object_id)
        if letter is not None:
            extra_context["subtitle"] = (
                f"Dead letter {letter.pk}: {letter.market or letter.task_name} {letter.entry_id}"
            )
            if not self.payload_editable(request, letter):  # nothing to save
                extra_context.update(show_save=False, show_save_and_continue=False)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Eleven columns: the list takes the navigation sidebar's width too.
        extra_context = {"title": "Dead letters", "is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    # -- requeue and discard

    def get_urls(self) -> list[URLPattern]:
        # A letter's own "Requeue" and "Discard" buttons open the actions' confirmation page.
        confirm = self.admin_site.admin_view(self.confirm_one_view)
        return [
            path("<path:object_id>/requeue/", confirm, {"verb": "requeue"}, name="orders_deadletter_requeue"),
            path("<path:object_id>/discard/", confirm, {"verb": "discard"}, name="orders_deadletter_discard"),
            *super().get_urls(),
        ]

    def confirm_one_view(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return self.confirmation(request, self.get_queryset(request).filter(pk=object_id), verb)

    @admin.action(description="Requeue selected dead letters", permissions=["change"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> HttpResponse | None:
        """Each letter goes back on its market's stream as a fresh delivery, at most once."""
        if request.POST.get("post") != "yes":
            return self.confirmation(request, queryset, "requeue")
        by = request.user.get_username()
        return self.handle_each(request, queryset, "requeued", lambda pk: dead_letter_requeue(pk, by=by))

    @admin.action(description="Discard selected dead letters", permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> HttpResponse | None:
        """Each letter is marked handled without going back on its stream; the reason is kept."""
        if request.POST.get("post") != "yes":
            return self.confirmation(request, queryset, "discard")
        by = request.user.get_username()
        note = request.POST.get("note", "").strip()
        return self.handle_each(request, queryset, "discarded", lambda pk: dead_letter_discard(pk, by=by, note=note))

    def handle_each(
        self, request: HttpRequest, queryset: QuerySet[DeadLetter], done: str, handle: Callable[[int], object]
    ) -> None:
        """Calls ``handle`` for each letter, and says how many were handled and why each other was not."""
        handled = 0
        for letter in queryset.order_by("id"):
            try:
                handle(letter.pk)
            except ApplicationError as exc:
                self.message_user(
                    request,
                    f"Dead letter {letter.pk} ({letter.market or 'task'} {letter.entry_id}) was not {done}: "
                    f"{exc.message}",
                    messages.ERROR,
                )
            else:
                handled += 1
        if handled:
            self.message_user(request, f"{handled} dead letter(s) {done}.", messages.SUCCESS)
        return None  # back to the list

    def payload_check(self, letter: DeadLetter) -> tuple[bool, str]:
        """Whether a requeue would take the letter, and what it would say: shown before the confirmation."""
        if letter.status != DEAD:
            return False, f"already {letter.status}"
        if letter.kind == DeadLetterKind.TASK:
            return True, f"task {letter.task_name} sent again"
        try:
            dead_letter_check_payload(letter, letter.payload)
        except ApplicationError as exc:
            return False, f"will be refused: {exc.message}"
        return True, "payload ok"

    def confirmation(self, request: HttpRequest, queryset: QuerySet[DeadLetter], verb: str) -> TemplateResponse:
        """The page between choosing an action and doing it (as Django's delete confirmation)."""
        letters = list(queryset.order_by("id"))
        checks = {letter.pk: self.payload_check(letter) for letter in letters} if verb == "requeue" else {}
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb.capitalize()} dead letters",
            "subtitle": None,
            "verb": verb,
            "done": {"requeue": "requeued", "discard": "discarded"}[verb],
            "letters": [(letter, *checks.get(letter.pk, (True, ""))) for letter in letters],
            "checked": bool(checks),
            "waiting": sum(letter.status == DEAD for letter in letters),
            "opts": self.opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": reverse("admin:orders_deadletter_changelist", current_app=self.admin_site.name),
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.action_confirmation_template, context)


# The admin index shows how many dead letters wait (issue 8): the project's one admin site, its index
# template extended (orders/templates/admin/orders/index.html; the count comes from a template tag).
admin.site.index_template = "admin/orders/index.html"
