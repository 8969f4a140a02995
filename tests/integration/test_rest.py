"""REST conventions of esbank-http (issue 14, items 4 and 7): the OpenAPI
document against the routes the gateway really serves, /metrics only on its
own address, and the access log (one line per request, no secrets).
The REST answers of a real group are in test_http.py (test_journey,
test_rejections_carry_protocol_codes) and test_verify_page.py.
"""
import json
import re
import subprocess

from test_http import (GATEWAY, METRICS, REPO, alone, alone_token, curl,  # noqa: F401
                       free_port, need, stop, wait_for)

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def test_openapi_document_is_served_and_matches_the_routes(alone):
    base, _, _, _ = alone
    kept = (REPO / "http" / "openapi.json").read_bytes()
    r = curl(base, "GET", "/api/openapi.json")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.body.encode() == kept  # the very file in the repository
    doc = json.loads(kept)
    assert doc["openapi"].startswith("3.1")
    for path, ops in doc["paths"].items():
        documented = {m.upper() for m in ops if m.upper() in METHODS}
        assert documented, path
        # The gateway's Allow header is its route table for that path.
        r = curl(base, "PATCH", path)
        assert r.status == 405, (path, r)
        assert set(r.headers["allow"].split(", ")) == documented, path
        for op in ops.values():
            for status in op["responses"]:
                assert re.fullmatch(r"[1-5]\d\d", status), (path, status)
    # Every route in the table is documented, and nothing else is served.
    table = re.findall(r'\{ "(/[^"]*)", HTTP_(\w+), \w+, ROUTE_PUBLIC \}',
                       (REPO / "http" / "routes.c").read_text())
    assert table and {p for p, _ in table} == set(doc["paths"])
    assert {(p, m) for p, m in table} == {(p, m.upper()) for p, ops in doc["paths"].items()
                                          for m in ops}
    assert curl(base, "GET", "/api/openapi").status == 404


def test_metrics_only_on_their_own_address(alone, tmp_path):
    base, _, _, _ = alone
    assert curl(base, "GET", "/metrics").status == 404
    m = curl(METRICS[base], "GET", "/metrics")
    assert m.status == 200 and "esbank_http_requests_total" in m.body
    assert curl(METRICS[base], "GET", "/api/openapi.json").status == 404  # and nothing else
    # Off by default: no --metrics, no listener for them.
    need(GATEWAY)
    port = free_port()
    p = subprocess.Popen([str(GATEWAY), "--http", f"127.0.0.1:{port}", "--data",
                          str(tmp_path / "data2"), "--run", str(tmp_path / "run")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        other = f"http://127.0.0.1:{port}"
        wait_for(lambda: curl(other, "GET", "/nope").status == 404, what="gateway up")
        assert curl(other, "GET", "/metrics").status == 404
    finally:
        stop(p)


def test_access_log_line_per_request_without_secrets(alone):
    base, _, tmp, proc = alone
    tok = alone_token(tmp)
    curl(base, "GET", "/api/verify?account_number=1234567890123456&code=SECRETCODE")
    curl(base, "GET", "/api/report/inactive_users?days=3", token=tok)
    curl(base, "POST", "/api/login", {"account": "1234567890123456", "password": "PASSWORDX"})
    curl(base, "GET", "/no/such/place")
    log = tmp / "http.log"
    want = [r"http GET /api/verify 503 [\d.]+ms 127\.0\.0\.1",
            r"http GET /api/report/inactive_users 503 [\d.]+ms 127\.0\.0\.1",
            r"http POST /api/login 503 [\d.]+ms 127\.0\.0\.1",
            r"http GET unmatched 404 [\d.]+ms 127\.0\.0\.1"]
    wait_for(lambda: all(re.search(w, log.read_text()) for w in want), timeout=5,
             what="access log lines")
    text = log.read_text()
    for secret in ("SECRETCODE", "PASSWORDX", tok, tok.split(".")[-1], "days=3"):
        assert secret not in text, secret
