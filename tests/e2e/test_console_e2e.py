"""The web console (issue 15) in real headless Chromium, as bob, alice, erin and carol.

`stella web` runs as its own process with its own ServiceAccount token (it may only review
tokens and list/watch Stella's kinds), on `make demo`'s world with the operator running.
People log in with their own bearer tokens; every approval goes to the API server with
that token. The tests build on each other, in file order: bob approves the hotfix waiting
in staging; alice asks for a Release of her own and may not approve it, not even by a
forged form; a write without the CSRF token changes nothing; erin may read and not
write; a refresh token replayed after rotation kills carol's session.

STELLA_CONSOLE_SCREENSHOTS=DIR also saves the pages' screenshots there (docs/console/
holds the committed ones).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.e2e.browser import Browser
from tests.e2e.demo_world import DemoWorld, G, V, _release_body, world_fixture  # noqa: F401
from tests.kube_support import eventually, metric_sum, start_console

from devenv.proc import Process, wait_until

ACCESS_SECONDS = 6  # short, so that refresh rotation happens within the tests
GRACE = 5.0  # stella.web.sessions.REUSE_GRACE_SECONDS
RBAC = "rbac.authorization.k8s.io"
WEB = {"kind": "Deployment", "name": "web", "container": "web"}
PEOPLE = ("alice", "bob", "carol", "erin", "frank")


@dataclass
class Console:
    proc: Process
    port: int
    ca: Path
    cert: Path
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)
        conn.request(method, path, headers=headers or {})
        resp: Any = conn.getresponse()  # it carries the body read, below
        resp.body = resp.read().decode(errors="replace")
        conn.close()
        return resp

    def metric(self, name: str, **labels: str) -> float:
        return metric_sum(self.request("GET", "/metrics").body, name, **labels)

    def log(self) -> str:
        return self.proc.log.read_text(errors="replace")


def _bearer(api: client.ApiClient) -> str:
    keys = api.configuration.api_key
    return str(keys.get("authorization") or keys.get("BearerToken") or "").removeprefix("Bearer ")


@pytest.fixture(scope="module")
def console(
    world: DemoWorld,
    kube_as: dict[str, client.ApiClient],
    openbao: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Console]:
    workdir = tmp_path_factory.mktemp("console-process")
    token_file = workdir / "vault-token"
    token_file.write_text(openbao.root_token + "\n")
    proc, port, ca, crt = start_console(
        world.admin,
        world.kube.server,
        str(world.kube.ca_file),
        workdir,
        {
            "STELLA_WEB_ACCESS_SECONDS": str(ACCESS_SECONDS),
            "STELLA_WEB_HEADER_LOGIN": "true",
            # small, so that erin reaches them: 2 exports an hour, the signal at her 5th read
            "STELLA_WEB_EXPORTS_PER_HOUR": "2",
            "STELLA_WEB_READS_SIGNAL_PER_HOUR": "5",
            "STELLA_NAMESPACE": world.namespace,  # where this operator keeps its evidence
            # the webhook gateway: receivers' HMAC keys from Vault, tags from the registry
            "STELLA_VAULT_ADDR": openbao.addr,
            "STELLA_VAULT_AUTH": "token",
            "STELLA_VAULT_TOKEN_FILE": str(token_file),
            "STELLA_INSECURE_REGISTRIES": world.registry.host,
        },
    )
    c = Console(proc, port, ca, crt, {u: _bearer(kube_as[u]) for u in PEOPLE})
    try:
        wait_until(
            lambda: c.request("GET", "/healthz").body == "ok", 60, "the console's view", proc.log
        )
        yield c
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("browser"), trusted_certs=(console.cert,))
    try:
        yield b
    finally:
        b.quit()


def shot(browser: Browser, name: str) -> None:
    where = os.environ.get("STELLA_CONSOLE_SCREENSHOTS")
    if where:
        browser.screenshot(Path(where) / f"{name}.png")


def login(browser: Browser, console: Console, user: str) -> None:
    browser.get(f"{console.url}/login")
    browser.type("input[name=token]", console.tokens[user])
    browser.click("form.login button")
    browser.wait_for(lambda: user in browser.text(".who"), what=f"{user} logged in")


def logout(browser: Browser) -> None:
    browser.click("nav form button")
    browser.wait_for(lambda: "/login" in browser.url, what="logged out")


def forge(browser: Browser, action: str, fields: dict[str, str]) -> None:
    """Post a form the page does not offer (as a person with devtools would)."""
    browser.run(
        """
        const [action, fields] = arguments;
        const form = document.createElement('form');
        form.method = 'post'; form.action = action;
        for (const [name, value] of Object.entries(fields)) {
          const input = document.createElement('input');
          input.type = 'hidden'; input.name = name; input.value = value;
          form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
        """,
        action,
        fields,
    )


def csrf_of(browser: Browser) -> str:
    return str(browser.run("return document.querySelector('meta[name=csrf-token]').content"))


def approvals_by(world: DemoWorld, user: str, release: str) -> list[dict[str, Any]]:
    items = world.custom.list_namespaced_custom_object(G, V, "shop", "approvals")["items"]
    return [
        a
        for a in items
        if a["spec"]["release"] == release
        and f'"username":"{user}"'
        in (a["metadata"].get("annotations") or {}).get("stella.io/approver", "")
    ]


def test_bob_sees_staging_waiting_for_him_approves_and_the_promotion_proceeds(
    world: DemoWorld, console: Console, browser: Browser
) -> None:
    login(browser, console, "bob")
    cell = "shop/shop-1-1-hotfix|staging"
    browser.wait_for(
        lambda: browser.text(f'[data-cell="{cell}"]') == "WaitingForApproval",
        what="the hotfix waiting in staging on the pipelines page",
    )
    assert browser.text('[data-cell="shop/shop-1-1|prod"]') == "Live"
    shot(browser, "pipelines")
    browser.get(f"{console.url}/inbox")
    row = browser.text("table.inbox")
    assert "shop/shop-1-1-hotfix" in row and "staging" in row
    shot(browser, "inbox")
    browser.type("table.inbox input[name=comment]", "CAB-77: hotfix verified")
    browser.click("table.inbox button.approve")
    browser.wait_for(lambda: "Recorded: Approve staging" in browser.text(), what="the approval")
    [mine] = approvals_by(world, "bob", "shop-1-1-hotfix")
    assert mine["spec"]["comment"] == "CAB-77: hotfix verified"
    # The release page follows the promotion without a reload (its script polls).
    browser.run("window.stellaMarker = 42")
    browser.wait_for(
        lambda: browser.text(f'[data-cell="{cell}"]') == "Live",
        timeout=120,
        what="staging Live on the release page",
    )
    browser.wait_for(
        lambda: (
            "Approve by bob" in browser.text("ol.timeline")
            and "CAB-77: hotfix verified" in browser.text("ol.timeline")
        ),
        what="the fresh timeline",
    )
    assert browser.run("return window.stellaMarker") == 42, "the page was reloaded"
    shot(browser, "release")
    browser.get(f"{console.url}/environments/staging")
    assert "shop/shop-1-1-hotfix" in browser.text("dl.facts")
    browser.get(f"{console.url}/evidence")  # an approver is no auditor
    assert "You may not read Stella's evidence" in browser.text("#forbidden")
    logout(browser)


def test_alice_sees_no_approve_button_for_her_own_release_and_a_forged_post_is_refused(
    world: DemoWorld, console: Console, browser: Browser
) -> None:
    client.CustomObjectsApi(world.users["alice"]).create_namespaced_custom_object(
        G, V, "shop", "releases", _release_body("shop-1-2", world.v1, ["dev", "staging"], "1.2")
    )
    world.wait_phase("shop-1-2", "staging", "WaitingForApproval")
    login(browser, console, "alice")
    browser.get(f"{console.url}/releases/shop/shop-1-2")
    browser.wait_for(lambda: "may not decide" in browser.text("ol.timeline"), what="why not")
    assert not browser.all("button.approve") and not browser.all("button.reject")
    browser.get(f"{console.url}/inbox")
    assert not browser.all("button.approve")
    assert "preventSelfApproval" in browser.text("table.others")
    forge(
        browser,
        "/releases/shop/shop-1-2/decide",
        {
            "csrf": csrf_of(browser),
            "environment": "staging",
            "decision": "Approve",
            "comment": "me",
        },
    )
    refused = browser.wait_for(lambda: browser.text("#refused"), what="the refusal")
    # alice is a requester: RBAC refuses her any Approval before admission would refuse
    # this one as self-approval (dave's case below).
    assert "API server refused approve" in refused
    assert 'User "alice" cannot create resource "approvals"' in refused
    assert approvals_by(world, "alice", "shop-1-2") == []


def test_a_write_without_the_csrf_token_is_refused_and_changes_nothing(
    world: DemoWorld, console: Console, browser: Browser
) -> None:
    before = console.metric("stella_console_session_signals_total", signal="csrf")
    browser.get(f"{console.url}/inbox")
    forge(
        browser, "/releases/shop/shop-1-2/decide", {"environment": "staging", "decision": "Reject"}
    )
    browser.wait_for(lambda: "no CSRF token" in browser.text(), what="the CSRF refusal")
    browser.get(f"{console.url}/inbox")
    forge(
        browser,
        "/releases/shop/shop-1-2/decide",
        {"csrf": "not-this-sessions", "environment": "staging", "decision": "Reject"},
    )
    browser.wait_for(lambda: "does not match" in browser.text(), what="the CSRF refusal")
    assert approvals_by(world, "alice", "shop-1-2") == []
    assert world.phase("shop-1-2", "staging") == "WaitingForApproval"
    assert console.metric("stella_console_session_signals_total", signal="csrf") == before + 2
    logout(browser)


def test_erin_reads_and_cannot_write(world: DemoWorld, console: Console, browser: Browser) -> None:
    login(browser, console, "erin")
    browser.wait_for(
        lambda: browser.text('[data-cell="shop/shop-1-2|staging"]') == "WaitingForApproval",
        what="erin reads the pipelines",
    )
    browser.get(f"{console.url}/inbox")
    assert not browser.all("button.approve")
    assert "approve" in browser.text("table.others")  # no `approve` verb: admission's words
    forge(
        browser,
        "/releases/shop/shop-1-2/decide",
        {"csrf": csrf_of(browser), "environment": "staging", "decision": "Approve", "comment": "x"},
    )
    refused = browser.wait_for(lambda: browser.text("#refused"), what="the refusal")
    assert "forbidden" in refused.lower()
    assert approvals_by(world, "erin", "shop-1-2") == []
    # erin reads the evidence with her own token, and the console verifies it.
    browser.get(f"{console.url}/evidence")
    verified = browser.wait_for(lambda: browser.text("#verified"), what="the verification")
    assert verified.startswith("Verified:") and "signatures" in verified
    chains = " ".join(browser.texts("h2"))
    assert all(f"Chain {env}" in chains for env in ("dev", "staging", "prod"))
    shot(browser, "evidence")
    session = "; ".join(f"{k}={v}" for k, v in browser.cookies().items())
    export = console.request("GET", "/evidence/export?chain=prod", {"Cookie": session})
    assert export.status == 200 and "attachment" in export.getheader("Content-Disposition")
    doc = json.loads(export.body)
    assert doc["chain"] == "prod" and doc["configMaps"] and doc["keys"]
    assert f"evidence read user=erin namespace={world.namespace}" in console.log()
    assert "evidence export user=erin" in console.log()
    # A Release's own packets, each verified; DORA from the verified evidence; the path.
    browser.get(f"{console.url}/releases/shop/shop-1-1")
    packets = browser.wait_for(lambda: browser.text("#release-evidence"), what="its evidence")
    assert "packets verify" in packets and "do not verify" not in packets
    assert all(env in packets for env in ("dev", "staging", "prod"))
    browser.run("document.getElementById('release-evidence').scrollIntoView()")
    shot(browser, "release-evidence")
    browser.get(f"{console.url}/dora")
    charts = browser.wait_for(lambda: browser.all("#dora-charts svg"), what="the DORA charts")
    assert len(charts) == 4 and "prod" in browser.text("#dora-charts")
    shot(browser, "dora")
    browser.get(f"{console.url}/environments")
    nodes = browser.all("#path-graph a.node")
    assert len(nodes) == 3 and "shop/shop-1-1" in browser.text("#path-graph")
    shot(browser, "path")
    # Per-identity quota: a second export is allowed, a third within the hour is not.
    assert console.request("GET", "/evidence/export?chain=dev", {"Cookie": session}).status == 200
    third = console.request("GET", "/evidence/export?chain=dev", {"Cookie": session})
    assert third.status == 429 and int(third.getheader("Retry-After")) > 3000
    assert "2 evidence exports in the last hour" in third.body
    assert console.metric("stella_console_quota_refused_total", quota="evidence-export") == 1
    # Many reads by one identity: one signal, naming erin in the security log only.
    assert console.metric("stella_console_read_volume_signals_total") == 1
    assert "console many evidence reads user=erin" in console.log()
    logout(browser)


def test_frank_clears_a_halt_in_his_own_name_and_bob_may_not(
    world: DemoWorld, console: Console, browser: Browser
) -> None:
    world.halt("prod")
    login(browser, console, "bob")
    browser.get(f"{console.url}/environments/prod")
    assert "DigestMismatch" in browser.wait_for(lambda: browser.text("#halted"), what="halt")
    assert not browser.all("form.clear-halt")  # an approver holds no `clear-halt`
    forge(
        browser,
        "/environments/prod/clear-halt",
        {"csrf": csrf_of(browser), "reason": "bob wants it"},
    )
    refused = browser.wait_for(lambda: browser.text("#refused"), what="the refusal")
    assert "clear-halt" in refused and "bob" in refused
    logout(browser)
    login(browser, console, "frank")
    browser.get(f"{console.url}/environments/prod")
    browser.type("form.clear-halt input[name=reason]", "INC-42: registry fixed")
    shot(browser, "clear-halt")
    browser.click("form.clear-halt button")
    browser.wait_for(lambda: "Recorded: ClearHalt" in browser.text(), what="the action")
    eventually(lambda: not world.env_status("prod").get("halted"), what="prod no longer halted")
    actions = world.custom.list_cluster_custom_object(G, V, "actions")["items"]
    [mine] = [
        a
        for a in actions
        if a["spec"]["action"] == "ClearHalt"
        and a["spec"]["environment"] == "prod"
        and '"username":"frank"' in a["metadata"]["annotations"].get("stella.io/actor", "")
    ]
    assert mine["spec"]["reason"] == "INC-42: registry fixed"
    # Suspend and resume deployments to prod, the same way (his `suspend` verb).
    browser.get(f"{console.url}/environments/prod")
    browser.type("form.suspend input[name=reason]", "database migration")
    browser.click("form.suspend button")
    eventually(
        lambda: (world.env_status("prod").get("suspended") or {}).get("by") == "frank",
        what="prod suspended by frank",
    )
    browser.get(f"{console.url}/environments/prod")
    assert "suspended by frank" in browser.text("#suspended")
    # At once: a Resume in the very second of the Suspend comes after it (the engine orders
    # them as the watch delivers them, not by name).
    browser.click("form.resume button")
    eventually(lambda: not world.env_status("prod").get("suspended"), what="prod resumed")
    logout(browser)


def test_bob_promotes_where_a_person_must_and_the_action_names_him(
    world: DemoWorld, console: Console, browser: Browser
) -> None:
    """dev stops promoting by itself (autoPromote: false) and gets a freeze window next
    week (the calendar shows it; it does not hold this promotion). alice's Release waits;
    bob, who holds `promote`, presses the button; the Action is his and dev deploys it."""
    week = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + 7 * 86400))
    week_end = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + 9 * 86400))
    patch = {
        "spec": {
            "autoPromote": False,
            "freezeWindows": [{"name": "release-train", "start": week, "end": week_end}],
        }
    }
    world.custom.patch_cluster_custom_object(G, V, "environments", "dev", patch)
    try:
        client.CustomObjectsApi(world.users["alice"]).create_namespaced_custom_object(
            G, V, "shop", "releases", _release_body("shop-1-4", world.v1, ["dev"], "1.4")
        )
        eventually(
            lambda: world.progress("shop-1-4", "dev").get("reason") == "AwaitingPromotion",
            timeout=60,
            what="shop-1-4 awaiting promotion in dev",
        )
        login(browser, console, "alice")  # a requester holds no `promote`
        browser.get(f"{console.url}/releases/shop/shop-1-4")
        browser.wait_for(lambda: browser.text("ol.timeline"), what="the release page")
        assert not browser.all("form.promote")
        logout(browser)
        login(browser, console, "bob")
        browser.get(f"{console.url}/environments/dev")
        calendar = browser.wait_for(lambda: browser.text("#freeze-calendar"), what="calendar")
        assert "frozen" in calendar
        shot(browser, "environment")
        browser.get(f"{console.url}/releases/shop/shop-1-4")
        browser.type("form.promote input[name=reason]", "CHG-5: canary window")
        shot(browser, "promote")
        browser.click("form.promote button")
        browser.wait_for(lambda: "Recorded: Promote dev" in browser.text(), what="the promotion")
        world.wait_phase("shop-1-4", "dev", "Deployed")
        actions = world.custom.list_cluster_custom_object(G, V, "actions")["items"]
        [mine] = [
            a
            for a in actions
            if a["spec"]["action"] == "Promote" and a["spec"].get("release") == "shop/shop-1-4"
        ]
        assert '"username":"bob"' in mine["metadata"]["annotations"]["stella.io/actor"]
        assert mine["spec"]["reason"] == "CHG-5: canary window"
        logout(browser)
    finally:
        restore = {"spec": {"autoPromote": True, "freezeWindows": None}}
        world.custom.patch_cluster_custom_object(G, V, "environments", "dev", restore)


def test_alice_rolls_dev_back_from_its_page_in_her_own_name(
    world: DemoWorld, console: Console, browser: Browser
) -> None:
    """alice holds `rollback`: dev's page offers its previous Release; the rollback Release
    is hers (admission stamps it) and dev runs the earlier Release's image again."""
    current = world.env_status("dev")["currentRelease"]
    login(browser, console, "alice")
    browser.get(f"{console.url}/environments/dev")
    form = browser.wait_for(lambda: browser.text("form.rollback"), what="the rollback offer")
    target = form.removeprefix("Roll back to ").strip()
    assert target.startswith("shop/") and target != current
    assert "roll back dev from" in browser.text(".actions .hint")
    browser.click("form.rollback button")
    browser.wait_for(lambda: "Recorded: Rollback dev" in browser.text(), what="the rollback")
    made = browser.url.split("/releases/shop/", 1)[1].split("?", 1)[0]
    rb = world.release(made)
    assert rb["metadata"]["annotations"]["stella.io/rollback-of"] == target
    assert '"username":"alice"' in rb["metadata"]["annotations"]["stella.io/requester"]
    world.wait_phase(made, "dev", "Deployed")
    image = world.release(target.split("/", 1)[1])["spec"]["components"][0]["image"]
    assert world.deployed_image("dev") == image
    logout(browser)


def test_a_refresh_token_replayed_after_rotation_kills_the_session(
    world: DemoWorld, console: Console, browser: Browser
) -> None:
    login(browser, console, "carol")
    first = browser.cookies()
    assert first["__Host-stella-refresh"] and first["__Host-stella-access"]
    time.sleep(ACCESS_SECONDS + 1)  # the access token expires; the next page rotates both
    browser.get(f"{console.url}/environments")
    rotated_at = time.monotonic()
    assert "carol" in browser.text(".who")
    second = browser.cookies()
    assert second["__Host-stella-refresh"] != first["__Host-stella-refresh"]
    assert second["__Host-stella-access"] != first["__Host-stella-access"]
    before = console.metric("stella_console_session_signals_total", signal="refresh-reuse")
    time.sleep(max(0.0, GRACE + 0.5 - (time.monotonic() - rotated_at)))
    stolen = console.request(
        "GET", "/", {"Cookie": f"__Host-stella-refresh={first['__Host-stella-refresh']}"}
    )
    assert stolen.status == 303 and "refresh-reuse" in stolen.getheader("Location")
    # The whole family is revoked: carol's browser, with the newest tokens, is out too.
    browser.get(f"{console.url}/")
    assert "used twice" in browser.wait_for(lambda: browser.text(".notice"), what="login page")
    assert browser.all("input[name=token]")
    assert (
        console.metric("stella_console_session_signals_total", signal="refresh-reuse") == before + 1
    )
    log = console.log()
    assert "signal=refresh-reuse" in log
    for secret in (
        first["__Host-stella-refresh"],
        second["__Host-stella-access"],
        *console.tokens.values(),
    ):
        assert secret not in log


def test_every_response_carries_the_security_headers(console: Console) -> None:
    resp = console.request("GET", "/login")
    assert "default-src 'none'" in resp.getheader("Content-Security-Policy")
    assert resp.getheader("X-Frame-Options") == "DENY"
    cookie = resp.getheader("Set-Cookie")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    plain = http.client.HTTPConnection("127.0.0.1", console.port, timeout=5)
    try:
        plain.request("GET", "/healthz")
        status: int | None = plain.getresponse().status
    except (http.client.HTTPException, OSError):
        status = None
    assert status is None, "TLS only: plain HTTP never gets an answer"


def test_behind_a_proxy_the_bearer_header_logs_in_and_a_bad_token_does_not(
    console: Console,
) -> None:
    """What oauth2-proxy does (docs/console.md): the person's token as Authorization."""
    good = console.request(
        "GET", "/login/header", {"Authorization": f"Bearer {console.tokens['bob']}"}
    )
    assert good.status == 303 and good.getheader("Location") == "/"
    cookies = good.msg.get_all("Set-Cookie")
    assert any(c.startswith("__Host-stella-access=") for c in cookies)
    bad = console.request("GET", "/login/header", {"Authorization": "Bearer not-a-token"})
    assert bad.status == 303 and bad.getheader("Location") == "/login?m=refused"
    assert console.metric("stella_console_logins_total", result="refused") >= 1


def _deliver(
    console: Console, body: bytes, secret: str, *, ts: float | None = None, nonce: str | None = None
) -> Any:
    from stella.secrets.value import SecretValue
    from stella.web.hooks import sign

    stamp = str(int(ts if ts is not None else time.time()))
    nonce = nonce or uuid.uuid4().hex
    ctx = ssl.create_default_context(cafile=str(console.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", console.port, context=ctx, timeout=30)
    conn.request(
        "POST",
        "/hooks/shop/ci",
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-Stella-Timestamp": stamp,
            "X-Stella-Nonce": nonce,
            "X-Stella-Signature": sign(SecretValue(secret), stamp, nonce, body),
        },
    )
    resp: Any = conn.getresponse()  # it carries the body read, and what was sent
    resp.body = resp.read().decode(errors="replace")
    resp.nonce, resp.stamp = nonce, stamp
    conn.close()
    return resp


def test_a_receiver_naming_an_environment_that_does_not_exist_is_refused_when_written(
    world: DemoWorld,
) -> None:
    """frank (platform engineer, who manages Receivers) misspells an Environment: the API
    server refuses the Receiver at once (Stella's admission), saying which and what to do."""
    import yaml

    body: dict[str, Any] = {
        "apiVersion": f"{G}/{V}", "kind": "Receiver",
        "metadata": {"name": "typo", "namespace": "shop"},
        "spec": {
            "secret": "vault:secret/data/hooks/typo#hmac", "serviceAccountName": "typo",
            "environments": ["dev", "prdo"],
            "components": [{"name": "web", "repository": f"{world.registry.host}/shop/web",
                            "workload": WEB}],
        },
    }  # fmt: skip
    out = world.kube.kubectl("frank", "apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert out.returncode != 0
    assert "Environment prdo does not exist" in out.stderr and "spec.environments" in out.stderr
    listed = world.custom.list_namespaced_custom_object(G, V, "shop", "receivers")["items"]
    assert "typo" not in {r["metadata"]["name"] for r in listed}  # nothing was written
    body["spec"]["environments"] = ["dev"]
    ok = world.kube.kubectl("frank", "apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert ok.returncode == 0, ok.stderr
    world.custom.delete_namespaced_custom_object(G, V, "shop", "receivers", "typo")


def test_a_signed_ci_event_becomes_a_pinned_release_as_the_receivers_own_identity(
    world: DemoWorld, console: Console, openbao: Any
) -> None:
    """The webhook gateway: a receiver in shop, its HMAC key in Vault, its own
    ServiceAccount that the console may impersonate and nothing else."""
    import hvac

    core, rbac = client.CoreV1Api(world.admin), client.RbacAuthorizationV1Api(world.admin)
    sa = "stella-receiver-ci"
    core.create_namespaced_service_account(
        "shop", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa))
    )
    ref = client.V1RoleRef
    subject = client.RbacV1Subject
    rbac.create_namespaced_role_binding(
        "shop",
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="receiver-ci-requests"),
            role_ref=ref(api_group=RBAC, kind="ClusterRole", name="stella-requester"),
            subjects=[subject(kind="ServiceAccount", name=sa, namespace="shop")],
        ),
    )
    only_this_one = client.V1PolicyRule(
        api_groups=[""], resources=["serviceaccounts"], verbs=["impersonate"], resource_names=[sa]
    )
    impersonate = "console-impersonates-receiver-ci"
    rbac.create_namespaced_role(
        "shop",
        client.V1Role(metadata=client.V1ObjectMeta(name=impersonate), rules=[only_this_one]),
    )
    rbac.create_namespaced_role_binding(
        "shop",
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=impersonate),
            role_ref=ref(api_group=RBAC, kind="Role", name=impersonate),
            subjects=[
                subject(kind="ServiceAccount", name="stella-console", namespace="stella-system")
            ],
        ),
    )
    key = uuid.uuid4().hex
    hvac.Client(url=openbao.addr, token=openbao.root_token).secrets.kv.v2.create_or_update_secret(
        path="hooks/ci", secret={"hmac": key}
    )
    world.custom.create_namespaced_custom_object(G, V, "shop", "receivers", {
        "apiVersion": f"{G}/{V}", "kind": "Receiver", "metadata": {"name": "ci"},
        "spec": {
            "secret": "vault:secret/data/hooks/ci#hmac", "serviceAccountName": sa,
            "environments": ["dev"], "burst": 3, "ratePerMinute": 1,
            "components": [{"name": "web", "repository": f"{world.registry.host}/shop/web",
                            "workload": {"kind": "Deployment", "name": "web", "container": "web"}}],
        },
    })  # fmt: skip

    def count(result: str) -> float:
        return console.metric("stella_gateway_deliveries_total", result=result)

    body = json.dumps(
        {
            "version": "1.3",
            "components": [{"name": "web", "image": f"{world.registry.host}/shop/web:1.1"}],
        }
    ).encode()
    # A wrong key, until the console's view has the Receiver (404 before): never accepted.
    eventually(lambda: _deliver(console, body, "not-the-key").status == 401, what="the receiver")
    bad = count("bad-signature")
    good = _deliver(console, body, key)
    assert good.status == 201, good.body
    release = world.custom.get_namespaced_custom_object(G, V, "shop", "releases", "ci-1-3")
    assert release["spec"]["components"][0]["image"] == world.v2  # tag 1.1, pinned at receipt
    requester = release["metadata"]["annotations"]["stella.io/requester"]
    assert f'"username":"system:serviceaccount:shop:{sa}"' in requester
    # Refused, each for its reason, and counted; nothing created.
    replay = _deliver(console, body, key, ts=float(good.stamp), nonce=good.nonce)
    assert replay.status == 409 and "replayed-nonce" in replay.body
    assert _deliver(console, body, "not-the-key").status == 401
    stale = _deliver(console, body, key, ts=time.time() - 3600)
    assert stale.status == 401 and "stale-timestamp" in stale.body
    big = _deliver(console, b" " * 70_000, key)
    assert big.status == 413
    flood = [_deliver(console, body, key) for _ in range(4)]
    limited = [r for r in flood if r.status == 429]
    assert limited and int(limited[0].getheader("Retry-After")) >= 1
    assert count("bad-signature") == bad + 1
    assert count("replayed-nonce") == 1 and count("stale-timestamp") == 1
    assert count("too-large") == 1 and count("rate-limited") >= 1
    assert count("accepted") == 1
    made = world.custom.list_namespaced_custom_object(
        G, V, "shop", "releases", label_selector="stella.io/receiver=ci"
    )
    assert [r["metadata"]["name"] for r in made["items"]] == ["ci-1-3"]
    log = console.log()
    assert "gateway signal=replayed-nonce receiver=shop/ci" in log and key not in log


