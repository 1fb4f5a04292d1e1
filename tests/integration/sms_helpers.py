"""SMS test helpers: the local fake provider (fake_twilio.py) as a fixture, mfad configured to
text through it (as Twilio or as a webhook), and Client, a root connection that holds a whole
login dialogue on one unique name."""

import os

import dbus
import pytest

from conftest import Reply
from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, WEBHOOK_TOKEN, FakeTwilio

PHONE = "+15557654321"
MASKED = "+1\u2022\u2022\u2022\u2022\u2022\u20224321"
CONTEXT = {"service": "sshd", "rhost": "10.0.0.5", "tty": "pts/1", "ruser": ""}


@pytest.fixture
def fake():
    f = FakeTwilio()
    yield f
    f.stop()


def token_file(m, name, token):
    """token in a file of m's directory that only its owner reads; returns the path."""
    path = os.path.join(m.dir, name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def twilio_config(m, fake):
    """SMS through fake as Twilio for m, the auth token in a file of m's only it reads."""
    token = token_file(m, "twilio.token", AUTH_TOKEN)
    m.set_config("SMS", "Provider", "twilio")
    m.set_config("Twilio", "BaseURL", fake.url)
    m.set_config("Twilio", "AccountSid", ACCOUNT_SID)
    m.set_config("Twilio", "AuthTokenFile", token)
    m.set_config("Twilio", "From", FROM)


def webhook_config(m, hook):
    """SMS through hook (a FakeTwilio in webhook mode) for m, the bearer token in a file."""
    token = token_file(m, "webhook.token", WEBHOOK_TOKEN)
    m.set_config("SMS", "Provider", "webhook")
    m.set_config("Webhook", "URL", hook.url)
    m.set_config("Webhook", "BearerTokenFile", token)


def plain(v):
    if isinstance(v, (dbus.String, dbus.ObjectPath)):
        return str(v)
    if isinstance(v, (dbus.Array, list, tuple, dbus.Struct)):
        return [plain(x) for x in v]
    if isinstance(v, (dbus.Dictionary, dict)):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (dbus.UInt32, dbus.UInt64, dbus.Int32, dbus.Int64)):
        return int(v)
    return v


class Client:
    """One root connection to mfad: a whole login dialogue on one unique name, with the texted
    code read from the fake provider between two calls."""

    def __init__(self, address):
        self.conn = dbus.bus.BusConnection(address)
        self.obj = self.conn.get_object("org.mfad1", "/org/mfad1", introspect=False)

    def call(self, method, signature, *args, timeout=30):
        try:
            r = self.obj.get_dbus_method(method, "org.mfad1.Manager")(
                *args, signature=signature, timeout=timeout)
            return Reply(ok=True, result=plain(r))
        except dbus.exceptions.DBusException as e:
            return Reply(ok=False, error=e.get_dbus_name(), message=e.get_dbus_message())

    def begin(self, user, context=None):
        challenge, methods = self.call("BeginAuthentication", "sa{ss}", user,
                                       context or CONTEXT).expect_ok()
        return challenge, methods

    def close(self):
        self.conn.close()


@pytest.fixture
def clients():
    """make(m) -> a new Client on the bus of m (an Mfad); all closed after the test."""
    opened = []

    def make(m):
        c = Client(m.bus.address)
        opened.append(c)
        return c
    yield make
    for c in opened:
        c.close()
