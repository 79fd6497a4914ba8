"""Registry credentials scoped to their registry, push with bounded retries, and push error classes.

The engine's push stream is parsed (docker-py never raises on a failed
push: the error is an entry in the stream), transient registry errors are
retried with a bounded backoff, permanent ones fail at once, and the pushed
digest is reported.  Registry credentials reach the engine only in the
X-Registry-Auth header of the push request: never in argv, build args,
labels, a config file on disk, or an error message.
"""

from __future__ import annotations

import os
import re
import time

from jenkinsctl.engine import engine_api, engine_errors, translate, transport_errors
from jenkinsctl.errors import EngineNotFound, RegistryError, UsageError
from jenkinsctl.record import Record, asdict, replace
from jenkinsctl.refs import Reference, parse_repository, validate_tag
from jenkinsctl.secrets import check_secret, read_secret_file, redact, sensitive, sensitive_basic

TYPE_CHECKING = False  # typing's import is a cost of every push
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Sequence

    LineSink = Callable[[str], None]

# Waits between push attempts: crane-like (1 s, 3 s, ...), capped, so the
# default 4 attempts wait at most 1 + 3 + 6 = 10 s in all.
PUSH_BACKOFF = (1.0, 3.0, 6.0, 10.0)


def _discard(line: str) -> None:
    pass


# --- registry credentials ---------------------------------------------------------------


DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("", "docker.io", "index.docker.io", "registry-1.docker.io")


def registry_host(domain: str | None) -> str:
    """The registry a reference's domain names, for comparing: lower case,
    and Docker Hub's aliases (a name with no registry part among them) as
    docker.io."""
    d = (domain or "").strip().lower().rstrip("/")
    return DOCKER_HUB if d in _HUB_ALIASES else d


