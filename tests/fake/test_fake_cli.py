"""The CLI (tests/fake/tiktok_fake.py), in-process start/stop, keep-alive and TLS."""

import http.client
import json
import os
import signal
import ssl
import subprocess
from urllib.parse import urlsplit

import pytest

import fakectl
from fake_bodies import CREATOR_INFO, VIDEO_INIT, data, direct, file
from tiktok_fake import FakeTikTok


def test_cli_prints_one_json_line_and_exits_0_on_sigterm():
    fake = fakectl.FakeProcess()
    fake.start()
    try:
        info = fake.info
        assert set(info) == {"port", "base_url", "control"}
        assert info["base_url"] == "http://127.0.0.1:%d" % info["port"]
        assert info["control"] == info["base_url"] + "/_fake"
        assert fake.ctl.health()["ok"] is True
    finally:
        assert fake.stop() == 0


def test_cli_exits_0_on_sigint():
    fake = fakectl.FakeProcess()
    fake.start()
    fake.proc.send_signal(signal.SIGINT)
    assert fake.proc.wait(10) == 0
    fake.stop()


def test_cli_reads_the_config_file():
    with fakectl.FakeProcess({"daily_post_cap": 4, "webhook": {"duplicates": 1}}) as fake:
        cfg = fake.ctl.config()
        assert cfg["daily_post_cap"] == 4 and cfg["webhook"]["duplicates"] == 1


@pytest.mark.parametrize("args", [["--config", "{bad}"], ["--host", "0.0.0.0"], ["--tls-cert", "x.pem"]])
def test_cli_refuses_bad_arguments(tmp_path, args):
    if args[0] == "--config":
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"no_such_key": 1}))
        args = ["--config", str(path)]
    proc = subprocess.run([fakectl.PYTHON, fakectl.FAKE_SCRIPT] + args, capture_output=True, timeout=10)
    assert proc.returncode == 2 and proc.stdout == b""


def test_in_process_start_and_stop():
    fake = FakeTikTok({"daily_post_cap": 1})
    base = fake.start()
    try:
        assert base == fake.base_url and base.startswith("http://127.0.0.1:")
        assert fakectl.http_request("GET", base + "/_fake/health").json()["ok"] is True
    finally:
        fake.stop()
    with pytest.raises(OSError):
        fakectl.http_request("GET", base + "/_fake/health", timeout=2)


def test_only_loopback_addresses():
    with pytest.raises(ValueError):
        FakeTikTok(host="0.0.0.0")
    with pytest.raises(ValueError):
        FakeTikTok(host="192.168.1.10")


def test_keep_alive_and_content_length(fake, token):
    parts = urlsplit(fake.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        socks = set()
        for _ in range(5):
            conn.request("POST", CREATOR_INFO, headers={"Authorization": "Bearer " + token})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and resp.version == 11
            assert int(resp.getheader("Content-Length")) == len(body)
            assert not resp.will_close
            socks.add(id(conn.sock))
        assert len(socks) == 1
        conn.request("GET", "/v2/auth/authorize/?client_key=fake_client_key")
        resp = conn.getresponse()
        assert resp.read() is not None and resp.getheader("Content-Length") is not None
    finally:
        conn.close()


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tikd fake test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return {name: str(d / name) for name in ("ca.pem", "server.pem", "server.key")}


def test_tls(tls_files):
    with fakectl.FakeProcess(tls_cert=tls_files["server.pem"], tls_key=tls_files["server.key"],
                             ca_file=tls_files["ca.pem"]) as fake:
        assert fake.base_url.startswith("https://127.0.0.1:")
        assert fake.info["control"].startswith("https://")
        assert fake.ctl.health()["ok"] is True
        tokens = fakectl.obtain_tokens(fake.base_url, ca_file=tls_files["ca.pem"])
        api = fake.api(tokens["access_token"])
        assert api.post_json(CREATOR_INFO).status == 200
        d = data(api.post_json(VIDEO_INIT, direct(file(1000))))
        assert d["upload_url"].startswith(fake.base_url + "/upload/video/")
        assert api.put_chunk(d["upload_url"], b"z" * 1000, 0, 1000).status == 201
        api.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            fakectl.http_request("GET", fake.base_url + "/_fake/health")  # system CAs do not know it
        # a plain-HTTP client does not break the server
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            fakectl.http_request("GET", fake.base_url.replace("https", "http") + "/_fake/health", timeout=5)
        assert fake.ctl.health()["ok"] is True


def test_tls_in_process(tls_files, fake_factory):
    fake = fake_factory(tls_cert=tls_files["server.pem"], tls_key=tls_files["server.key"], ca_file=tls_files["ca.pem"])
    assert fake.base_url.startswith("https://") and fake.ctl.health()["ok"] is True
    assert os.path.exists(tls_files["ca.pem"])
