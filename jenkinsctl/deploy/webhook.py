"""The ``webhook`` strategy: POST {image, digest, tags} to a redeploy trigger
(a Portainer or container-cluster webhook, an internal deploy service).

* The secret is sent as ``Authorization: Bearer ...``.  It comes from the
  target's ``secret`` reference, else JENKINSCTL_WEBHOOK_SECRET, else the
  file named by JENKINSCTL_WEBHOOK_SECRET_FILE; never from a flag.  Over
  plain http:// it is readable on the wire, so that is warned about.
* The secret, the URL's user info, query values and token-like path
  segments (Portainer's ``/api/webhooks/<token>``) are registered as
  secrets: no message, result or log line shows them.
* A POST that may have reached the receiver is not sent again: a deploy
  trigger is not idempotent in general, and a second one could deploy
  twice.  Connection failures before the request left (refused, no route,
  DNS) are retried, up to the target's ``retries`` attempts, waiting 1 s,
  2 s, 4 s...; 5xx answers and failures after sending are retried only
  when the target says ``idempotent: true``.  A 4xx fails at once
  (retrying cannot fix a bad token or payload).
* Each attempt has a timeout (at most 30 s), and the target's ``timeout``
  bounds the whole trigger, retries and the waits between them included:
  an attempt gets only what is left of it, and no retry starts once the
  wait before it would reach the deadline.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import ssl
import time
import urllib.parse
from typing import Callable, Mapping

from jenkinsctl.deploy import DeployOutcome, ImageRef, deploy_deadline, out_of_time
from jenkinsctl.errors import ConfigError, DeployError
from jenkinsctl.poll import MIN_INTERVAL
from jenkinsctl.secrets import display_url, read_secret_file, redact, sensitive, sensitive_basic, sensitive_url

log = logging.getLogger("jenkinsctl.deploy")

SECRET_ENV = "JENKINSCTL_WEBHOOK_SECRET"
SECRET_FILE_ENV = "JENKINSCTL_WEBHOOK_SECRET_FILE"
MAX_ATTEMPT_TIMEOUT = 30.0


def webhook_secret(target, environ: Mapping[str, str]) -> str | None:
    if target.secret is not None:
        value = target.secret.resolve(environ)
        if value is None:
            raise ConfigError(f"the webhook target's secret {target.secret.describe()} is not set",
                              hint="set the variable or file it names (in Jenkins: bind the credential)")
        return value
    if environ.get(SECRET_ENV):
        return sensitive(environ[SECRET_ENV], SECRET_ENV)
    path = environ.get(SECRET_FILE_ENV)
    if path:
        return read_secret_file(path, f"{SECRET_FILE_ENV} ({path})") or None
    return None


class WebhookStrategy:
    name = "webhook"

    def __init__(self, target, *, environ: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 backoff: float = 1.0) -> None:
        self.target = target
        self.url: str = sensitive_url(target.target) or target.target
        self.idempotent = bool(getattr(target, "idempotent", False))
        self.environ = os.environ if environ is None else environ
        self.sleep = sleep
        self.clock = clock
        self.backoff = backoff

    def deploy(self, image: ImageRef) -> DeployOutcome:
        start = self.clock()
        deadline = deploy_deadline(self.target, self.clock)
        secret = webhook_secret(self.target, self.environ)
        payload = {"image": image.repository, "digest": image.digest, "tags": list(image.tags),
                   "reference": image.pinned}
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "jenkinsctl-webhook"}
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        attempts = max(1, int(self.target.retries))
        shown = display_url(self.url)
        if secret and urllib.parse.urlsplit(self.url).scheme == "http":
            log.warning("webhook %s: the Bearer token goes over plain http:// and can be read on the way; "
                        "use https://", shown)
        history: list[str] = []
        for attempt in range(1, attempts + 1):
            # An attempt gets what is left of the deploy (a socket timeout of
            # 0 would mean non-blocking, hence the floor).
            left = max(MIN_INTERVAL, min(deadline.remaining(), MAX_ATTEMPT_TIMEOUT))
            status, text, sent = self._post(body, headers, left)
            text = redact(text, secret)
            if status is not None and 200 <= status < 300:
                return DeployOutcome(self.name, shown, "triggered", image.pinned, image.digest, None,
                                     round(self.clock() - start, 3),
                                     {"status": status, "attempts": attempt, "response": text[:500]})
            history.append(f"attempt {attempt}: " + (f"HTTP {status}: {text[:300]}" if status else text))
            if status is not None and status < 500:
                raise DeployError(f"webhook {shown} refused the deploy: HTTP {status}: {text[:500]}",
                                  hint=_hint_4xx(status), status=status, attempts=attempt)
            if sent and not self.idempotent:
                what = f"answered HTTP {status}" if status else "failed after the request was sent"
                raise DeployError(f"webhook {shown} {what}: {text[:500]}; not sent again, since the receiver may "
                                  "have acted on it", hint="check whether the receiver deployed; set idempotent: "
                                  "true on the target if a repeated trigger is harmless, so it is retried",
                                  status=status, attempts=attempt)
            if attempt < attempts:
                wait = self.backoff * (2 ** (attempt - 1))
                if wait >= deadline.remaining():
                    raise out_of_time(
                        f"webhook {shown}", deadline,
                        f"attempt {attempt + 1} of {attempts} was still to be sent (after a {wait:g}s wait); "
                        "so far:\n  "
                        + "\n  ".join(history),
                        hint="the receiver is down or failing; check it and deploy again", attempts=attempt)
                log.info("webhook %s: %s; retrying in %gs", shown, history[-1], wait)
                self.sleep(wait)
        raise DeployError(f"webhook {shown} failed after {attempts} attempts:\n  " + "\n  ".join(history),
                          hint="the receiver is down or failing; check it and deploy again", attempts=attempts)

    def rollback(self, version: str | None = None) -> DeployOutcome:
        raise DeployError("a webhook target cannot roll back: the receiver owns the deployment history",
                          hint="deploy the previous digest again: jenkinsctl deploy --image REPO@sha256:... "
                               "--to webhook:URL")

    def _post(self, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int | None, str, bool]:
        """(status, body, sent) or (None, connection error, sent): ``sent``
        is False only when the connection failed before any byte of the
        request left.  http.client, not urllib: no redirects followed with
        the secret, no proxy surprises."""
        u = urllib.parse.urlsplit(self.url)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        if u.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                u.hostname or "", u.port or 443, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=timeout)
        hdrs = dict(headers)
        if u.username:
            user, password = urllib.parse.unquote(u.username), urllib.parse.unquote(u.password or "")
            sensitive_basic(user, password)  # receivers echo the header, not the password
            cred = f"{user}:{password}"
            hdrs.setdefault("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return None, f"{type(exc).__name__}: {exc}", False
        try:
            conn.request("POST", path, body=body, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read(4096).decode("utf-8", errors="replace").strip()
            return resp.status, text, True
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}", True
        finally:
            conn.close()


def _hint_4xx(status: int) -> str:
    if status in (401, 403):
        return (f"check the secret ({SECRET_ENV}, {SECRET_FILE_ENV} or the target's secret reference); "
                "4xx answers are not retried")
    if status == 404:
        return "check the webhook URL; 4xx answers are not retried"
    return "the receiver rejected the request; 4xx answers are not retried"
