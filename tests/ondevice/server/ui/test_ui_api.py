"""The web app's server side over plain HTTP: the API key guards the page and its routes, the security headers,
loopback-only Host, paths confined to indexed files, and indexing that is cancellable and incremental."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from ondevice.cli.main import cli
from tests.ondevice.server.conftest import API_KEY

UI = {"X-Ondevice-UI": "1"}
KEYED = {"Authorization": f"Bearer {API_KEY}", **UI}


def get(server, path, **kwargs):
    return httpx.get(server.base_url + path, timeout=60, **kwargs)


def wait_job(server, name, timeout=300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = get(server, f"/ui/api/indexes/{name}/job", headers=KEYED).json()
        if job["state"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_without_the_key_the_page_asks_for_it_and_the_routes_refuse(ui_server):
    page = get(ui_server, "/")
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert '<form method="get" action="/">' in page.text and "<script" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert get(ui_server, "/ui/api/info", headers=UI).status_code == 401
    assert get(ui_server, "/ui/app.js").status_code == 401
    assert get(ui_server, "/?key=wrong").status_code == 401


def test_the_key_in_the_address_becomes_a_strict_cookie_that_opens_everything(ui_server):
    with httpx.Client(base_url=ui_server.base_url, timeout=60) as client:
        login = client.get(f"/?key={API_KEY}", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/")
        assert page.status_code == 200 and '<script type="module" src="/ui/main.js">' in page.text
        assert client.get("/ui/api/info", headers=UI).json()["model"] == "smollm2-135m"
        assert client.get("/v1/models").status_code == 200  # the app's chat calls the OpenAI routes


def test_the_page_has_a_strict_content_security_policy_and_no_inline_script(ui_server):
    page = get(ui_server, "/", headers={"Authorization": f"Bearer {API_KEY}"})
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert re.findall(r"<script[^>]*>", page.text) == ['<script type="module" src="/ui/main.js">']
    assert not re.search(r"\son[a-z]+=", page.text) and "style=" not in page.text  # no inline handlers or styles
    assert "http://" not in page.text and "https://" not in page.text  # every asset from this server
    js = get(ui_server, "/ui/chat.js", headers={"Authorization": f"Bearer {API_KEY}"})
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")


def test_app_routes_need_the_app_header_and_a_loopback_host(ui_server):
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert get(ui_server, "/ui/api/info", headers=bearer).status_code == 403  # a cross-site form cannot add it
    rebound = get(ui_server, "/ui/api/info", headers={**KEYED, "Host": "attacker.example:8080"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "forbidden_host"
    assert get(ui_server, "/", headers={**bearer, "Host": "attacker.example"}).status_code == 403
    assert get(ui_server, "/ui/api/info", headers={**KEYED, "Host": "localhost:1"}).status_code == 200


def test_an_unknown_catalog_device_is_a_panel_that_says_so(ui_server):
    panels = get(ui_server, "/ui/api/targets", params={"device": "nope"}, headers=KEYED).json()["panels"]
    assert len(panels) == 1 and "unknown device 'nope'" in panels[0]["error"]


@pytest.mark.parametrize("name", ["..%2Fapp.py", "ui_files.py", "index.html", "nope.js"])
def test_only_the_apps_own_static_files_are_served(ui_server, name):
    assert get(ui_server, f"/ui/{name}", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 404


def test_bad_index_requests_get_one_clear_error(ui_server, tmp_path):
    post = lambda body: httpx.post(ui_server.base_url + "/ui/api/indexes", json=body, headers=KEYED, timeout=60)
    assert post({"name": "../x", "folder": str(tmp_path)}).json()["error"]["param"] == "name"
    assert "No such folder" in post({"name": "x", "folder": str(tmp_path / "missing")}).json()["error"]["message"]
    assert "full path" in post({"name": "x", "folder": "relative/notes"}).json()["error"]["message"]
    assert get(ui_server, "/ui/api/indexes/none/job", headers=KEYED).status_code == 404


def test_indexing_is_cancellable_and_resumes_incrementally_and_sources_stay_confined(ui_server, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):  # one chunk each: progress (and so a cancel) is seen after every 64 embedded chunks
        (folder / f"note-{i:03d}.txt").write_text(f"Note {i}: the locker code for box {i} is {1000 + i}.\n")
    started = httpx.post(ui_server.base_url + "/ui/api/indexes", json={"name": "many", "folder": str(folder)},
                         headers=KEYED, timeout=60).json()
    assert started["state"] == "running"
    cancel = httpx.post(ui_server.base_url + "/ui/api/indexes/many/cancel", headers=KEYED, timeout=60)
    assert cancel.status_code == 200
    job = wait_job(ui_server, "many")
    assert job["state"] == "cancelled"
    listed = {ix["name"]: ix for ix in get(ui_server, "/ui/api/indexes", headers=KEYED).json()["indexes"]}
    kept = listed["many"]["files"]
    assert kept < 400 and listed["many"]["folder"] == str(folder.resolve())

    resumed = httpx.post(ui_server.base_url + "/ui/api/indexes", json={"name": "many"}, headers=KEYED, timeout=60)
    assert resumed.status_code == 200  # no folder: the one it was built from
    job = wait_job(ui_server, "many")
    assert job["state"] == "done" and job["files_total"] == 400
    assert job["summary"]["unchanged"] == kept and job["summary"]["added"] == 400 - kept

    source = lambda path: get(ui_server, "/ui/api/indexes/many/source", params={"path": path}, headers=KEYED)
    shown = source(str(folder.resolve() / "note-007.txt")).json()
    assert shown["lines"] == ["Note 7: the locker code for box 7 is 1007."]
    (tmp_path / "secret.txt").write_text("not indexed")
    for outside in (str(tmp_path / "secret.txt"), str(folder / ".." / "secret.txt"), "/etc/passwd",
                    str(folder.resolve() / ".." / "many" / "note-007.txt")):
        assert source(outside).status_code == 404, outside

    removed = httpx.delete(ui_server.base_url + "/ui/api/indexes/many", headers=KEYED, timeout=60)
    assert removed.status_code == 200
    assert "many" not in {ix["name"] for ix in get(ui_server, "/ui/api/indexes", headers=KEYED).json()["indexes"]}
    assert source(str(folder.resolve() / "note-007.txt")).status_code == 404


def test_ondevice_ui_prints_the_address_and_serves_the_app(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "ondevice", "ui", "--no-browser", "--ctx", "256", "--threads",
                                "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("ondevice web app: http://127.0.0.1:")
        url = line.split()[3]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                page = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert page.status_code == 200 and "ondevice" in page.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ondevice_ui_with_an_unknown_model_is_one_line_and_exit_code_2():
    result = CliRunner().invoke(cli, ["ui", "no-such-model", "--no-browser"])
    assert result.exit_code == 2
    assert "no-such-model" in result.output and "Traceback" not in result.output


def test_every_file_of_the_app_ships_as_package_data():
    import fnmatch
    from pathlib import Path

    try:
        import tomllib
    except ImportError:  # Python 3.10: pip vendors the same parser
        from pip._vendor import tomli as tomllib

    root = Path(__file__).resolve().parents[4]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "ondevice.server"]
    files = sorted(p.relative_to(root / "ondevice" / "server").as_posix()
                   for p in (root / "ondevice" / "server" / "ui").iterdir())
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), (files, patterns)
