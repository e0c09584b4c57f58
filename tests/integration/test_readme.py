"""The README's "Using it" section, followed line by line against the fake
TikTok: `make install` into a private root, the installed sample config
edited as the README says (plus where the private root and the fake are),
the systemd unit's own commands started as systemd would, and every other
line run as written. A line this test does not know how to follow fails
it, so the README and this test change together."""
import os
import re
import shlex
import subprocess

import pytest

import fakectl
from conftest import REPO, TIKD, Daemon, free_port
from test_publish import video

PREFIX = "/usr/local"


def readme_block():
    text = open(os.path.join(REPO, "README.md")).read()
    section = text.split("## Using it", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def commands():
    """The block's commands, comments and continuation comments dropped."""
    out = []
    for line in readme_block().splitlines():
        cmd = line.split("  #")[0].strip() if "  #" in line else line.strip()
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
    return out


@pytest.fixture
def installed(tmp_path):
    root = tmp_path / "root"
    build = os.path.dirname(TIKD)
    r = subprocess.run(["make", "-s", "--no-print-directory", "install", "DESTDIR=%s" % root,
                        "PREFIX=" + PREFIX, "BUILD=" + build], cwd=REPO, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def test_the_readme_using_it_path_works_as_written(fake, installed, tmp_path):
    root = installed
    cfg = root / "etc/tikd/tikd.conf.lua"
    assert cfg.exists() and (root / "etc/tikd/rules/hello.lua").exists()
    unit = (root / ("." + PREFIX) / "lib/systemd/system/tikd.service").read_text()
    tikd = str(root / ("." + PREFIX) / "bin/tikd")
    port, aport = free_port(), free_port()
    env = dict(os.environ, TIKD_CONFIG=str(cfg))
    env.pop("TIKD_CLIENT_SECRET", None)
    work = tmp_path / "home"
    work.mkdir()
    video(work / "clip.mp4", duration=5)
    daemon = None
    approved = set()

    def run(args, ok=True):
        r = subprocess.run([tikd] + args, capture_output=True, text=True, env=env, cwd=work,
                           timeout=60)
        assert r.returncode == 0 or not ok, (args, r.stdout, r.stderr)
        return r

    seen = []
    for cmd in commands():
        seen.append(cmd)
        if cmd.startswith("make && sudo make install"):
            continue  # done by the fixture, into its private root
        if cmd == "sudoedit /etc/tikd/tikd.conf.lua":
            # what the README asks for (the app), and where this test's root and fake are
            cfg.write_text(cfg.read_text() + """
-- test_readme: the operator's edit
tiktok = { client_key = "fake_client_key", redirect_uri = "http://127.0.0.1:%d/oauth/callback",
           api_url = "%s", auth_url = "%s/v2/auth/authorize/" }
-- test_readme: the private root and loopback ports
data_dir = "%s"
rules_dir = "%s"
scripts_dir = "%s"
vault = { key_file = "%s" }
media = { probe = "%s", check_urls = false }
listen = { "127.0.0.1:%d" }
admin = { listen = { "127.0.0.1:%d" } }
""" % (port, fake.base_url, fake.base_url, tmp_path / "var/lib/tikd", root / "etc/tikd/rules",
                root / ("." + PREFIX) / "share/tikd/scripts", root / "etc/tikd/keys/vault.keys",
                root / ("." + PREFIX) / "lib/tikd/tikd-probe", port, aport))
            continue
        if cmd.startswith("echo 'TIKD_CLIENT_SECRET=...' | sudo install -m 0600 /dev/stdin "
                          "/etc/tikd/env"):
            (root / "etc/tikd/env").write_text("TIKD_CLIENT_SECRET=fake_client_secret\n")
            env["TIKD_CLIENT_SECRET"] = "fake_client_secret"  # what the unit's EnvironmentFile does
            continue
        if cmd == "sudo systemctl enable --now tikd":
            # the unit's own commands, in its order
            pre = re.search(r"^ExecStartPre=(\S+) (.*)$", unit, re.M)
            start = re.search(r"^ExecStart=(\S+) (.*)$", unit, re.M)
            assert pre.group(1) == start.group(1) == PREFIX + "/bin/tikd"
            assert re.search(r"^StateDirectory=tikd$", unit, re.M)  # systemd makes data_dir
            os.makedirs(tmp_path / "var/lib/tikd", mode=0o700)
            run(shlex.split(pre.group(2)))
            assert shlex.split(start.group(2)) == ["run"]
            daemon = Daemon(cfg, env=env, binary=tikd)
            daemon.wait_for(r"event=daemon\.ready")
            continue
        words = shlex.split(cmd)
        assert words[:4] == ["sudo", "-u", "tikd", "tikd"], "a README line this test cannot " \
            "follow: %r" % cmd
        args = words[4:]
        r = run(args)
        if args[:2] == ["account", "add"]:
            # the operator opens the URL and approves; TikTok sends the browser to the
            # running daemon's callback page, which finishes the connection
            url = re.search(r"(http\S+/v2/auth/authorize/\S+)", r.stdout).group(1)
            back = fakectl.http_request("GET", url)
            assert back.status == 302, back
            page = fakectl.http_request("GET", back.headers["location"])
            assert page.status == 200 and "Account connected" in page.text, page.text
            approved.add(args[2])
        if args[:2] == ["account", "list"]:
            for name in approved:
                assert re.search(r"^%s\s+active\b" % re.escape(name), r.stdout, re.M), r.stdout
        if args[:1] == ["post"]:
            assert "published" in r.stdout, r.stdout
        if args[:1] == ["doctor"]:
            assert "0 failed" in r.stdout, r.stdout
        if args[:3] == ["admin", "token", "create"]:
            assert re.search(r"^tikd_[A-Za-z0-9_-]{43}$", r.stdout, re.M), r.stdout
    assert daemon is not None and approved, seen
    assert any(c.startswith("sudo -u tikd tikd post ") for c in seen)
    # the dashboard the README points at answers
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", aport, timeout=5)
    c.request("GET", "/")
    assert c.getresponse().status == 200
    assert daemon.stop() == 0