def test_a_push_to_the_registry_becomes_a_pinned_release_through_its_own_notifier(
    world: DemoWorld, console: Console, openbao: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A distribution registry of its own, whose notifier posts to the console (trusting
    its CA) with the receiver's key as a bearer header; a push becomes a Release, pinned
    by the digest the registry names, requested by the receiver's ServiceAccount (set up
    by the test above). The first delivery comes before dev allows the registry: the
    create is refused, and the notifier's retry of the same events is a retry, not a
    replay, once dev allows it."""
    import hvac

    from devenv.services import Registry, push_image

    key = uuid.uuid4().hex
    hvac.Client(url=openbao.addr, token=openbao.root_token).secrets.kv.v2.create_or_update_secret(
        path="hooks/registry", secret={"token": key}
    )
    endpoint: dict[str, object] = {
        "name": "stella",
        "url": f"{console.url}/hooks/shop/registry",
        "headers": {"Authorization": [f"Bearer {key}"]},
    }
    reg = Registry(
        tmp_path_factory.mktemp("notifying-registry"), notifications=[endpoint], ca=console.ca
    )
    reg.start()
    try:
        world.custom.create_namespaced_custom_object(G, V, "shop", "receivers", {
            "apiVersion": f"{G}/{V}", "kind": "Receiver", "metadata": {"name": "registry"},
            "spec": {
                "format": "Distribution", "secret": "vault:secret/data/hooks/registry#token",
                "serviceAccountName": "stella-receiver-ci", "environments": ["dev"],
                "components": [{"name": "web", "repository": f"{reg.host}/shop/web",
                                "workload": WEB}],
            },
        })  # fmt: skip
        eventually(
            lambda: console.request("POST", "/hooks/shop/registry").status == 401,
            what="the registry receiver in the console's view",
        )
        accepted = console.metric("stella_gateway_deliveries_total", result="accepted")
        digest = push_image(reg.url, "shop/web", "2.0", b"shop web 2.0 from CI")
        eventually(
            lambda: "release=registry-2-0 result=refused code=403" in console.log(),
            what="the delivery refused while dev does not allow the registry",
        )
        world.custom.patch_cluster_custom_object(
            G, V, "environments", "dev",
            {"spec": {"allowedRegistries": [world.registry.host, reg.host]}},
        )  # fmt: skip
        release = eventually(
            lambda: world.custom.get_namespaced_custom_object(
                G, V, "shop", "releases", "registry-2-0"
            ),
            timeout=60,
            what="the Release asked for by the registry's notification",
        )
        assert release["spec"]["components"][0]["image"] == f"{reg.host}/shop/web@{digest}"
        assert release["spec"]["version"] == "2.0"
        requester = release["metadata"]["annotations"]["stella.io/requester"]
        assert '"username":"system:serviceaccount:shop:stella-receiver-ci"' in requester
        assert console.metric("stella_gateway_deliveries_total", result="accepted") == accepted + 1
        log = console.log()
        assert key not in log and "signal=replayed-nonce receiver=shop/registry" not in log
    finally:
        reg.stop()
