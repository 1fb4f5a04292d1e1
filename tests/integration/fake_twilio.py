"""A local HTTP server on 127.0.0.1 that speaks Twilio's Programmable Messaging API (and mfad's
webhook), for the SMS tests. It records every request, checks the credentials on each one, and
answers from a script: 201, 400/21211, 401/20003, 429 with or without Retry-After, 500, slowly
(2 s), or, with refuse(), not at all (connection refused)."""

import base64
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-test-token-5f1c"
WEBHOOK_TOKEN = "webhook-test-token-93ab"
FROM = "+15005550006"

# What each scripted answer sends: (status, JSON body or None, extra headers, delay seconds).
ANSWERS = {
    "ok": (201, None, {}, 0),
    "invalid": (400, {"code": 21211, "message": "The 'To' number {to} is not a valid phone number.",
                      "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}, {}, 0),
    "unverified": (400, {"code": 21608, "message": "The number {to} is unverified.",
                         "more_info": "https://www.twilio.com/docs/errors/21608", "status": 400},
                   {}, 0),
    "opted-out": (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                        "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400},
                  {}, 0),
    "unauthorized": (401, {"code": 20003, "message": "Authenticate",
                           "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401},
                     {}, 0),
    "busy": (429, {"code": 20429, "message": "Too Many Requests",
                   "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}, {}, 0),
    "busy-retry-1": (429, {"code": 20429, "message": "Too Many Requests", "status": 429},
                     {"Retry-After": "1"}, 0),
    "busy-retry-60": (429, {"code": 20429, "message": "Too Many Requests", "status": 429},
                      {"Retry-After": "60"}, 0),
    "error": (500, {"code": 20500, "message": "Internal Server Error", "status": 500}, {}, 0),
    "slow": (201, None, {}, 2.0),
}


class FakeTwilio:
    def __init__(self, mode="twilio", default="ok"):
        self.mode = mode  # "twilio" or "webhook"
        self.default = default
        self.script = []  # answers for the next requests, then `default`
        self.requests = []
        self.inflight = 0  # requests received and not yet answered
        self.cond = threading.Condition()
        self._refusing = None
        self._start_server(0)

    # -- server --
    def _start_server(self, port):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                fake._handle(self)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        base = f"http://127.0.0.1:{self.port}"
        return base + "/hook" if self.mode == "webhook" else base

    def refuse(self):
        """From now on, connections to the port are refused (nothing listens; the port stays
        reserved by a bound socket that never listens)."""
        self.server.shutdown()
        self.server.server_close()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        self._refusing = s

    def stop(self):
        if self._refusing:
            self._refusing.close()
        else:
            self.server.shutdown()
            self.server.server_close()

    # -- requests --
    def _handle(self, h):
        length = min(int(h.headers.get("Content-Length", "0") or 0), 65536)
        raw = h.rfile.read(length).decode(errors="replace")
        auth = h.headers.get("Authorization", "")
        rec = {"path": h.path, "time": time.monotonic(), "auth": auth,
               "content_type": h.headers.get("Content-Type", ""), "raw": raw}
        if self.mode == "twilio":
            form = urllib.parse.parse_qs(raw)
            rec.update(to=form.get("To", [""])[0], body=form.get("Body", [""])[0],
                       sender=form.get("From", [""])[0],
                       service=form.get("MessagingServiceSid", [""])[0])
            expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            rec["auth_ok"] = auth == expected and \
                h.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        else:
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = {}
            rec.update(to=doc.get("to", ""), body=doc.get("body", ""))
            rec["auth_ok"] = auth == f"Bearer {WEBHOOK_TOKEN}" and h.path == "/hook"
        with self.cond:
            answer = self.script.pop(0) if self.script else self.default
            rec["answer"] = answer
            self.requests.append(rec)
            self.inflight += 1
            self.cond.notify_all()
        if not rec["auth_ok"]:
            answer = "unauthorized"
        status, body, headers, delay = ANSWERS[answer]
        if delay:
            time.sleep(delay)  # a slow provider: the answer's lateness is what the test needs
        if body is None:
            body = {"sid": "SM" + "0" * 32, "status": "queued", "error_code": None,
                    "to": rec["to"]}
        else:
            body = json.loads(json.dumps(body).replace("{to}", rec["to"]))
        data = json.dumps(body).encode()
        try:
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            # One request per connection: refuse() must really refuse the next one.
            h.send_header("Connection", "close")
            h.close_connection = True
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass
        finally:
            with self.cond:
                self.inflight -= 1

    def wait_requests(self, count, timeout=20):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"request #{count} did not reach the provider"
                self.cond.wait(left)
            return list(self.requests)

    def code(self, index=-1):
        """The 6-digit code of the index-th text (default: the last one)."""
        body = self.requests[index]["body"]
        found = re.findall(r"(?<!\d)\d{6}(?!\d)", body)
        assert len(found) == 1, f"the text should hold exactly one 6-digit code: {body!r}"
        return found[0]

    def wait_code(self, count, timeout=20):
        """The code of the count-th text (1-based), once it arrived."""
        self.wait_requests(count, timeout)
        return self.code(count - 1)
