"""SMS test helpers: the local fake provider (fake_twilio.py) as a fixture, and mfad configured
to text through it as Twilio."""

import os

import pytest

from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio


@pytest.fixture
def fake():
    f = FakeTwilio()
    yield f
    f.stop()


def twilio_config(m, fake):
    """SMS through fake as Twilio for m, the auth token in a file of m's only it reads."""
    token = os.path.join(m.dir, "twilio.token")
    with open(token, "w") as f:
        f.write(AUTH_TOKEN + "\n")
    os.chmod(token, 0o600)
    m.set_config("SMS", "Provider", "twilio")
    m.set_config("Twilio", "BaseURL", fake.url)
    m.set_config("Twilio", "AccountSid", ACCOUNT_SID)
    m.set_config("Twilio", "AuthTokenFile", token)
    m.set_config("Twilio", "From", FROM)
