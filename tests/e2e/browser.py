"""A real headless Chromium, driven through chromedriver's W3C WebDriver HTTP API.

Debian's chromium and chromium-driver (hack/install-deps.sh); no Python binding needed:
WebDriver is JSON over HTTP. One Browser per test module (about a second to start).
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.kube_support import eventually

from devenv.proc import Process, free_port, port_open, wait_until

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element key
# The flags the machine notes name: without the background-networking ones Chromium keeps
# dialling Google's hosts, which a loopback-only machine refuses.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,860",
]


class WebDriverError(AssertionError):
    """chromedriver refused a command (no such element, stale element reference, ...)."""


def _trust(certs: tuple[Path, ...]) -> list[str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    pins = []
    for path in certs:
        key = x509.load_pem_x509_certificate(path.read_bytes()).public_key()
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        pins.append(base64.b64encode(digest.finalize()).decode())
    return [f"--ignore-certificate-errors-spki-list={','.join(pins)}"] if pins else []


class Browser:
    def __init__(self, workdir: Path, trusted_certs: tuple[Path, ...] = ()) -> None:
        """trusted_certs: serving certificates Chromium accepts as valid (by their public
        key's hash), so their pages are secure contexts (Secure cookies, no warning)."""
        driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        self.port = free_port()
        self.proc = Process(
            "chromedriver", [driver, f"--port={self.port}"], workdir / "chromedriver.log"
        ).start()
        wait_until(lambda: port_open(self.port), 30, "chromedriver", self.proc.log)
        profile = workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": shutil.which("chromium") or "/usr/bin/chromium",
                        "args": [*FLAGS, f"--user-data-dir={profile}", *_trust(trusted_certs)],
                    },
                }
            }
        }
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                answer = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            # e.g. a stale element: the page's script replaced it meanwhile (wait_for retries)
            value = json.loads(exc.read() or b"{}").get("value") or {}
            raise WebDriverError(
                f"{value.get('error')}: {value.get('message', '')[:300]}"
            ) from None
        return answer.get("value")

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def quit(self) -> None:
        try:
            self._call("DELETE", self._s(""))
        finally:
            self.proc.stop()

    # ---- navigation and reading -----------------------------------------------------
    def get(self, url: str) -> None:
        self._call("POST", self._s("/url"), {"url": url})

    @property
    def url(self) -> str:
        return str(self._call("GET", self._s("/url")))

    def text(self, css: str = "body") -> str:
        return " ".join(self.texts(css))

    def texts(self, css: str) -> list[str]:
        return [str(self._call("GET", self._s(f"/element/{e}/text"))) for e in self.all(css)]

    def all(self, css: str) -> list[str]:
        found = self._call("POST", self._s("/elements"), {"using": "css selector", "value": css})
        return [e[ELEMENT] for e in found]

    def one(self, css: str) -> str:
        found = self.all(css)
        if not found:
            raise AssertionError(f"no element {css!r} on {self.url}: {self.text()[:600]}")
        return found[0]

    def click(self, css: str) -> None:
        self._call("POST", self._s(f"/element/{self.one(css)}/click"))

    def type(self, css: str, text: str) -> None:
        self._call("POST", self._s(f"/element/{self.one(css)}/value"), {"text": text})

    def run(self, script: str, *args: Any) -> Any:
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self._call("GET", self._s("/cookie"))}

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", self._s("/screenshot"))))

    def wait_for(
        self, check: Callable[[], Any], timeout: float = 30.0, what: str = "the page"
    ) -> Any:
        """Poll check() until it returns something truthy (a stale element retries)."""
        return eventually(check, timeout=timeout, interval=0.2, what=f"{what} (at {self.url})")
