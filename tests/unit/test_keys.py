"""KeyStore: generation, permissions, idempotence, rotation, and that key
material is never shown."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading

import pytest

from jenkinsctl.errors import ConfigError
from jenkinsctl.keys import KeyStore


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_client_and_host_keys_are_ed25519_with_0600_files_in_0700_dirs(tmp_path):
    ks = KeyStore(tmp_path / "state")
    c = ks.client_key()
    h = ks.host_key("agent-1")
    assert c.algorithm == h.algorithm == "ssh-ed25519"
    assert c.private_key().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    for kp in (c, h):
        assert mode(kp.private_path) == 0o600 and mode(kp.public_path) == 0o600
        d = kp.private_path.parent
        while d != tmp_path:
            assert mode(d) == 0o700, d
            d = d.parent


def test_public_key_fields_are_what_manually_provided_verification_wants(tmp_path):
    ks = KeyStore(tmp_path)
    h = ks.host_key("agent-1")
    algo, blob = h.algorithm, h.public_key_blob
    assert h.host_key_entry == f"{algo} {blob}"
    assert h.public_line.startswith(h.host_key_entry + " ")  # plus the comment
    # The fingerprint is ssh-keygen's.
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(h.public_path)], capture_output=True, text=True).stdout
    assert out.split()[1] == h.fingerprint


def test_keys_are_created_once_and_reused(tmp_path):
    ks = KeyStore(tmp_path)
    first = ks.host_key("agent-1")
    again = KeyStore(tmp_path).host_key("agent-1")
    assert first == again
    assert ks.host_key("agent-2").public_line != first.public_line


def test_concurrent_first_use_yields_one_key(tmp_path):
    results = []

    def get():
        results.append(KeyStore(tmp_path).host_key("agent-1").public_line)

    threads = [threading.Thread(target=get) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert KeyStore(tmp_path).host_key("agent-1").public_line == results[0]
    leftovers = [p.name for p in (tmp_path / "keys" / "hosts").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_rotate_replaces_the_chosen_keys_only(tmp_path):
    ks = KeyStore(tmp_path)
    c, h1, h2 = ks.client_key(), ks.host_key("agent-1"), ks.host_key("agent-2")
    assert ks.rotate(client=False, nodes=["agent-1"]) == ["agent-1"]
    assert ks.host_key("agent-1").public_line != h1.public_line
    assert ks.host_key("agent-2").public_line == h2.public_line
    assert ks.client_key().public_line == c.public_line
    assert ks.rotate() == ["client", "agent-1", "agent-2"]
    assert ks.client_key().public_line != c.public_line
    assert mode(ks.client_key().private_path) == 0o600


def test_existing_and_list_never_create_or_show_material(tmp_path):
    ks = KeyStore(tmp_path)
    assert ks.existing_client_key() is None and ks.fingerprints() == []
    assert not (tmp_path / "keys").exists()
    ks.client_key()
    ks.host_key("agent-1")
    listed = ks.fingerprints()
    assert [(e["kind"], e["name"]) for e in listed] == [("client", "client"), ("host", "agent-1")]
    text = json.dumps(listed)
    for kp in (ks.client_key(), ks.host_key("agent-1")):
        assert kp.public_key_blob not in text
        assert kp.fingerprint in text
    assert "PRIVATE" not in repr(ks.client_key()) and ks.client_key().public_key_blob not in repr(ks.client_key())


def test_loose_permissions_are_tightened(tmp_path):
    ks = KeyStore(tmp_path)
    kp = ks.client_key()
    os.chmod(kp.private_path, 0o644)
    ks.client_key()
    assert mode(kp.private_path) == 0o600


def test_a_missing_public_half_is_rederived(tmp_path):
    ks = KeyStore(tmp_path)
    kp = ks.host_key("agent-1")
    kp.public_path.unlink()
    again = ks.host_key("agent-1")
    assert again.host_key_entry == kp.host_key_entry
    assert mode(again.public_path) == 0o600


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden"])
def test_node_names_cannot_escape_the_store(tmp_path, name):
    with pytest.raises(ConfigError):
        KeyStore(tmp_path).host_key(name)


def test_cli_keys_list_and_rotate_print_fingerprints_only(tmp_path, capsys, monkeypatch):
    from jenkinsctl.cli import main

    monkeypatch.setenv("JENKINSCTL_STATE_DIR", str(tmp_path))
    assert main(["keys", "list"]) == 0
    assert "no keys yet" in capsys.readouterr().out
    ks = KeyStore(tmp_path)
    old = ks.host_key("agent-1")
    assert main(["-o", "json", "keys", "rotate", "--no-reregister", "--node", "agent-1"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["rotated"] == ["agent-1"] and result["reregistered"] is False
    new = ks.host_key("agent-1")
    assert new.public_key_blob != old.public_key_blob
    assert new.public_key_blob not in out and "PRIVATE KEY" not in out
    assert new.fingerprint in out
    assert main(["keys", "rotate", "--node", "nope"]) == 2
