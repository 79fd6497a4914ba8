"""The Docker reference grammar (distribution/reference), checked before anything runs."""

from __future__ import annotations

import pytest

from jenkinsctl.errors import UsageError
from jenkinsctl.refs import parse, parse_repository, validate_tag

D = "sha256:" + "0123456789abcdef" * 4

VALID = [
    # ref, domain, path, tag, digest
    ("app", "", "app", None, None),
    ("team/app", "", "team/app", None, None),
    ("app:1.0", "", "app", "1.0", None),
    ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000", "team/app", "v1", None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", None, None),
    ("registry.example.com/app", "registry.example.com", "app", None, None),
    ("Registry.Example.com:443/app", "Registry.Example.com:443", "app", None, None),
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
    ("team/my-app__x.y/z--w", "", "team/my-app__x.y/z--w", None, None),
    ("my.app/x", "my.app", "x", None, None),  # a "." makes the first part a registry
    (f"app@{D}", "", "app", None, D),
    (f"reg:5000/app:t@{D}", "reg:5000", "app", "t", D),
    ("app:" + "a" * 128, "", "app", "a" * 128, None),
    ("app:_x", "", "app", "_x", None),
]


@pytest.mark.parametrize("ref,domain,path,tag,digest", VALID)
def test_valid_references_parse_and_print_back(ref, domain, path, tag, digest):
    r = parse(ref)
    assert (r.domain, r.path, r.tag, r.digest) == (domain, path, tag, digest)
    assert str(r) == ref
    assert r.repository == (f"{domain}/{path}" if domain else path)


INVALID = [
    # ref, words the message must contain
    ("", "empty"),
    ("App", "upper-case"),
    ("team/App", "'App' has upper-case"),
    ("app:", "tag after ':' is empty"),
    ("app:-x", "starts with '-'"),
    ("app:.x", "starts with '.'"),
    ("app:" + "a" * 129, "129 characters"),
    ("app:a+b", "contains '+'"),
    ("app/", "empty path component"),
    ("a//b", "empty path component"),
    ("reg:5000/", "path after the registry is empty"),
    ("-app", "'-app' is not valid"),
    ("app-", "'app-' is not valid"),
    ("a...b", "'a...b' is not valid"),
    ("my app", "white space"),
    ("app@sha256:abc", "digest 'sha256:abc' is not valid"),
    ("app@sha256:" + "a" * 40, "needs 64"),
    ("reg_x:5000/app", "registry 'reg_x:5000'"),
    ("a" * 256, "limit is 255"),
]


@pytest.mark.parametrize("ref,words", INVALID)
def test_invalid_references_name_the_bad_part(ref, words):
    with pytest.raises(UsageError) as e:
        parse(ref)
    assert words in e.value.message
    assert e.value.hint  # says what is valid
    assert e.value.exit_code == 2


def test_docker_hub_style_first_component_is_not_a_registry():
    # Docker's rule: a registry needs '.', ':' or to be 'localhost'.
    assert parse("team/app").domain == ""
    assert parse("localhost/app").domain == "localhost"


def test_parse_repository_rejects_tag_and_digest_with_a_hint():
    assert parse_repository("127.0.0.1:5000/app").repository == "127.0.0.1:5000/app"
    with pytest.raises(UsageError) as e:
        parse_repository("127.0.0.1:5000/app:v1")
    assert "without ':v1'" in e.value.message and "--tag" in e.value.hint
    with pytest.raises(UsageError):
        parse_repository(f"app@{D}")


@pytest.mark.parametrize("tag", ["v1", "1.2.3", "latest", "3f2a9c1b7d4e-b42", "a" * 128, "_", "A-Z_9"])
def test_valid_tags(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a/b", "a:b", "é", "a" * 129, "sp ace"])
def test_invalid_tags(tag):
    with pytest.raises(UsageError) as e:
        validate_tag(tag)
    assert "invalid tag" in e.value.message
    assert "128" in e.value.hint


def test_domain_check_is_the_grammar():
    """valid_domain against distribution's domain grammar as a regular
    expression, on every short string over the characters that matter."""
    import itertools
    import re

    from jenkinsctl.refs import valid_domain

    comp = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    grammar = rf"(?:{comp}(?:\.{comp})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?\Z"
    alphabet = "aZ0-.:[]g_\n\u0661"
    for n in range(6):
        for chars in itertools.product(alphabet, repeat=n):
            s = "".join(chars)
            assert valid_domain(s) == bool(re.match(grammar, s)), repr(s)
    for s in ("127.0.0.1:5000", "[::1]:5000", "[fe80::1]", "localhost", "my-reg.example.com:443", "a-.b", "-a",
              "a..b", "host:", "host:5000:1", "[::1]x", "[]", "[::1", "reg.example:٥٠٠٠"):
        assert valid_domain(s) == bool(re.match(grammar, s)), s