def _login_pair(username, password, what: str, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    user = username if isinstance(username, str) or username is None else username.resolve(environ)
    pw = password.resolve(environ) if password is not None else None
    return user, pw


def registry_auth(config, environ: Mapping[str, str] | None = None, *,
                  registry: str | None = None, bound_for: str | None = None) -> dict[str, str] | None:
    """Credentials for the engine's push to ``registry``, as a docker-py auth_config.

    Credentials belong to one registry and go to no other: the main ones
    (JENKINSCTL_REGISTRY_USERNAME, and JENKINSCTL_REGISTRY_PASSWORD or the
    file named by JENKINSCTL_REGISTRY_PASSWORD_FILE, which win over
    registry.username / registry.password) only to ``registry.url``; each
    ``registry.others`` entry's only to its own ``url``.  ``registry`` is
    the image's registry (``Reference.domain``; "" is Docker Hub); None
    means ``registry.url`` itself.  None is returned for a registry without
    configured credentials: the engine then uses what the user's docker
    config holds, if anything.  Never read from argv.

    ``bound_for``: in a pipeline step, the credentials Jenkins bound for the
    step (its ``credentialsId``) belong to the registry of the image the same
    step names, so the JENKINSCTL_REGISTRY_* variables count for that
    registry instead of registry.url.
    """
    environ = os.environ if environ is None else environ
    reg = getattr(config, "registry", None)
    main_url = reg.url if reg is not None else None
    if bound_for is not None and (environ.get("JENKINSCTL_REGISTRY_PASSWORD")
                                  or environ.get("JENKINSCTL_REGISTRY_PASSWORD_FILE")):
        main_url = bound_for or DOCKER_HUB
        reg = replace(reg, url=main_url, username=None, password=None) if reg is not None else None
    if registry is not None and registry_host(registry) != registry_host(main_url):
        for other in getattr(reg, "others", ()) or ():
            if registry_host(other.url) == registry_host(registry):
                username, password = _login_pair(other.username, other.password, other.url, environ)
                if not username or password is None:
                    raise RegistryError(f"the credentials for registry {other.url} (registry.others) are not "
                                        "all set", hint="set the variable or file its username/password name")
                return _auth(username, password, other.url)
        return None
    username = environ.get("JENKINSCTL_REGISTRY_USERNAME") or None
    if username is None and reg is not None and reg.username is not None:
        username = reg.username if isinstance(reg.username, str) else reg.username.resolve(environ)
    password = sensitive(environ.get("JENKINSCTL_REGISTRY_PASSWORD") or None, "JENKINSCTL_REGISTRY_PASSWORD")
    source = "JENKINSCTL_REGISTRY_PASSWORD"
    if password is None and environ.get("JENKINSCTL_REGISTRY_PASSWORD_FILE"):
        path = environ["JENKINSCTL_REGISTRY_PASSWORD_FILE"]
        source = f"JENKINSCTL_REGISTRY_PASSWORD_FILE ({path})"
        password = read_secret_file(
            path, f"the registry password file {path}", error=RegistryError,
            hint="check JENKINSCTL_REGISTRY_PASSWORD_FILE and the file's permissions") or None
    if password is None and reg is not None and reg.password is not None:
        password = reg.password.resolve(environ)
        source = f"registry.password {reg.password.describe()}"
    if username is None and password is None:
        return None
    if username is None:
        raise RegistryError(f"a registry password is set ({source}) but no user name",
                            hint="set JENKINSCTL_REGISTRY_USERNAME or registry.username")
    if password is None:
        raise RegistryError(f"registry user '{username}' has no password",
                            hint="set JENKINSCTL_REGISTRY_PASSWORD or JENKINSCTL_REGISTRY_PASSWORD_FILE, "
                                 "or registry.password: {env: NAME} / {file: PATH}")
    return _auth(username, password, main_url)


def _auth(username: str, password: str, server: str | None) -> dict[str, str]:
    # The password was checked and registered where it was read (sensitive,
    # read_secret_file, SecretRef.resolve); its encodings with the user are not yet.
    check_secret(username, "the registry user name")
    sensitive_basic(username, password)
    auth = {"username": username, "password": password}
    if server:
        auth["serveraddress"] = server
    return auth


def image_auth(config, environ: Mapping[str, str] | None, repository: Reference, *,
               step: bool = False) -> dict[str, str] | None:
    """The credentials to send with a push or pull of ``repository``: those
    configured for its registry, else none (Docker Hub included).  With
    ``step`` (parameters from a pipeline step), the credentials the step
    bound are for ``repository``'s registry (see registry_auth)."""
    return registry_auth(config, environ, registry=repository.domain,
                         bound_for=repository.domain if step else None)


def engine_login(client, auth: Mapping[str, str], registry: str) -> None:
    """Have the engine log in to ``registry`` with ``auth``: it performs the
    login (token challenges included) and keeps nothing on disk, unlike
    ``docker login``.  A refusal is an EngineError with the registry's text
    in ``.explanation``."""
    with engine_errors(f"login to {registry} as {auth['username']} failed"):
        client.login(username=auth["username"], password=auth["password"], registry=registry, reauth=True)


def check_no_secrets(auth: Mapping[str, str] | None, **fields: Mapping[str, str | None]) -> None:
    """Refuse build args / labels that carry the registry password: both
    are stored in the image, readable by anyone who can pull it."""
    password = (auth or {}).get("password")
    if not password:
        return
    for what, values in fields.items():
        for k, v in values.items():
            if v and password in v:
                raise UsageError(f"{what} '{k}' contains the registry password; refusing to build",
                                 hint=f"{what}s are stored in the image for anyone who can pull it; "
                                      "use a BuildKit secret mount for credentials")


# --- push ----------------------------------------------------------------------------------


class PushResult(Record):
    """What a push did: the digest, the tags in the order pushed, and the layers moved."""

    digest: str              # manifest digest of the first (immutable) tag
    repository: str
    tags: list[str]          # in the order pushed: immutable first, then moving
    layers_pushed: int       # layers whose bytes were uploaded
    layers_existing: int     # layers the registry had already (or mounted)
    attempts: int            # push requests in all: one per tag when nothing was retried
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Pattern strings, compiled on first use (a failed push): no import pays for them.
_PERMANENT = (
    r"(?i)unauthori[sz]ed|authentication required|\bdenied\b|forbidden|\b40[13]\b|name invalid|name unknown|"
    r"manifest invalid|manifest unknown|tag invalid|digest invalid|size invalid|unsupported|"
    r"does not exist locally|no such image|invalid reference|no basic auth credentials|x509|certificate|"
    r"server gave http response to https client|no such host|repository name must")
_TRANSIENT = (
    r"(?i)\b5\d\d\b|service unavailable|bad gateway|gateway time-?out|internal server error|connection reset|"
    r"broken pipe|\beof\b|timeout|timed out|connection refused|toomanyrequests|too many requests|\b429\b|"
    r"temporar|i/o timeout|connection closed|net/http")


def classify_push_error(message: str) -> str:
    """"permanent" or "transient".  Permanent wins: a 401 is never
    retried even when the text also mentions a 5xx.  Unknown errors are
    permanent, so a misconfiguration fails fast rather than slowly."""
    if re.search(_PERMANENT, message):
        return "permanent"
    if re.search(_TRANSIENT, message):
        return "transient"
    return "permanent"


class PushStream:
    """Parses one decoded push stream: layer states, digest and error."""

    _DIGEST = r"digest: (sha256:[0-9a-f]{64})"

    def __init__(self) -> None:
        self.layer_state: dict[str, str] = {}
        self.digest: str | None = None
        self.error: str | None = None
        self.engine_retries = 0

    def feed(self, entry: Mapping[str, Any]) -> list[str]:
        shown: list[str] = []
        if "errorDetail" in entry or "error" in entry:
            detail = entry.get("errorDetail") or {}
            self.error = str(detail.get("message") or entry.get("error") or "unknown push error")
            return shown
        aux = entry.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
        status = str(entry.get("status") or "")
        ident = str(entry.get("id") or "")
        if not status:
            return shown
        if not self.digest:
            m = re.search(self._DIGEST, status)
            if m:
                self.digest = m.group(1)
        if ident and status not in ("Pushing",):
            previous = self.layer_state.get(ident, "")
            if previous != status:
                self.layer_state[ident] = status
                if status.startswith("Retrying in"):
                    # The engine's own upload retry counts down once a second;
                    # one line per retry is enough.
                    if not previous.startswith("Retrying in"):
                        self.engine_retries += 1
                        shown.append(f"{ident}: upload failed, the engine is retrying ({status.lower()})")
                elif status not in ("Preparing", "Waiting"):
                    shown.append(f"{ident}: {status}")
        elif not ident:
            shown.append(status)
        return shown

    def pushed(self) -> set[str]:
        return {i for i, s in self.layer_state.items() if s == "Pushed"}

    def existing(self) -> set[str]:
        return {i for i, s in self.layer_state.items()
                if s == "Layer already exists" or s.startswith("Mounted from")}


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    return PUSH_BACKOFF[min(attempt, len(PUSH_BACKOFF)) - 1]


def push(client, *, repository: str, tags: Sequence[str], auth: Mapping[str, str] | None,
         attempts: int = 4, log: LineSink = _discard, sleep: Callable[[float], None] = time.sleep,
         moving_tags: Sequence[str] = (), image_id: str | None = None) -> PushResult:
    """Push ``repository:tag`` for each tag, in order, then the moving tags.

    ``tags`` must exist locally; the first is the immutable tag and must
    succeed before anything else is pushed.  ``moving_tags`` are pointed at
    the first tag's image (``image_id`` when given) locally and pushed only
    after every tag in ``tags`` was.  Transient failures (5xx, reset, EOF,
    timeouts) are retried up to ``attempts`` times per tag, waiting
    ``backoff(n)``; permanent ones (401, 403, denied, name/manifest invalid)
    raise RegistryError at once with the registry's message.  The password
    never appears in a message.

    The engine pushes a *tag*, whatever it names when the push starts.
    With ``image_id`` (what ``ship`` just built) every tag must still name
    that image right before its push, and each pushed digest must belong to
    it afterwards; otherwise another build on this host re-tagged it in
    between and RegistryError is raised before anything further (moving
    tags, a deploy) uses the wrong image.
    """
    repo = parse_repository(repository)
    for t in [*tags, *moving_tags]:
        validate_tag(t)
    return push_image(client, repo, tags, auth=auth, attempts=attempts, log=log, sleep=sleep,
                      moving_tags=moving_tags, image_id=image_id)


def push_image(client, repo: Reference, tags: Sequence[str], *, auth: Mapping[str, str] | None,
               attempts: int = 4, log: LineSink = _discard, sleep: Callable[[float], None] = time.sleep,
               moving_tags: Sequence[str] = (), image_id: str | None = None) -> PushResult:
    """``push`` of a parsed repository and checked tags (see ``push``)."""
    if not tags:
        raise UsageError("no tags to push", hint="give at least one --tag")
    if attempts < 1:
        raise UsageError(f"push attempts must be at least 1, not {attempts}")
    ordered = list(dict.fromkeys(tags))
    moving = [t for t in dict.fromkeys(moving_tags) if t not in ordered]
    secret = (auth or {}).get("password")
    api = engine_api(client, auth)
    first_id = _local_image_id(api, repo, ordered[0])
    for t in ordered[1:]:
        _local_image_id(api, repo, t)
    source = image_id or first_id
    started = time.monotonic()
    digest: str | None = None
    pushed: set[str] = set()
    existing: set[str] = set()
    pushed_tags: set[str] = set()
    total_attempts = 0
    for i, tag in enumerate(ordered + moving):
        if tag in moving:
            api.tag(source, repo.repository, tag)
        elif image_id is not None:
            now_id = _local_image_id(api, repo, tag)
            if now_id != image_id:
                raise _retagged(repo, tag, image_id, f"now names {now_id[:19]}", pushed=sorted(pushed_tags))
        d, stream, n = _push_one(api, repo, tag, auth, attempts, log, sleep, secret)
        if image_id is not None:
            got = _pushed_image_id(api, repo, tag, d)
            if got != image_id:
                raise _retagged(repo, tag, image_id, f"was pushed as {d} ({got[:19]})",
                                pushed=sorted(pushed_tags | {tag}))
        pushed_tags.add(tag)
        total_attempts += n
        pushed |= stream.pushed()
        existing |= stream.existing()
        if i == 0:
            digest = d
        elif d != digest and tag in moving:
            raise RegistryError(f"moving tag {repo.repository}:{tag} was pushed as {d}, not {digest}",
                                hint="another push changed the image under this tag; push again")
    existing -= pushed
    assert digest is not None
    return PushResult(digest=digest, repository=repo.repository, tags=ordered + moving,
                      layers_pushed=len(pushed), layers_existing=len(existing), attempts=total_attempts,
                      seconds=round(time.monotonic() - started, 3))


def _local_image_id(api, repo: Reference, tag: str) -> str:
    ref = f"{repo.repository}:{tag}"
    try:
        with engine_errors(f"cannot inspect {ref}"):
            return api.inspect_image(ref)["Id"]
    except EngineNotFound:
        raise RegistryError(f"no local image {ref} to push",
                            hint=f"build it first (jenkinsctl build --image {repo.repository} --tag {tag})") from None


def _pushed_image_id(api, repo: Reference, tag: str, digest: str) -> str:
    """The local image that ``repository@digest`` names (the engine records
    it on the image it pushed); without that record, what the tag names
    now (then only a re-tag and back during the push would go unseen)."""
    try:
        with engine_errors(f"cannot inspect {repo.repository}@{digest}"):
            return api.inspect_image(f"{repo.repository}@{digest}")["Id"]
    except EngineNotFound:
        pass
    return _local_image_id(api, repo, tag)


def _retagged(repo: Reference, tag: str, image_id: str, what: str, *, pushed: list[str]) -> RegistryError:
    done = (f"; the registry's {', '.join(pushed)} now names the other image, nothing else was pushed" if pushed
            else "; nothing was pushed")
    return RegistryError(f"{repo.repository}:{tag} {what}, not the image this run built ({image_id[:19]}): "
                         f"another build on this host re-tagged it in between{done}",
                         hint="concurrent builds of one repository need distinct tags (the default tag differs "
                              "per branch or job and build number); run again",
                         reference=f"{repo.repository}:{tag}", retryable=False)


def _push_one(api, repo: Reference, tag: str, auth, attempts: int, log: LineSink, sleep, secret):
    conn_errors = transport_errors(api)
    ref = f"{repo.repository}:{tag}"
    stream = PushStream()
    for attempt in range(1, attempts + 1):
        attempt_stream = PushStream()
        error: str | None = None
        try:
            for entry in api.push(repo.repository, tag=tag, stream=True, decode=True, auth_config=auth):
                for line in attempt_stream.feed(entry):
                    log(redact(line, secret))
            error = attempt_stream.error
            if error is None and attempt_stream.digest is None:
                error = "the engine ended the push without a digest (EOF)"
        except conn_errors as exc:
            error = f"connection to the engine broke during the push (EOF): {exc}"
        except Exception as exc:
            # An engine answer (any status) is the push's error, classified
            # below; anything else (the engine unreachable) is raised as is.
            err = translate(exc, f"push of {ref}")
            if err is None or err is exc or getattr(err, "status_code", None) is None:
                raise
            error = str(getattr(err, "explanation", None) or exc)
        # Layer states accumulate across attempts: a layer pushed in attempt 1
        # is "already exists" in attempt 2 and still counts as pushed.
        for ident, state in attempt_stream.layer_state.items():
            if stream.layer_state.get(ident) != "Pushed":
                stream.layer_state[ident] = state
        if error is None:  # the engine's stream already printed "TAG: digest: ..."
            return attempt_stream.digest, stream, attempt
        error = redact(error, secret)
        kind = classify_push_error(error)
        if kind == "permanent":
            raise RegistryError(f"push of {ref} failed: {error}", hint=_permanent_hint(error, repo, auth is not None),
                                reference=ref, attempts=attempt, retryable=False)
        if attempt == attempts:
            raise RegistryError(f"push of {ref} failed after {attempt} attempts: {error}",
                                hint="the registry kept failing with transient errors; check its health and "
                                     "retry later (build.push_attempts sets the attempts)",
                                reference=ref, attempts=attempt, retryable=True)
        wait = backoff(attempt)
        log(f"{ref}: transient error (attempt {attempt}/{attempts}): {error}; retrying in {wait:g}s")
        sleep(wait)
    raise AssertionError("unreachable")


def _permanent_hint(error: str, repo: Reference, sent_auth: bool = True) -> str:
    low = error.lower()
    auth_failed = any(w in low for w in ("unauthorized", "authentication required", "401", "no basic auth"))
    if auth_failed and not sent_auth:
        where = repo.domain or "Docker Hub"
        return (f"jenkinsctl sent no credentials to {where}: credentials go only to the registry they are "
                f"configured for (registry.url, or an entry of registry.others); add {where} under "
                "registry.others with its own username and password, or push to registry.url")
    if auth_failed:
        return ("the registry rejected the credentials: check JENKINSCTL_REGISTRY_USERNAME and "
                "JENKINSCTL_REGISTRY_PASSWORD(_FILE), or registry.username/password in the config")
    if any(w in low for w in ("denied", "forbidden", "403")):
        return f"the user may not push to {repo.repository}; check its permissions on the registry"
    if "does not exist locally" in low or "no such image" in low:
        return "build the image first"
    if "https client" in low:
        return f"the engine expects TLS from {repo.domain}; add it to the engine's insecure-registries or use TLS"
    return "this error is not transient, so it was not retried"
