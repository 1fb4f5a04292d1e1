"""A login by SMS end to end: mfad talks to a local server that speaks Twilio's Messaging API, and
the user answers `sms` at the real ssh client's code prompt, then the texted code."""

import http.server
import io
import json
import os
import re
import threading
import time
import urllib.parse

import pexpect
import pytest

from e2e_harness import (CODE_PROMPT, PASSWORD_PROMPT, SMS_PROMPT, record_transcript, spawn,
                         ssh_argv)

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
PHONE = "+15557654321"


class FakeTwilio:
    """POST /2010-04-01/Accounts/{sid}/Messages.json → 201 with a message sid; keeps the texts."""

    def __init__(self):
        self.messages = []
        self.cond = threading.Condition()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length", "0")), 65536)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                with fake.cond:
                    fake.messages.append({"path": self.path,
                                          "to": form.get("To", [""])[0],
                                          "body": form.get("Body", [""])[0]})
                    fake.cond.notify_all()
                body = json.dumps({"sid": "SM" + "0" * 32, "status": "queued",
                                   "error_code": None}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_code(self, count, timeout=20):
        """The 6-digit code in the count-th text (1-based)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"no SMS #{count} reached the provider"
                self.cond.wait(left)
            message = self.messages[count - 1]
        assert message["to"] == PHONE
        assert f"/Accounts/{ACCOUNT_SID}/Messages.json" in message["path"]
        found = re.findall(r"(?<!\d)\d{6}(?!\d)", message["body"])
        assert len(found) == 1, "the text should hold exactly one 6-digit code"
        return found[0]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def twilio():
    fake = FakeTwilio()
    yield fake
    fake.stop()


@pytest.fixture
def sms_mfad(mfad_factory, twilio):
    token = os.path.join(mfad_factory.dir, "twilio.token")
    with open(token, "w") as f:
        f.write("e2e-twilio-token\n")
    os.chmod(token, 0o600)
    mfad_factory.set_config("SMS", "Provider", "twilio")
    mfad_factory.set_config("Twilio", "BaseURL", twilio.url)
    mfad_factory.set_config("Twilio", "AccountSid", ACCOUNT_SID)
    mfad_factory.set_config("Twilio", "AuthTokenFile", token)
    mfad_factory.set_config("Twilio", "From", "+15005550006")
    return mfad_factory.start()


def enroll_phone(mfad, twilio, user):
    r = mfad.call("BeginSmsEnrollment", "sss", user.name, PHONE, "")
    masked = r.expect_ok()
    assert PHONE not in masked and masked.endswith(PHONE[-2:]), masked
    mfad.call("ConfirmSmsEnrollment", "ss", user.name, twilio.wait_code(1)).expect_ok()
    return masked


def test_login_with_an_sms_code(request, test_users, sms_mfad, twilio, sshd_factory):
    mfad = sms_mfad
    alice = test_users["mfa-alice"]
    masked = enroll_phone(mfad, twilio, alice)
    server = sshd_factory()
    child = spawn(ssh_argv(server, alice.name))
    child.logfile_read = io.StringIO()
    record_transcript(request, "ssh transcript", child.logfile_read)

    child.expect(PASSWORD_PROMPT)
    child.sendline(alice.password)
    child.expect(CODE_PROMPT)
    child.sendline("sms")
    child.expect(SMS_PROMPT)
    child.sendline(twilio.wait_code(2))
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    transcript = child.logfile_read.getvalue().replace("\r", "")

    assert f"e2e-ok as {alice.name}\n" in transcript, transcript
    assert child.exitstatus == 0
    assert masked in transcript  # "A code was sent to <masked phone>"
    for name, text in (("sshd", server.log_text()), ("mfad", mfad.log_text())):
        assert PHONE not in text and PHONE[1:] not in text, f"the full number is in {name}'s log"
