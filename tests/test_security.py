"""Sessions that end, a secret key nobody else has, sign-in that resists guessing, headers and same-origin posts."""
import stat
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD, csrf_token
from tests.factories import steps_workflow

REMEMBER = "remember_token"


def sign_in(client, email: str, password: str = PASSWORD, remember: bool = False, **headers):
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if remember:
        data["remember"] = "1"
    return client.post("/login", data=data, headers=headers)


def cookie(client, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


def signed_in(app, cookies: dict) -> bool:
    """Whether a new browser holding only `cookies` is let in."""
    browser = app.test_client()
    for name, value in cookies.items():
        browser.set_cookie(name, value)
    return browser.get("/workflows").status_code == 200


@contextmanager
def setting(app, name: str, value):
    before = app.config[name]
    app.config[name] = value
    try:
        yield
    finally:
        app.config[name] = before


# ---------------------------------------------------------------- sessions


def test_an_old_session_cookie_is_dead_after_sign_out(app, client, make_user):
    sign_in(client, make_user("operator"))
    stolen = {"session": cookie(client, "session")}
    assert signed_in(app, stolen)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/workflows")})
    assert not signed_in(app, stolen)


def test_a_remember_me_cookie_is_dead_after_sign_out(app, client, make_user):
    sign_in(client, make_user("operator"), remember=True)
    stolen = {REMEMBER: cookie(client, REMEMBER)}
    assert stolen[REMEMBER] and signed_in(app, stolen)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/workflows")})
    assert not signed_in(app, stolen)


def test_changing_the_password_ends_other_sessions_but_not_this_one(app, client, make_user):
    email = make_user("operator")
    other = app.test_client()
    sign_in(other, email, remember=True)
    sign_in(client, email)
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a-new-long-password", "confirm_password": "a-new-long-password",
        "csrf_token": csrf_token(client, "/account"),
    })
    assert response.status_code == 302
    assert client.get("/workflows").status_code == 200
    assert other.get("/workflows").status_code == 302
    assert sign_in(app.test_client(), email, "a-new-long-password").status_code == 302


def test_a_wrong_current_password_is_shown_at_its_field_and_changes_nothing(app, client, make_user):
    email = make_user("operator")
    sign_in(client, email)
    response = client.post("/account/password", data={
        "current_password": "wrong", "new_password": "a-new-long-password", "confirm_password": "a-new-long-password",
        "csrf_token": csrf_token(client, "/account"),
    })
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="current_password-error"' in html and "is not your current password" in html
    assert client.get("/workflows").status_code == 200
    assert sign_in(app.test_client(), email).status_code == 302


def test_sign_out_everywhere_ends_every_session(app, client, make_user):
    email = make_user("manager")
    laptop = app.test_client()
    sign_in(laptop, email, remember=True)
    remembered = {REMEMBER: cookie(laptop, REMEMBER)}
    sign_in(client, email)
    client.post("/account/sign-out-everywhere", data={"csrf_token": csrf_token(client, "/account")})
    assert client.get("/workflows").status_code == 302
    assert laptop.get("/workflows").status_code == 302
    assert not signed_in(app, remembered)


def test_deactivating_a_user_ends_their_sessions_and_api_tokens(app, client, make_user):
    email = make_user("operator")
    sign_in(client, email, remember=True)
    remembered = {REMEMBER: cookie(client, REMEMBER)}
    runner = app.test_cli_runner()
    token = runner.invoke(args=["users", "token", email]).output.strip()
    assert app.test_client().get("/api/v1/workflows", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    assert runner.invoke(args=["users", "deactivate", email]).exit_code == 0

    assert client.get("/workflows").status_code == 302
    assert not signed_in(app, remembered)
    assert app.test_client().get("/api/v1/workflows", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert "deactivated" in sign_in(app.test_client(), email).get_data(as_text=True)


def test_an_administrator_password_reset_ends_sessions(app, client, make_user):
    email = make_user("viewer")
    sign_in(client, email)
    result = app.test_cli_runner().invoke(args=["users", "password", email, "--password", "reset-by-admin-1"])
    assert result.exit_code == 0, result.output
    assert client.get("/workflows").status_code == 302


def test_a_forged_cookie_id_without_the_session_token_is_refused(app, client, make_user):
    sign_in(client, make_user("viewer"))
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id))
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)  # what a cookie from before session tokens carried
    assert client.get("/workflows").status_code == 302


def test_cookies_are_http_only_same_site_lax_and_remembered_for_14_days(client, make_user):
    response = sign_in(client, make_user("viewer"), remember=True)
    set_cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in set_cookies if c.startswith("session="))
    remember_cookie = next(c for c in set_cookies if c.startswith(f"{REMEMBER}="))
    for header in (session_cookie, remember_cookie):
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    assert "Max-Age=1209600" in remember_cookie or "Expires=" in remember_cookie


def test_https_makes_cookies_secure_and_sends_hsts(app, client, make_user, monkeypatch):
    from app.config import load_config

    monkeypatch.setenv("FLOWDESK_HTTPS", "1")
    settings = load_config()
    assert settings["SESSION_COOKIE_SECURE"] and settings["REMEMBER_COOKIE_SECURE"]
    assert settings["REMEMBER_COOKIE_DURATION"] == timedelta(days=14)
    assert "Strict-Transport-Security" not in client.get("/login").headers
    with setting(app, "HTTPS", True):
        assert client.get("/login").headers["Strict-Transport-Security"].startswith("max-age=")


