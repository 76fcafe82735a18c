"""Settings as a user sets them: errors name the environment variable and say what to set."""

from __future__ import annotations

import os

import pytest

from services.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("FLYWHEEL_"):
            monkeypatch.delenv(name)


def refusal(monkeypatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        Settings()
    message = str(raised.value)
    assert "\n" not in message, message
    return message


def test_an_invalid_value_is_reported_by_its_variable_with_what_it_should_hold(monkeypatch):
    message = refusal(monkeypatch, FLYWHEEL_API_PORT="abc")
    assert message.startswith("FLYWHEEL_API_PORT='abc': ")
    assert "valid integer" in message and "Port of the HTTP API" in message
    assert "api_port" not in message


def test_every_invalid_variable_is_named_in_one_line(monkeypatch):
    message = refusal(monkeypatch, FLYWHEEL_API_PORT="0", FLYWHEEL_LOG_LEVEL="loud")
    assert "FLYWHEEL_API_PORT='0'" in message and "FLYWHEEL_LOG_LEVEL='loud'" in message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_not_a_number_and_infinity_are_refused_for_float_settings(monkeypatch, value):
    message = refusal(monkeypatch, FLYWHEEL_REVIEW_LOW_CONFIDENCE=value)
    assert "FLYWHEEL_REVIEW_LOW_CONFIDENCE" in message and "finite number" in message
    message = refusal(
        monkeypatch, FLYWHEEL_REVIEW_LOW_CONFIDENCE="-1", FLYWHEEL_CYCLE_LEASE_S=value
    )
    assert "FLYWHEEL_CYCLE_LEASE_S" in message


@pytest.mark.parametrize("variable", ["FLYWHEEL_CONSUMER_GROUP", "FLYWHEEL_API_HOST"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_name_is_refused(monkeypatch, variable, value):
    assert refusal(monkeypatch, **{variable: value}).startswith(f"{variable}=")


def test_a_secret_that_is_refused_is_named_but_never_echoed():
    with pytest.raises(SettingsError) as raised:
        Settings(server_token=98765432123)  # not a string: refused
    assert str(raised.value).startswith("FLYWHEEL_SERVER_TOKEN: ")
    assert "98765432123" not in str(raised.value)


def test_trusted_proxies_are_none_by_default_and_read_as_a_comma_separated_list(monkeypatch):
    assert Settings().trusted_proxies == ()
    monkeypatch.setenv("FLYWHEEL_TRUSTED_PROXIES", "10.0.0.5, 192.168.0.0/16")
    assert Settings().trusted_proxies == ("10.0.0.5", "192.168.0.0/16")
    message = refusal(monkeypatch, FLYWHEEL_TRUSTED_PROXIES="10.0.0.5,proxy.local")
    assert message.startswith("FLYWHEEL_TRUSTED_PROXIES=") and "'proxy.local'" in message
