"""How mfad reaches Redis (docs/fleet.md "Transport", issue 16 finding 2): rediss:// with the
server verified (CA, expiry, the address it is for) and an optional client certificate, against
Debian's redis-server with --tls-port; unix: sockets that must be Redis's own; redis:// refused
unless AllowPlaintext=yes; and the spoofed port: a local user listening on Redis's port while
Redis is down learns no password."""

import os
import pwd
import shutil
import socket
import subprocess
import threading

import pytest

from conftest import PYTHON, make_world_dir, run_as, wait_until
from daemon_helpers import run_mfad
from fleet_helpers import redis  # noqa: F401 (a fixture)
from fleet_helpers import RedisServer, degraded, fleet_config, fleet_key, wait_degraded
from tls_helpers import Pki, TlsRedisServer, free_port, tls_fleet_config, wait_log


@pytest.fixture(scope="module")
def pki():
    p = Pki()
    yield p
    p.cleanup()


@pytest.fixture
def tls_redis_factory(pki):
    started = []

    def make(**kwargs):
        r = TlsRedisServer(pki, **kwargs).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.cleanup()


def enroll_and_log_in(m, user="mfa-alice"):
    secret = m.enroll_totp(user)
    begin, verify = m.login(user, m.next_code(user, secret))
    assert verify.expect_ok() == "totp"
    return secret


# --- rediss:// ---


def test_tls_with_the_right_ca_works(mfad_factory, tls_redis_factory, pki, test_users):
    redis = tls_redis_factory()
    tls_fleet_config(mfad_factory, redis, pki)
    m = mfad_factory.start()
    wait_degraded(m, False)
    wait_log(m, f"TLS with Redis at rediss://127.0.0.1:{redis.port}: TLSv1.3, connected and "
                "verified in")
    enroll_and_log_in(m)
    # The record went over TLS to this server.
    assert "totp" in redis.cli("HGETALL", "mfad:user:{mfa-alice}:factors")
    assert redis.password not in m.log_text()


@pytest.mark.parametrize("cert,why", [
    ("untrusted", ""),  # "self-signed certificate in certificate chain" or "unable to get..."
    ("expired", "certificate has expired"),
    ("other-ip", "IP address mismatch"),
])
def test_a_server_that_cannot_prove_itself_is_refused(mfad_factory, tls_redis_factory, pki,
                                                      test_users, cert, why):
    redis = tls_redis_factory(cert=cert)
    tls_fleet_config(mfad_factory, redis, pki)
    m = mfad_factory.start()
    wait_log(m, "the server's certificate is refused: " + why)
    assert degraded(m)
    assert m.proc.poll() is None
    # The server saw the handshake fail (what a listener learns: see the spoofed-port test).
    assert "Error accepting a client connection" in redis.log_text()


def test_the_system_store_does_not_trust_a_private_ca(mfad_factory, tls_redis_factory,
                                                      test_users):
    redis = tls_redis_factory()
    fleet_config(mfad_factory, redis)  # no CAFile: the system's trust store
    m = mfad_factory.start()
    wait_log(m, "the server's certificate is refused: ")
    assert degraded(m)


def test_client_certificate_required_by_the_server(mfad_factory, build_dir, tls_redis_factory,
                                                   pki, test_users):
    redis = tls_redis_factory(auth_clients=True)
    tls_fleet_config(mfad_factory, redis, pki, client_cert=True)
    m = mfad_factory.start()
    wait_degraded(m, False)
    enroll_and_log_in(m)
    m.stop()
    # Without one, the server ends the connection: degraded, and it says why.
    del m.config["Redis"]["CertFile"]
    del m.config["Redis"]["KeyFile"]
    m.start()
    wait_log(m, "certificate required")
    assert degraded(m)


def test_tls_key_file_readable_by_others_is_refused(mfad_factory, tls_redis_factory, pki):
    redis = tls_redis_factory()
    key = os.path.join(mfad_factory.dir, "client.key")
    shutil.copy(pki.path("client.key"), key)
    os.chmod(key, 0o644)
    tls_fleet_config(mfad_factory, redis, pki, client_cert=True)
    mfad_factory.set_config("Redis", "KeyFile", key)
    m = mfad_factory
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode != 0
    assert "the Redis TLS key file" in r.stderr and "readable by group or others" in r.stderr
    assert "PRIVATE KEY" not in r.stderr
    m.start(wait=False)
    assert m.proc.wait(20) != 0
    assert "readable by group or others" in m.log_text()
    os.chmod(key, 0o600)
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode == 0, r.stderr


def test_tls_reconnects_after_a_redis_restart(mfad_factory, tls_redis_factory, pki, test_users):
    redis = tls_redis_factory()
    tls_fleet_config(mfad_factory, redis, pki)
    m = mfad_factory.start()
    wait_degraded(m, False)
    secret = enroll_and_log_in(m)
    redis.stop()
    m.call("GetUser", "s", "mfa-alice")
    wait_degraded(m, True)
    redis.start()
    wait_degraded(m, False, timeout=30)
    begin, verify = m.login("mfa-alice", m.next_code("mfa-alice", secret))
    assert verify.expect_ok() == "totp"