# ---------------------------------------------------------------- SECRET_KEY


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    from app import create_app
    from app.config import ConfigError

    monkeypatch.setenv("DATABASE_URL", "postgresql://flowdesk@db/flowdesk")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("FLOWDESK_DEMO", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app()


def test_embedded_defaults_generate_a_private_key_once(tmp_path):
    from app.config import secret_key

    settings = {"SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db", "DEMO_MODE": False,
                "INSTANCE_DIR": str(tmp_path)}
    first = secret_key(settings)
    assert len(first) >= 48 and first == secret_key(settings)
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert secret_key({**settings, "INSTANCE_DIR": str(tmp_path / "other")}) != first
    assert secret_key({**settings, "SECRET_KEY": "from-the-environment"}) == "from-the-environment"


# ---------------------------------------------------------------- guessing


def test_the_sixth_wrong_password_in_a_row_is_refused_with_retry_after(app, client, make_user):
    email = make_user("operator")
    for _ in range(5):
        assert sign_in(client, email, "wrong-password").status_code == 401
    response = sign_in(client, email, PASSWORD)  # even the right one, until the window passes
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 60
    assert "Too many failed attempts. Try again in" in response.get_data(as_text=True)
    assert client.get("/workflows").status_code == 302
    other = make_user("viewer")
    assert sign_in(app.test_client(), other).status_code == 302  # another account is not locked


def test_successful_sign_ins_do_not_count_against_the_limit(client, make_user):
    email = make_user("operator")
    for _ in range(8):
        assert sign_in(client, email).status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/workflows")})


def test_failures_from_one_address_are_limited_across_accounts(app, client, make_user):
    with setting(app, "LOGIN_LIMIT_ADDRESS", "3 per minute"):
        for i in range(3):
            assert sign_in(client, f"nobody-{i}@test.example", "x").status_code == 401
        response = sign_in(client, make_user("viewer"))
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_bad_api_tokens_are_limited_per_address(app, client):
    with setting(app, "API_AUTH_LIMIT", "3 per minute"):
        for _ in range(3):
            assert client.get("/api/v1/workflows", headers={"Authorization": "Bearer fd_wrong"}).status_code == 401
        response = client.get("/api/v1/workflows", headers={"Authorization": "Bearer fd_wrong"})
    assert response.status_code == 429
    assert response.is_json and "Too many failed attempts" in response.get_json()["error"]
    assert int(response.headers["Retry-After"]) >= 1


def test_an_unknown_email_costs_the_same_password_check_as_a_wrong_password(app, make_user, monkeypatch):
    import app.models.user as user_module
    import app.services.users as users_service

    email = make_user("operator")
    checked = []

    def counting(real):
        def check(hash_, password):
            checked.append(hash_.split("$", 1)[0])
            return real(hash_, password)
        return check

    monkeypatch.setattr(user_module, "check_password_hash", counting(user_module.check_password_hash))
    monkeypatch.setattr(users_service, "check_password_hash", counting(users_service.check_password_hash))
    with app.app_context():
        assert users_service.authenticate(db.session, email, "wrong") is None
        assert users_service.authenticate(db.session, "nobody@test.example", "wrong") is None
    assert len(checked) == 2 and checked[0] == checked[1]  # one hash each, with the same method and cost


# ---------------------------------------------------------------- headers and origin


def test_pages_send_a_strict_content_security_policy_and_friends(client, login_as, demo_workflows):
    login_as("operator")
    for path in ("/login", "/workflows", "/workflows/invoice-sync", "/runs", "/account"):
        response = client.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and "unsafe" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        html = response.get_data(as_text=True)
        assert " style=" not in html, f"{path} has an inline style, which the policy blocks"
        assert "<script>" not in html and "<script " not in html.replace('<script src="/static/', ""), path
        assert '"allowEval": false' in html


@pytest.mark.parametrize("header, value", [
    ("Origin", "https://evil.example"), ("Referer", "https://evil.example/page"), ("Origin", "null"),
    ("Origin", "http://localhost:1"),
])
def test_a_post_from_another_site_is_refused_even_with_the_csrf_token(client, make_user, header, value):
    email = make_user("operator")
    response = sign_in(client, email, **{header: value})
    assert response.status_code == 403
    assert client.get("/workflows").status_code == 302


def test_a_post_from_this_site_or_without_origin_is_accepted(client, make_user):
    email = make_user("operator")
    assert sign_in(client, email, Origin="http://localhost").status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/workflows")})
    assert sign_in(client, email, Referer="http://localhost/login").status_code == 302


def test_the_api_takes_bearer_tokens_from_any_origin(app, client, make_user, load_workflow):
    load_workflow(steps_workflow("api-origin", [{"key": "a", "type": "noop"}]))
    email = make_user("operator")
    token = app.test_cli_runner().invoke(args=["users", "token", email]).output.strip()
    response = client.post("/api/v1/workflows/api-origin/runs", json={},
                           headers={"Authorization": f"Bearer {token}", "Origin": "https://scripts.example"})
    assert response.status_code == 202
