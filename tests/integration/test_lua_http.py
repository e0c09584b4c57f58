"""tikd.http from a rule, against a local HTTP source (a stand-in for a CMS):
an allowed host answers, a host not in http.allow_hosts is refused before any
request is made, and the calling coroutine waits without blocking others."""
import http.server
import threading

import pytest


class Source(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):
        Source.hits.append(self.path)
        body = b'{"posts":[{"caption":"from the CMS"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def source():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Source)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Source.hits.clear()
    yield srv.server_address[1]
    srv.shutdown()


def test_rule_fetches_from_allowed_host_only(site, daemon, source):
    cfg = site / "tikd.conf.lua"
    cfg.write_text(cfg.read_text() + 'http = { allow_hosts = { "127.0.0.1:%d" } }\n' % source)
    (site / "rules" / "cms.lua").write_text("""
local cjson = require "cjson"
function on_load()
    local r, err = tikd.http.request{ url = "http://127.0.0.1:%d/feed.json",
                                      headers = { ["X-Client"] = "tikd" } }
    assert(r, err)
    local doc = cjson.decode(r.body)
    tikd.log.info("cms answered", { status = r.status, caption = doc.posts[1].caption,
                                    ctype = r.headers["content-type"] })
    local ok, e = pcall(tikd.http.request, { url = "http://127.0.0.2:%d/" })
    tikd.log.info("other host", { refused = not ok, why = tostring(e) })
end
""" % (source, source))
    d = daemon()
    line = d.wait_for(r'msg="cms answered"')
    for part in ("status=200", 'caption="from the CMS"', "ctype=application/json"):
        assert part in line
    line = d.wait_for(r'msg="other host"')
    assert "refused=true" in line and "127.0.0.2" in line and "is not in http.allow_hosts" in line
    assert Source.hits == ["/feed.json"]
    assert d.stop() == 0