# --- redis:// ---


def test_plaintext_is_refused_unless_allowed(mfad_factory):
    m = mfad_factory
    fleet_key(m)
    m.set_config("Redis", "Address", "redis://127.0.0.1:6379")
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode != 0
    assert "[Redis] Address: redis:// is TCP without TLS" in r.stderr, r.stderr
    assert "AllowPlaintext=yes" in r.stderr
    m.start(wait=False)
    assert m.proc.wait(20) != 0
    assert "redis:// is TCP without TLS" in m.log_text()
    m.set_config("Redis", "AllowPlaintext", "yes")
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode == 0, r.stderr
    assert "warning: [Redis] Address is redis:// (AllowPlaintext=yes)" in r.stderr


def test_plaintext_allowed_works_with_a_warning(mfad_factory, test_users):
    redis = RedisServer()
    port = free_port()
    with open(redis.config, "a") as f:
        f.write(f"port {port}\nbind 127.0.0.1\n")
    redis.start()
    try:
        fleet_config(mfad_factory, redis)
        mfad_factory.set_config("Redis", "Address", f"redis://127.0.0.1:{port}")
        mfad_factory.set_config("Redis", "AllowPlaintext", "yes")
        m = mfad_factory.start()
        wait_degraded(m, False)
        assert "[Redis] Address is redis:// (AllowPlaintext=yes)" in m.log_text()
        enroll_and_log_in(m)
    finally:
        redis.cleanup()


# --- The spoofed port: Redis is down, a local user listens on its port. ---

SPOOF_LISTENER = r"""
import socket, ssl, sys
port, out, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
ctx = None
if cert != "-":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
print("listening", flush=True)
srv.settimeout(8)
got = b""
try:
    for _ in range(3):
        conn, _addr = srv.accept()
        conn.settimeout(2)
        try:
            if ctx is not None:
                conn = ctx.wrap_socket(conn, server_side=True)
            got += conn.recv(65536)
            conn.sendall(b"+OK\r\n")
        except Exception as e:
            got += b"[" + type(e).__name__.encode() + b"]"
        conn.close()
except socket.timeout:
    pass
open(out, "wb").write(got)
"""


