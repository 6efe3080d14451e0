"""Annotator accounts on a Label Studio server: sign-up with a password, log-in for a token, simulated accounts.

The open-source API creates users without a password, so :func:`add_annotator` signs up through the
organization's invite link as a browser would, and :func:`login_token` logs in with e-mail and password
through the login form. Accounts worked by a script (a demo, a test) are created as simulated
(:data:`SIMULATED_NAME`), which every kdh report says. Passwords and tokens never appear in messages.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from kdh_ai.errors import InvalidInputError, LabelStudioAuthError, LabelStudioError, LabelStudioUnavailable
from kdh_ai.labelstudio.client import Connection, LabelStudioClient, redact

__all__ = ["SIMULATED_NAME", "Annotator", "add_annotator", "is_simulated", "login_token", "session_post_form"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Annotator:
    """An annotator account that can log in with a password.

    Attributes:
        email: Login e-mail.
        password: Login password (shown once to the lead, who hands it to the annotator).
        user_id: Label Studio user id (what ``completed_by`` holds).
        login_url: Where to log in.
    """

    email: str
    password: str = field(repr=False)
    user_id: int
    login_url: str


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def session_post_form(session: httpx.Client, url: str, form: dict[str, str]) -> httpx.Response:
    """GET a Django form page for its CSRF cookie, then POST the form (no redirects followed)."""
    session.get(url)
    csrf = session.cookies.get("csrftoken")
    if not csrf:
        raise LabelStudioError(f"{url.split('?')[0]} sent no CSRF cookie; is this a Label Studio server?")
    return session.post(url, data={**form, "csrfmiddlewaretoken": csrf},
                        headers={"Referer": url, "X-CSRFToken": csrf}, follow_redirects=False)


def _form_errors(html: str) -> str:
    found = re.findall(r'<ul class="errorlist[^"]*">(.*?)</ul>', html, flags=re.S)
    found += re.findall(r'class="[^"]*(?:error|field_errors)[^"]*"[^>]*>([^<]{3,200})<', html)
    text = " ".join(re.sub(r"<[^>]+>", " ", f) for f in found)
    return " ".join(text.split())[:300] or "the form was not accepted"


def login_token(url: str, email: str, password: str, *, kind: Literal["legacy", "pat"] = "legacy",
                timeout_s: float = 30.0) -> str:
    """Log in with e-mail and password (no browser) and return an API token for that user.

    Args:
        url: Server URL.
        email: The user's e-mail.
        password: The user's password.
        kind: ``"legacy"`` (the user's fixed token) or ``"pat"`` (a new Personal Access Token).

    Raises:
        LabelStudioAuthError: Wrong e-mail or password.
    """
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout_s) as s:
            r = session_post_form(s, f"{base}/user/login/", {"email": email, "password": password})
            if r.status_code not in (301, 302, 303):
                raise LabelStudioAuthError(f"login as {email} at {base} failed: {_form_errors(r.text)}")
            csrf = s.cookies.get("csrftoken") or ""
            if kind == "pat":
                r = s.post(f"{base}/api/token/", headers={"X-CSRFToken": csrf, "Referer": base + "/"})
                r.raise_for_status()
                return r.json()["token"]
            r = s.get(f"{base}/api/current-user/token")
            r.raise_for_status()
            return r.json()["token"]
    except httpx.HTTPStatusError as exc:
        raise LabelStudioError(f"getting an API token for {email} at {base} failed: HTTP "
                               f"{exc.response.status_code}") from None
    except httpx.TransportError as exc:
        raise LabelStudioUnavailable(f"Label Studio at {base} did not answer ({type(exc).__name__}); is it "
                                     "running? `kdh labelstudio status`") from None


SIMULATED_NAME = "SIMULATED"
"""First name of an annotator account created as simulated (``add_annotator(..., simulated=True)``): Label
Studio keeps it with the account, ``kdh pull`` records it with each of the account's annotations, and every
report that names the account says it is simulated."""


def is_simulated(user: dict[str, Any]) -> bool:
    """Whether a Label Studio user record (``/api/users/``) is a simulated annotator's account."""
    return str(user.get("first_name") or "").strip() == SIMULATED_NAME


def add_annotator(connection: Connection, email: str, *, password: str | None = None,
                  first_name: str = "", last_name: str = "", simulated: bool = False) -> Annotator:
    """Create an annotator who can log in with a password, through the organization's invite link.

    The open-source API creates users without a password, so this signs up through the invite link as a
    browser would (``GET /api/invite`` with the admin token, then the sign-up form).

    Args:
        connection: The server, with an admin token.
        email: The annotator's login e-mail.
        password: Their password (default: a random one, returned so the lead can hand it over).
        first_name: Shown in Label Studio.
        last_name: Shown in Label Studio.
        simulated: The account is worked by a script, not a person (a demo or a test): its first name is
            set to :data:`SIMULATED_NAME`, which marks it in Label Studio and in every kdh report.

    Raises:
        ValueError: Not an e-mail, or a password under 8 characters.
        LabelStudioError: The account exists already, or the server refused it (the message says why).
    """
    if not _EMAIL.match(email):
        raise InvalidInputError(f"{email!r} is not an e-mail address; give one like amina@hub.example")
    if password is not None and len(password) < 8:
        raise InvalidInputError("the password needs at least 8 characters")
    password = password or secrets.token_urlsafe(9)
    client = LabelStudioClient(connection)
    if any(u.get("email", "").lower() == email.lower() for u in client.users()):
        raise LabelStudioError(f"an account {email} already exists on {connection.url}; pick another e-mail "
                               "(reset a password with `label-studio reset_password` on the server)")
    invite = client.get_json("api/invite", what="get the invite link")
    token = invite.get("token") if isinstance(invite, dict) else None
    if not token:
        raise LabelStudioError("the server gave no invite token (is the API token an admin's?)")
    signup = f"{connection.url}/user/signup/?token={token}"
    try:
        with httpx.Client(timeout=client.retry.timeout_s) as s:
            r = session_post_form(s, signup, {"email": email, "password": password})
    except httpx.TransportError as exc:
        raise LabelStudioUnavailable(f"Label Studio at {connection.url} did not answer the sign-up "
                                     f"({type(exc).__name__}); is it running?") from None
    if r.status_code not in (301, 302, 303):
        raise LabelStudioError(redact(f"sign-up of {email} refused: {_form_errors(r.text)}", token, password))
    user = next((u for u in client.users() if u.get("email", "").lower() == email.lower()), None)
    if user is None:
        raise LabelStudioError(f"sign-up of {email} seemed to work but the user is not listed")
    if simulated:
        first_name = SIMULATED_NAME
    if first_name or last_name:
        client.request("PATCH", f"api/users/{user['id']}/", what=f"name user {email}",
                       json_body={"first_name": first_name, "last_name": last_name})
    logger.info("Annotator %s (id %s) created on %s", email, user["id"], connection.url)
    return Annotator(email=email, password=password, user_id=int(user["id"]), login_url=f"{connection.url}/user/login/")
