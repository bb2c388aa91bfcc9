"""Settings from the environment: malformed values are refused with a message naming them."""
import pytest

from app.config import ConfigError, database_url, load_config


def test_postgres_urls_use_the_psycopg_driver():
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("").startswith("sqlite:///")


def test_flowdesk_vars_must_be_a_json_object(monkeypatch):
    monkeypatch.setenv("FLOWDESK_VARS", "[1, 2]")
    with pytest.raises(ConfigError, match="FLOWDESK_VARS must be a JSON object"):
        load_config()
    monkeypatch.setenv("FLOWDESK_VARS", "{nope")
    with pytest.raises(ConfigError, match="FLOWDESK_VARS"):
        load_config()


def test_demo_mode_points_the_sandbox_at_the_console(monkeypatch):
    monkeypatch.setenv("FLOWDESK_DEMO", "1")
    monkeypatch.setenv("PORT", "5123")
    monkeypatch.delenv("FLOWDESK_VARS", raising=False)
    assert load_config()["FLOWDESK_VARS"]["sandbox_url"] == "http://127.0.0.1:5123/sandbox"


def test_the_heartbeat_must_be_well_inside_the_stale_limit(monkeypatch):
    monkeypatch.setenv("FLOWDESK_STALE_RUN_SECONDS", "30")
    monkeypatch.setenv("FLOWDESK_HEARTBEAT_SECONDS", "10")
    assert load_config()["HEARTBEAT_SECONDS"] == 10
    monkeypatch.setenv("FLOWDESK_HEARTBEAT_SECONDS", "20")
    with pytest.raises(ConfigError, match="FLOWDESK_HEARTBEAT_SECONDS .* FLOWDESK_STALE_RUN_SECONDS"):
        load_config()
    monkeypatch.setenv("FLOWDESK_HEARTBEAT_SECONDS", "0")
    with pytest.raises(ConfigError, match="FLOWDESK_HEARTBEAT_SECONDS"):
        load_config()


def test_the_request_size_limit_is_1_mib_unless_set(monkeypatch):
    monkeypatch.delenv("FLOWDESK_MAX_CONTENT_LENGTH", raising=False)
    assert load_config()["MAX_CONTENT_LENGTH"] == 1024 * 1024
    monkeypatch.setenv("FLOWDESK_MAX_CONTENT_LENGTH", "4096")
    assert load_config()["MAX_CONTENT_LENGTH"] == load_config()["MAX_FORM_MEMORY_SIZE"] == 4096
