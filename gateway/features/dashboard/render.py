"""HTML for the dashboard: Jinja2 templates from ``templates/`` beside it (autoescaped, so a token
name can never become markup) and the static assets from ``static/``."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING

from gateway.config import TokenType
from gateway.core.lazy import lazy_module
from gateway.store.base import TokenRecord, User, Workspace

if TYPE_CHECKING:
    import jinja2
else:
    jinja2 = lazy_module("jinja2")  # first use imports it (gateway/core/lazy.py)

__all__ = ["STATIC", "confirm_revoke", "login", "message", "page", "row", "signed_out"]


@functools.cache
def _environment() -> jinja2.Environment:
    """Built on the first page rendered, not at import (see gateway/core/lazy.py)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.features.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _asset(name: str) -> bytes:
    return resources.files("gateway.features.dashboard").joinpath("static", name).read_bytes()


STATIC: dict[str, tuple[bytes, str]] = {
    "dashboard.js": (_asset("dashboard.js"), "text/javascript"),
    "dashboard.css": (_asset("dashboard.css"), "text/css"),
}


def _when(ts: float | None, never: str = "Never") -> dict[str, str]:
    if ts is None:
        return {"iso": "", "text": never}
    dt = datetime.fromtimestamp(ts, UTC)
    return {"iso": dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "text": dt.strftime("%Y-%m-%d %H:%M UTC")}


def row(
    path: str,
    t: TokenRecord,
    *,
    now: float,
    admin: bool,
    creator: str,
    can_revoke: bool,
    csrf: str,
    workspace_id: str,
) -> str:
    return (
        _environment()
        .get_template("dashboard_row.html")
        .render(
            path=path,
            t=t,
            status=t.state(now),
            scopes=sorted(t.scopes),
            created=_when(t.created_at),
            last_used=_when(t.last_used_at),
            expires=_when(t.expires_at),
            admin=admin,
            creator=creator,
            can_revoke=can_revoke,
            csrf=csrf,
            workspace_id=workspace_id,
        )
    )


def page(
    path: str,
    *,
    user: User,
    csrf: str,
    place_workspaces: list[Workspace],
    workspace: Workspace,
    role: str,
    admin: bool,
    grantable: list[str],
    types: list[TokenType],
    rows: list[str],
    created: tuple[TokenRecord, str] | None,
    error: str | None,
) -> str:
    return (
        _environment()
        .get_template("dashboard.html")
        .render(
            path=path,
            user=user,
            csrf=csrf,
            workspaces=place_workspaces,
            workspace=workspace,
            role=role,
            admin=admin,
            grantable=grantable,
            types=types,
            inherit=bool(types) and all(t.inherit_user_permissions for t in types),
            rows=rows,
            created=created,
            error=error,
        )
    )


def login(path: str, *, user: User, link: str, csrf: str) -> str:
    return (
        _environment()
        .get_template("dashboard_login.html")
        .render(path=path, user=user, link=link, csrf=csrf)
    )


def confirm_revoke(path: str, t: TokenRecord, *, csrf: str, workspace_id: str) -> str:
    return (
        _environment()
        .get_template("dashboard_confirm.html")
        .render(path=path, t=t, csrf=csrf, workspace_id=workspace_id)
    )


def message(path: str, *, title: str, text: str, code: str | None = None) -> str:
    return (
        _environment()
        .get_template("dashboard_message.html")
        .render(path=path, title=title, text=text, code=code)
    )


def signed_out(path: str) -> str:
    return message(
        path,
        title="Sign in",
        text="You are signed out. Ask an administrator for a sign-in link "
        "(gateway user login-link YOUR-EMAIL) and open it in this browser.",
        code="UNAUTHORIZED",
    )
