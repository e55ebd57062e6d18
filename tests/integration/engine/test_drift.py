"""The drift reporter against a real registry behind basic auth, credentials from OpenBao:
a moved tag is reported (metric + one Warning Event), never followed; moving it back is
reported too. Not yet wired into the controller: the reporter is driven directly."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import hvac

from devenv.services import OpenBao, Registry, basic_auth, push_image
from stella.engine.drift import IMAGE_DRIFT, DriftReporter
from stella.engine.view import ClusterView
from stella.models import EnvironmentSpec
from stella.registry import RegistryClient, vault_credentials, verify_release_images
from stella.secrets import SecretValue, TokenAuth, VaultClient, VaultSettings

USER, PASSWORD = "stella", "s3cret-registry"


def test_moved_tag_is_reported_once_and_never_followed(
    registry_basic: Registry, openbao: OpenBao
) -> None:
    env, repo = f"drift-{uuid.uuid4().hex[:6]}", f"drift/{uuid.uuid4().hex[:8]}"
    path = f"registry/{env}"
    hvac.Client(url=openbao.addr, token=openbao.root_token).secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": USER, "password": PASSWORD}
    )
    auth = basic_auth(USER, PASSWORD)
    payload = f"v1 {uuid.uuid4()}".encode()
    pinned = push_image(registry_basic.url, repo, "1.0", payload, auth)
    image = f"{registry_basic.host}/{repo}:1.0@{pinned}"

    view = ClusterView()
    view.apply(
        "Environment",
        "ADDED",
        {
            "metadata": {"name": env, "resourceVersion": "1"},
            "spec": {
                "targets": [{"namespace": "shop"}],
                "allowedRegistries": [registry_basic.host],
                "registryCredentials": f"vault:secret/{path}#password",
            },
            "status": {"currentRelease": "shop/rel-1"},
        },
    )
    release = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "rel-1", "namespace": "shop", "resourceVersion": "1"},
        "spec": {
            "version": "1.0.0",
            "environments": [env],
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
        "status": {"environments": [{"name": env, "phase": "Deployed"}]},
    }
    view.apply("Release", "ADDED", release)
    emitted: list[tuple[str, str, str]] = []

    def emit(body: Any, reason: str, message: str, type_: str = "Normal", **_: Any) -> None:
        emitted.append((reason, type_, message))

    vault = VaultClient(
        VaultSettings(addr=openbao.addr, auth=TokenAuth(token=SecretValue(openbao.root_token)))
    )

    def gauge() -> float:
        return IMAGE_DRIFT.labels(env, "web")._value.get()  # type: ignore[no-any-return]

    async def go() -> None:
        async with RegistryClient(insecure_registries={registry_basic.host}) as reg:
            reporter = DriftReporter(view, reg, vault, emit=emit)
            first = await reporter.check_environment(env)
            assert [d.check.reason for d in first] == ["InSync"] and gauge() == 0
            assert emitted == []

            push_image(registry_basic.url, repo, "1.0", b"someone moved the tag", auth)
            moved = await reporter.check_environment(env)
            assert [d.check.reason for d in moved] == ["Drifted"] and gauge() == 1
            await reporter.check_environment(env)  # still drifted: no second Event
            assert [(r, t) for r, t, _ in emitted] == [("ImageDrifted", "Warning")]
            assert pinned in emitted[0][2] and "keeps deploying the pinned digest" in emitted[0][2]
            # never followed: the pin still verifies, with the same credentials
            assert (await verify_release_images(reg, [image])).reason == "RegistryAuthFailed"
            env_spec = EnvironmentSpec.model_validate((view.environment(env) or {})["spec"])
            lookup = vault_credentials(vault, env_spec.registry_credentials, [registry_basic.host])
            assert (await verify_release_images(reg, [image], lookup)).ok

            push_image(registry_basic.url, repo, "1.0", payload, auth)  # the same bytes again
            back = await reporter.check_environment(env)
            assert [d.check.reason for d in back] == ["InSync"] and gauge() == 0
            assert [r for r, _, _ in emitted] == ["ImageDrifted", "ImageInSync"]

    try:
        asyncio.run(go())
    finally:
        vault.close()
