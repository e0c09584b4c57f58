"""Shared rule libraries: signed, versioned bundles. An unsigned, tampered
or untrusted bundle is refused at install and changes nothing; two tenants
pin different versions of one library and each gets its own; a pin nothing
installed meets keeps that tenant's rules as they were; the records name
the library@version the choosing rule file loaded."""
import base64
import json
import re
import time

from test_publish import video
from test_tenants import logged, setup_tenants, hosts  # noqa: F401  (the fixture)


def make_lib(root, version, body, requires=None, name="captions", tag=""):
    d = root / ("%s-%s%s" % (name, version, tag))
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({
        "name": name, "version": version, "description": "caption helpers",
        "tikd_api": 1, "requires": requires or {}}))
    (d / "init.lua").write_text(body)
    (d / "fmt").mkdir()
    (d / "fmt" / "tags.lua").write_text('return function(t) return "#" .. t end\n')
    (d / "init_test.lua").write_text("-- not packed\n")
    return d


def keygen(s, path):
    r = s.tikd("lib", "keygen", str(path))
    assert r.returncode == 0, r.stderr
    pub = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ed25519:[A-Za-z0-9+/]{43}=", pub), r.stdout
    return pub


def pack(s, d, key, out):
    r = s.tikd("lib", "pack", str(d), "--key", str(key), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert " modules" in r.stdout, r.stdout
    return out


def installed(s):
    return [(l["name"], l["version"]) for l in json.loads(s.tikd("lib", "list", "--json").stdout)]


def test_bundles_are_verified_and_pinned_per_tenant(s, tmp_path, hosts):  # noqa: F811
    s.fake.ctl.set_config(time_scale=0.01)
    ours = keygen(s, tmp_path / "agency.pem")
    theirs = keygen(s, tmp_path / "stranger.pem")
    assert s.tikd("lib", "keygen", str(tmp_path / "agency.pem")).returncode != 0  # never over a key
    setup_tenants(s, hosts, acme_extra=', libs = { captions = "^1.2" }')
    s.cfg.write_text(s.cfg.read_text() + 'trust = { "%s" }\n'
                     'tenants.beta.libs = { captions = "~1.3" }\n' % ours)
    v12 = pack(s, make_lib(tmp_path, "1.2.0", 'local tag = require "captions.fmt.tags"\n'
                           'return { make = function(s) return "v1.2 " .. s .. " " .. tag("a") end }\n'),
               tmp_path / "agency.pem", tmp_path / "c12.tikdlib")
    v13 = pack(s, make_lib(tmp_path, "1.3.0",
                           'return { make = function(s) return "v1.3 " .. s end }\n'),
               tmp_path / "agency.pem", tmp_path / "c13.tikdlib")

    # refused: unsigned, tampered (a file, the manifest), signed by a stranger
    doc = json.loads(v12.read_text())
    unsigned = dict(doc)
    del unsigned["signature"]
    (tmp_path / "unsigned.tikdlib").write_text(json.dumps(unsigned))
    changed = json.loads(v12.read_text())
    changed["files"][1]["data"] = base64.b64encode(
        b"return { make = function(s) return 'pwned' end }\n").decode()
    (tmp_path / "file.tikdlib").write_text(json.dumps(changed))
    renamed = json.loads(v12.read_text())
    renamed["manifest"]["version"] = "9.9.9"
    (tmp_path / "manifest.tikdlib").write_text(json.dumps(renamed))
    stranger = pack(s, make_lib(tmp_path, "1.2.1", "return {}\n"), tmp_path / "stranger.pem",
                    tmp_path / "s.tikdlib")
    for f, why in (("unsigned.tikdlib", "not signed"), ("file.tikdlib", "SHA-256"),
                   ("manifest.tikdlib", "signature does not verify"),
                   ("s.tikdlib", "not trusted")):
        r = s.tikd("lib", "install", str(tmp_path / f))
        assert r.returncode == 1 and "refused" in r.stderr and why in r.stderr, (f, r.stderr)
    assert installed(s) == []
    assert theirs not in s.audit()

    for b in (v12, v13):
        r = s.tikd("lib", "install", str(b))
        assert r.returncode == 0, r.stderr
    assert s.tikd("lib", "install", str(v12)).stdout.startswith("captions@1.2.0 is installed")
    # a version never changes once installed
    other = pack(s, make_lib(tmp_path, "1.2.0", "return { make = function() return 'other' end }\n",
                          tag="-other"),
                 tmp_path / "agency.pem", tmp_path / "other.tikdlib")
    r = s.tikd("lib", "install", str(other))
    assert r.returncode == 1 and "another content" in r.stderr
    assert installed(s) == [("captions", "1.2.0"), ("captions", "1.3.0")]
    r = s.tikd("lib", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tenant acme: captions@1.3.0" in r.stdout and "tenant beta: captions@1.3.0" in r.stdout

    # acme pins ^1.2 -> 1.3.0 now; pin it back to exactly 1.2.0 for the test of two versions
    s.cfg.write_text(s.cfg.read_text() + 'tenants.acme.libs = { captions = "1.2.0" }\n')
    mine = video(s.root / "media" / "acme" / "a.mp4", duration=3)
    (s.root / "rules" / "acme" / "poster.lua").write_text("""
local captions = require "captions"
function on_load()
    tikd.log.info("made", { text = captions.make("acme") })
    assert(tikd.upload.post{ account = "alice", media = "%s", privacy = "SELF_ONLY",
                             caption = captions.make("post"), key = "one" })
end
""" % mine)
    (s.root / "rules" / "beta" / "poster.lua").write_text("""
local captions = require "captions"
function on_load() tikd.log.info("made", { text = captions.make("beta") }) end
""")
    (s.root / "rules" / "gamma" / "nolib.lua").write_text("""
function on_load() tikd.log.info("made", { text = tostring(pcall(require, "captions")) }) end
""")
    d = s.start()
    made = {f["rule"]: f["text"] for f in logged(d, "made", 3)}
    assert made["acme/poster.lua"] == "v1.2 acme #a"
    assert made["beta/poster.lua"] == "v1.3 beta"
    assert made["gamma/nolib.lua"] == "false"

    # the record names rule, tenant, generation and library@version
    deadline = time.monotonic() + 30  # (the post waits for the video's hash and probe)
    while time.monotonic() < deadline:
        rows = json.loads(s.tikd("queue", "--all", "--json", "--tenant", "acme").stdout)
        if rows:
            break
        time.sleep(0.2)
    assert len(rows) == 1, "\n".join(d.lines)
    job = json.loads(s.tikd("job", "show", str(rows[0]["id"]), "--json").stdout)
    assert job["tenant"] == "acme" and job["libs"] == ["captions@1.2.0"], job
    assert re.fullmatch(r"rule:acme/poster\.lua@gen\d+", job["chosen_by"])
    assert re.search(r"job\.planned .*tenant=acme libs=captions@1\.2\.0", s.audit())

    # a pin nothing installed meets: acme keeps its generation, beta reloads
    s.cfg.write_text(s.cfg.read_text() + 'tenants.acme.libs = { captions = "^2" }\n')
    d.stop()
    d = s.start()  # (a pin is config: it takes a restart; at start acme has no rules)
    d.wait_for(r"event=rules\.reload_failed .*tenant=acme")
    st = json.loads(s.tikd("status", "--json").stdout)["tenants"]
    assert any("no installed version meets ^2" in e for e in st["acme"]["last_reload"]["errors"])
    assert st["beta"]["last_reload"]["ok"] is True
    assert d.stop() == 0


def test_a_reload_takes_a_newly_installed_version(s, tmp_path):
    pub = keygen(s, tmp_path / "k.pem")
    s.cfg.write_text(s.cfg.read_text() + 'trust = { "%s" }\nlibs = { captions = "^1" }\n' % pub)
    v10 = pack(s, make_lib(tmp_path, "1.0.0", 'return { v = "1.0.0" }\n'),
               tmp_path / "k.pem", tmp_path / "a.tikdlib")
    assert s.tikd("lib", "install", str(v10)).returncode == 0
    (s.root / "rules" / "uses.lua").write_text(
        'local c = require "captions"\nfunction on_load() tikd.log.info("lib", { v = c.v }) end\n')
    d = s.start()
    assert logged(d, "lib")[0]["v"] == "1.0.0"
    v11 = pack(s, make_lib(tmp_path, "1.1.0", 'return { v = "1.1.0" }\n'), tmp_path / "k.pem", tmp_path / "b.tikdlib")
    mark = len(d.lines)
    r = s.tikd("lib", "install", str(v11))
    assert r.returncode == 0 and "reloads" in r.stdout, r.stdout + r.stderr
    d.wait_for(r'msg=lib v=1\.1\.0', after=mark)
    assert d.stop() == 0


def test_the_example_library_and_tenants_as_the_tutorial_has_them(s, tmp_path):
    """docs/tenants.md: two clients, one shared caption library, upgraded for
    one client first."""
    import os
    import shutil
    from conftest import REPO
    pub = keygen(s, tmp_path / "agency.pem")
    lib = os.path.join(REPO, "rules", "shared", "captions")
    v12 = tmp_path / "captions-1.2.0.tikdlib"
    pack(s, lib, tmp_path / "agency.pem", v12)
    nxt = tmp_path / "captions-next"
    shutil.copytree(lib, nxt)
    m = json.loads((nxt / "manifest.json").read_text())
    m["version"] = "1.3.0"
    (nxt / "manifest.json").write_text(json.dumps(m))
    (nxt / "init.lua").write_text((nxt / "init.lua").read_text().replace('"1.2.0"', '"1.3.0"'))
    pack(s, nxt, tmp_path / "agency.pem", tmp_path / "captions-1.3.0.tikdlib")
    s.cfg.write_text(s.cfg.read_text() + """
trust = { "%s" }
tenants = {
    acme = { rules_dir = "%s/rules/tenants/acme", libs = { captions = "~1.2" } },
    beta = { rules_dir = "%s/rules/tenants/beta", libs = { captions = "~1.3" } },
}
""" % (pub, REPO, REPO))
    for b in ("captions-1.2.0.tikdlib", "captions-1.3.0.tikdlib"):
        assert s.tikd("lib", "install", str(tmp_path / b)).returncode == 0
    r = s.tikd("rules", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "acme/promo.lua: ok" in r.stdout and "beta/promo.lua: ok" in r.stdout
    r = s.tikd("lib", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tenant acme: captions@1.2.0" in r.stdout and "tenant beta: captions@1.3.0" in r.stdout
