"""Docker image references, checked against the grammar of
distribution/reference before anything runs.

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]         (host: DNS name, or [IPv6])
    path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex          (sha256: exactly 64 hex digits)

The first component is the registry (domain) only when it contains "." or
":", is "localhost", or has an upper-case letter -- the rule the Docker
engine uses, so ``myapp`` and ``team/myapp`` are Docker Hub names and
``127.0.0.1:5000/myapp`` is a local registry.  Names are not normalised
(no ``docker.io/library/`` is added): a reference prints back as written.

Errors are UsageError naming the part that is wrong and saying what is valid.
"""

from __future__ import annotations

import re

from jenkinsctl.errors import UsageError
from jenkinsctl.record import Record

NAME_MAX = 255
TAG_MAX = 128

# Pattern strings: re compiles each on its first use and caches it, so a
# command that parses no reference pays nothing for them at import.
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*\Z"
_ALNUM_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX_COLON = frozenset("abcdefABCDEF0123456789:")
_TAG = r"(?a)[\w][\w.-]{0,127}\Z"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}\Z"

TAG_RULE = ("a tag is 1 to 128 characters: letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'")
PATH_RULE = ("each path component is lower-case letters and digits, optionally joined by "
             "'.', '_', '__' or dashes (e.g. team/my-app)")
DOMAIN_RULE = "the registry is a host name or IP address with an optional :PORT (e.g. 127.0.0.1:5000)"
DIGEST_RULE = "a digest is ALGORITHM:HEX, e.g. sha256: followed by 64 hex digits"


class Reference(Record):
    """A parsed image reference.  ``domain`` is "" when the name has no
    registry part; ``tag`` and ``digest`` are None when absent."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """domain/path: what ``docker push`` takes and tags hang off."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _fail(ref: str, what: str, rule: str, **details) -> UsageError:
    return UsageError(f"invalid image reference '{ref}': {what}", hint=rule, reference=ref, **details)


def validate_tag(tag: str) -> str:
    """Return ``tag`` if the reference grammar allows it, else raise."""
    if not isinstance(tag, str) or not tag:
        raise UsageError("invalid tag '': a tag may not be empty", hint=TAG_RULE)
    if not re.match(_TAG, tag):
        if len(tag) > TAG_MAX:
            why = f"it is {len(tag)} characters long, the limit is {TAG_MAX}"
        elif tag[0] in ".-":
            why = f"it starts with '{tag[0]}'"
        else:
            bad = next(c for c in tag if not (c.isascii() and (c.isalnum() or c in "_.-")))
            why = f"it contains {bad!r}"
        raise UsageError(f"invalid tag '{tag}': {why}", hint=TAG_RULE, tag=tag)
    return tag


def _check_digest(ref: str, digest: str) -> None:
    if not re.match(_DIGEST, digest):
        raise _fail(ref, f"digest '{digest}' is not valid", DIGEST_RULE)
    algo, _, hexpart = digest.partition(":")
    if algo == "sha256" and len(hexpart) != 64:
        raise _fail(ref, f"digest '{digest}' has {len(hexpart)} hex digits, sha256 needs 64", DIGEST_RULE)
    if algo == "sha512" and len(hexpart) != 128:
        raise _fail(ref, f"digest '{digest}' has {len(hexpart)} hex digits, sha512 needs 128", DIGEST_RULE)


def _digits(text: str) -> bool:
    return bool(text) and all("0" <= c <= "9" for c in text)


def valid_domain(domain: str) -> bool:
    """Whether ``domain`` is host[:port]: DNS labels of ASCII letters,
    digits and inner '-' joined by '.', or [IPv6 hex and ':']; the port is
    ASCII digits.  distribution's domain grammar, checked without a regular
    expression (compiling that one cost every build and push a millisecond
    or two)."""
    if domain.startswith("["):
        end = domain.find("]")
        inner, rest = domain[1:end], domain[end + 1:]
        if end < 0 or not inner or not set(inner) <= _HEX_COLON:
            return False
        return not rest or (rest[0] == ":" and _digits(rest[1:]))
    host, colon, port = domain.partition(":")
    if colon and not _digits(port):
        return False
    return all(label and label[0] in _ALNUM_ASCII and label[-1] in _ALNUM_ASCII
               and all(c in _ALNUM_ASCII or c == "-" for c in label) for label in host.split("."))


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        return first, rest
    return "", name


def parse(ref: str) -> Reference:
    """Parse and fully validate an image reference."""
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError("invalid image reference '': the reference is empty",
                         hint="give a name such as 127.0.0.1:5000/team/app")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise _fail(ref, "it contains white space", PATH_RULE)
    rest, digest = ref, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        _check_digest(ref, digest)
    name, tag = rest, None
    # A ':' after the last '/' starts the tag; one before it is a port.
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1:]
        if not tag:
            raise _fail(ref, "the tag after ':' is empty", TAG_RULE)
        if not re.match(_TAG, tag):
            try:
                validate_tag(tag)
            except UsageError as exc:
                raise _fail(ref, exc.message.removeprefix("invalid "), TAG_RULE) from None
    if not name:
        raise _fail(ref, "the name is empty", PATH_RULE)
    if len(name) > NAME_MAX:
        raise _fail(ref, f"the name is {len(name)} characters long, the limit is {NAME_MAX}", PATH_RULE)
    domain, path = _split_domain(name)
    if domain and not valid_domain(domain):
        raise _fail(ref, f"registry '{domain}' is not a valid host[:port]", DOMAIN_RULE)
    if not path:
        raise _fail(ref, "the repository path after the registry is empty", PATH_RULE)
    for component in path.split("/"):
        if not component:
            raise _fail(ref, "it has an empty path component ('//' or a trailing '/')", PATH_RULE)
        if not re.match(_PATH_COMPONENT, component):
            why = "has upper-case letters" if component.lower() != component else "is not valid"
            raise _fail(ref, f"path component '{component}' {why}", PATH_RULE)
    return Reference(domain, path, tag, digest)


def parse_repository(ref: str, *, flag: str = "--image") -> Reference:
    """A repository name with neither tag nor digest (what --image takes)."""
    r = parse(ref)
    if r.tag or r.digest:
        part = f":{r.tag}" if r.tag else f"@{r.digest}"
        raise UsageError(f"{flag} '{ref}': give the repository without '{part}'",
                         hint=f"use {flag} {r.repository} and --tag TAG for tags", reference=ref)
    return r
