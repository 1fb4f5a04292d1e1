"""TLS for fleet mode's tests: a throwaway PKI made with the openssl command (a CA, a server
certificate for 127.0.0.1, a client certificate, an expired server certificate, one for another
address, and a second CA nobody trusts), and a redis-server listening with --tls-port (no plain
TCP port; a unix socket for the tests' own redis-cli)."""

import os
import shutil
import socket
import subprocess

from conftest import make_world_dir, wait_until
from fleet_helpers import RedisServer

OPENSSL = "/usr/bin/openssl"

CA_CONFIG = """[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = supplied
"""


def _openssl(*args, cwd):
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}:\n{r.stderr}"


class Pki:
    """Files under one directory, every private key mode 0600."""

    def __init__(self):
        self.dir = make_world_dir("mfa-pki-")
        self._ca("ca", "mfad test CA")
        self._ca("wrong-ca", "an untrusted CA")
        self.issue("server", "redis", san="IP:127.0.0.1")
        self.issue("client", "mfad client", san=None, usage="clientAuth")
        # Valid once, for a day in 2020.
        self.issue("expired", "redis", san="IP:127.0.0.1", start="20200101000000Z",
                   end="20200102000000Z")
        self.issue("other-ip", "redis", san="IP:127.0.0.2")
        self.issue("untrusted", "redis", san="IP:127.0.0.1", ca="wrong-ca")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, subject):
        d = self.path(name + ".d")
        os.makedirs(os.path.join(d, "issued"))
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write(CA_CONFIG.format(dir=d))
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "30",
                 "-subj", "/CN=" + subject, cwd=self.dir)
        os.chmod(self.path(name + ".key"), 0o600)

    def issue(self, name, subject, san, usage="serverAuth", start=None, end=None, ca="ca"):
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("[v3]\nbasicConstraints=CA:FALSE\nextendedKeyUsage=" + usage + "\n")
            if san:
                f.write("subjectAltName=" + san + "\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + subject,
                 cwd=self.dir)
        os.chmod(self.path(name + ".key"), 0o600)
        dates = (["-startdate", start, "-enddate", end] if start else ["-days", "30"])
        _openssl("ca", "-batch", "-config", os.path.join(self.path(ca + ".d"), "ca.cnf"),
                 "-cert", ca + ".pem", "-keyfile", ca + ".key", "-in", name + ".csr",
                 "-out", name + ".pem", "-extfile", ext, "-extensions", "v3", "-notext",
                 *dates, cwd=self.dir)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TlsRedisServer(RedisServer):
    """RedisServer on a TLS port of 127.0.0.1 (certificate `cert` of pki), clients' certificates
    required when auth_clients."""

    def __init__(self, pki, cert="server", auth_clients=False, port=None):
        super().__init__()
        self.port = port or free_port()
        with open(self.config, "a") as f:
            f.write(f"tls-port {self.port}\nbind 127.0.0.1\n"
                    f"tls-cert-file {pki.path(cert + '.pem')}\n"
                    f"tls-key-file {pki.path(cert + '.key')}\n"
                    f"tls-ca-cert-file {pki.path('ca.pem')}\n"
                    f"tls-auth-clients {'yes' if auth_clients else 'no'}\n"
                    "tls-protocols \"TLSv1.2 TLSv1.3\"\n")

    @property
    def address(self):
        return f"rediss://127.0.0.1:{self.port}"


def tls_fleet_config(m, redis, pki, client_cert=False, host_id="host-a"):
    """fleet_config for a TlsRedisServer, trusting pki's CA."""
    from fleet_helpers import fleet_config
    fleet_config(m, redis, host_id=host_id)
    m.set_config("Redis", "CAFile", pki.path("ca.pem"))
    if client_cert:
        m.set_config("Redis", "CertFile", pki.path("client.pem"))
        m.set_config("Redis", "KeyFile", pki.path("client.key"))


def wait_log(m, text, timeout=15):
    if wait_until(lambda: text in m.log_text(), timeout):
        return
    raise AssertionError(f"{text!r} not in the log:\n{m.log_text()[-4000:]}")
