"""Case 11: registry faults during `jenkinsctl push`.

The CLI pushes a small single-layer image (1 MiB of random bytes, so the
blob upload is big enough to be cut mid-way) through the fault-injecting
proxy (tests/support/faultproxy.py) in front of a real htpasswd registry.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid

import pytest

from tests.support.engine import TEST_LABELS
from tests.support.faultproxy import FaultProxy
from tests.support.fixtures import registry  # noqa: F401
from tests.support.registry import free_port

BLOB = 1024 * 1024


def tiny_image(docker_engine, repository: str, tag: str) -> str:
    """A one-layer image with BLOB random bytes, labelled for cleanup."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = os.urandom(BLOB)
        info = tarfile.TarInfo("payload.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    labels = " ".join(f"{k}={v}" for k, v in TEST_LABELS.items())
    docker_engine.api.import_image_from_data(buf.getvalue(), repository=repository, tag=tag,
                                             changes=[f"LABEL {labels}", 'CMD ["/payload.bin"]'])
    return f"{repository}:{tag}"


@pytest.fixture
def proxy(registry):  # noqa: F811
    p = FaultProxy(("127.0.0.1", registry.port))
    yield p
    p.close()


@pytest.fixture
def pushed_refs(docker_engine):
    refs: list[str] = []
    yield refs
    # by repository, all tags: push also sets the moving tag (latest on main) locally
    for ref in refs:
        for img in docker_engine.images.list(name=ref.rsplit(":", 1)[0], all=True):
            try:
                docker_engine.images.remove(img.id, force=True)
            except Exception:  # noqa: BLE001
                pass


def push(cli, tmp_path, registry_url: str, repo: str, tag: str, env: dict, attempts: int = 4):  # noqa: F811
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"project: robust-push\nstate_dir: {tmp_path}/state\nregistry: {{url: \"{registry_url}\"}}\n"
                   f"build: {{push_attempts: {attempts}}}\n")
    return cli("-c", str(cfg), "push", "--image", repo, "--tag", tag, env=env, timeout=180)


def upload_attempts(proxy: FaultProxy) -> int:
    return sum(1 for r in proxy.requests if r.method == "POST" and r.path.rstrip("/").endswith("/blobs/uploads"))


@pytest.mark.case(11)
def test_503_twice_and_a_reset_mid_blob_then_the_push_succeeds(docker_engine, registry, proxy, pushed_refs,  # noqa: F811
                                                               cli, tmp_path, figure):
    repo = f"{proxy.url}/robust/faults-{uuid.uuid4().hex[:6]}"
    pushed_refs.append(tiny_image(docker_engine, repo, "v1"))
    proxy.fail(503, times=2, method="PUT", path=r"/manifests/")
    proxy.reset(times=1, after=256 * 1024, method="PATCH", path=r"/blobs/uploads/")
    run = push(cli, tmp_path, proxy.url, repo, "v1", registry.env)
    assert run.rc == 0, run.output[-3000:]
    faults = [r for r in proxy.requests if r.fault]
    assert sum(1 for r in faults if r.status == 503) == 2, faults
    assert sum(1 for r in faults if r.status is None) == 1, faults
    digest = registry.manifest_digest(repo.split("/", 1)[1], "v1")
    assert digest and digest in run.stdout, (digest, run.stdout)
    assert registry.password not in run.output
    figure(seconds=round(run.seconds, 1), faults_injected=len(faults),
           manifest_puts=sum(1 for r in proxy.requests if r.method == "PUT" and "/manifests/" in r.path))


@pytest.mark.case(11)
@pytest.mark.parametrize("fault", ["wrong-password", "401-on-manifest", "denied-on-manifest"])
def test_denied_or_unauthorized_fails_at_once(fault, docker_engine, registry, proxy, pushed_refs, cli,  # noqa: F811
                                              tmp_path, figure):
    """Permanent errors are not retried.  (A 401/403 injected on the *blob
    upload* is retried by dockerd itself, 5 attempts 5 s apart, before
    jenkinsctl sees anything: ~50 s, engine behaviour; see the report.)"""
    repo = f"{proxy.url}/robust/denied-{uuid.uuid4().hex[:6]}"
    pushed_refs.append(tiny_image(docker_engine, repo, "v1"))
    env = dict(registry.env)
    wrong = "wrong-" + uuid.uuid4().hex
    if fault == "wrong-password":
        env["JENKINSCTL_REGISTRY_PASSWORD"] = wrong
    else:
        proxy.fail(401 if fault.startswith("401") else 403, times=None, method="PUT", path=r"/manifests/")
    run = push(cli, tmp_path, proxy.url, repo, "v1", env)
    assert run.rc == 5, run.output[-3000:]
    assert run.seconds < 10, f"a permanent error waited {run.seconds:.1f}s"
    err = run.stderr[run.stderr.find("error:"):]
    assert any(w in err.lower() for w in ("denied", "unauthorized", "authentication", "credentials")), err
    assert registry.password not in run.output and wrong not in run.output
    manifest_puts = [r for r in proxy.requests if r.method == "PUT" and "/manifests/" in r.path]
    assert len(manifest_puts) <= 1, [(r.method, r.path, r.status) for r in proxy.requests]
    figure(fault=fault, seconds=round(run.seconds, 2), manifest_puts=len(manifest_puts),
           requests=len(proxy.requests))


@pytest.mark.case(11)
def test_registry_down_for_the_whole_run_fails_within_the_limit(docker_engine, registry, pushed_refs, cli,  # noqa: F811
                                                                tmp_path, figure):
    port = free_port()  # nothing listens there
    repo = f"127.0.0.1:{port}/robust/down-{uuid.uuid4().hex[:6]}"
    pushed_refs.append(tiny_image(docker_engine, repo, "v1"))
    attempts = 4
    start = time.monotonic()
    run = push(cli, tmp_path, f"127.0.0.1:{port}", repo, "v1", registry.env, attempts=attempts)
    took = time.monotonic() - start
    assert run.rc == 5, run.output[-3000:]
    # 4 attempts with 1 + 3 + 6 s between them: ~10 s of backoff, bounded
    assert took < 60, took
    err = run.stderr[run.stderr.find("error:"):]
    assert f"127.0.0.1:{port}" in err and ("refused" in err or "attempt" in err), err
    assert registry.password not in run.output
    figure(attempts=attempts, failed_after_s=round(took, 1))