def spoof(tmp, port, cert=None, key=None):
    """Runs the listener as mfa-bob (an unprivileged local user); returns its Popen."""
    script = os.path.join(tmp, "listener.py")
    with open(script, "w") as f:
        f.write(SPOOF_LISTENER)
    out = os.path.join(tmp, "received")
    bob = pwd.getpwnam("mfa-bob")
    os.chown(tmp, bob.pw_uid, bob.pw_gid)
    for path in (cert, key):
        if path:
            os.chown(path, bob.pw_uid, bob.pw_gid)
    proc = subprocess.Popen(["setpriv", f"--reuid={bob.pw_uid}", f"--regid={bob.pw_gid}",
                             "--init-groups", "--", PYTHON, script, str(port), out, cert or "-",
                             key or "-"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "listening"
    return proc, out


@pytest.mark.parametrize("plaintext", [False, True])
def test_a_listener_on_the_redis_port_gets_no_password(mfad_factory, tls_redis_factory, pki,
                                                       test_users, plaintext):
    # Redis is down: another local user binds its port and, for TLS, answers with a certificate
    # of its own for 127.0.0.1 (signed by a CA mfad does not trust).
    redis = RedisServer()  # for its password file only; never started
    port = free_port()
    tmp = make_world_dir("mfa-spoof-")
    try:
        fleet_config(mfad_factory, redis)
        if plaintext:
            # The control: plaintext hands the password over, as the issue says.
            mfad_factory.set_config("Redis", "Address", f"redis://127.0.0.1:{port}")
            mfad_factory.set_config("Redis", "AllowPlaintext", "yes")
            proc, out = spoof(tmp, port)
        else:
            mfad_factory.set_config("Redis", "Address", f"rediss://127.0.0.1:{port}")
            mfad_factory.set_config("Redis", "CAFile", pki.path("ca.pem"))
            cert = os.path.join(tmp, "cert.pem")
            key = os.path.join(tmp, "cert.key")
            shutil.copy(pki.path("untrusted.pem"), cert)
            shutil.copy(pki.path("untrusted.key"), key)
            proc, out = spoof(tmp, port, cert, key)
        m = mfad_factory.start()
        proc.wait(30)
        received = open(out, "rb").read()
        assert received, "mfad never connected to the listener"
        if plaintext:
            assert redis.password.encode() in received
        else:
            assert redis.password.encode() not in received
            assert b"AUTH" not in received
            assert "the server's certificate is refused" in m.log_text()
        assert degraded(m)
    finally:
        redis.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


# --- unix: the socket must be Redis's own. ---


def test_unix_socket_in_a_directory_others_can_write_is_refused(mfad_factory, redis):
    os.chmod(redis.dir, 0o777)
    fleet_config(mfad_factory, redis)
    m = mfad_factory
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode != 0
    assert f"the Redis socket {redis.socket}: {redis.dir} is writable by group or others " \
           "(mode 0777)" in r.stderr, r.stderr
    m.start()
    wait_log(m, "is writable by group or others")
    assert degraded(m)
    os.chmod(redis.dir, 0o755)
    wait_degraded(m, False, timeout=30)


def test_unix_socket_owned_by_another_user_is_refused(mfad_factory, redis):
    bob = pwd.getpwnam("mfa-bob")
    os.chown(redis.socket, bob.pw_uid, bob.pw_gid)
    fleet_config(mfad_factory, redis)
    m = mfad_factory
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode != 0
    assert f"is owned by uid {bob.pw_uid}, not by root or the redis user" in r.stderr, r.stderr
    m.start()
    wait_log(m, "not Redis's socket")
    assert degraded(m)


def test_unix_socket_others_may_connect_to_is_refused(mfad_factory, redis):
    os.chmod(redis.socket, 0o777)
    fleet_config(mfad_factory, redis)
    m = mfad_factory
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode != 0
    assert "any local user may connect to it (mode 0777)" in r.stderr, r.stderr


def test_unix_socket_through_a_symbolic_link_is_refused(mfad_factory, redis):
    link_dir = make_world_dir("mfa-link-")
    try:
        link = os.path.join(link_dir, "redis")
        os.symlink(redis.dir, link)
        fleet_config(mfad_factory, redis)
        m = mfad_factory
        m.set_config("Redis", "Address", "unix:" + os.path.join(link, "redis.sock"))
        m.write_config()
        r = run_mfad(m, "--config", m.config_path, "--check-config")
        assert r.returncode != 0
        assert f"{link} is a symbolic link" in r.stderr, r.stderr
    finally:
        shutil.rmtree(link_dir, ignore_errors=True)


UNIX_LISTENER = r"""
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
os.chmod(path, 0o700)
srv.listen(8)
print("listening", flush=True)
srv.settimeout(8)
got = b""
try:
    for _ in range(3):
        conn, _ = srv.accept()
        conn.settimeout(2)
        try:
            got += conn.recv(65536)
            conn.sendall(b"+OK\r\n")
        except Exception:
            pass
        conn.close()
except socket.timeout:
    pass
open(out, "wb").write(got)
"""


def test_unix_socket_of_another_users_process_gets_no_password(mfad_factory, redis, test_users):
    # A socket that passes every look (root's directory, root's socket, mode 0700) but whose
    # listener is another user's process: made by mfa-bob in a directory of its own, then moved
    # and given to root. SO_PEERCRED tells, and mfad sends nothing.
    redis.stop()
    bob = pwd.getpwnam("mfa-bob")
    tmp = make_world_dir("mfa-spoof-")
    try:
        os.chown(tmp, bob.pw_uid, bob.pw_gid)
        script = os.path.join(tmp, "listener.py")
        with open(script, "w") as f:
            f.write(UNIX_LISTENER)
        out = os.path.join(tmp, "received")
        bound = os.path.join(tmp, "s.sock")
        proc = subprocess.Popen(["setpriv", f"--reuid={bob.pw_uid}", f"--regid={bob.pw_gid}",
                                 "--init-groups", "--", PYTHON, script, bound, out],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "listening"
        if os.path.exists(redis.socket):
            os.unlink(redis.socket)
        os.rename(bound, redis.socket)
        os.chown(redis.socket, 0, 0)
        fleet_config(mfad_factory, redis)
        m = mfad_factory.start()
        proc.wait(30)
        assert redis.password.encode() not in open(out, "rb").read()
        assert f"the process listening on it runs as uid {bob.pw_uid}" in m.log_text()
        assert degraded(m)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- Credentials over http:// (SMS providers): accepted, with a warning. ---


def test_http_urls_that_carry_credentials_are_warned_about(mfad_factory):
    m = mfad_factory
    m.set_config("SMS", "Provider", "twilio")
    m.set_config("Twilio", "BaseURL", "http://127.0.0.1:9")
    m.set_config("Twilio", "AccountSid", "AC0123456789abcdef0123456789abcdef")
    m.set_config("Twilio", "AuthToken", "not-a-real-token")
    m.set_config("Twilio", "From", "+15005550006")
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode == 0, r.stderr
    assert "warning: [Twilio] BaseURL is http://" in r.stderr
    assert "not-a-real-token" not in r.stderr
    m.start()
    assert "[Twilio] BaseURL is http://: the account's auth token is sent unencrypted" \
        in m.log_text()
    m.stop()
    m.set_config("SMS", "Provider", "webhook")
    m.set_config("Webhook", "URL", "http://hook:s3cret@127.0.0.1:9/send")
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert "warning: [Webhook] URL is http://" in r.stderr and "s3cret" not in r.stderr
    # https://, or http:// without a credential: no warning.
    m.set_config("Webhook", "URL", "http://127.0.0.1:9/send")
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert "warning" not in r.stderr, r.stderr
