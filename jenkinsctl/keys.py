"""SSH keys: the controller's client key pair and one host key per agent.

The controller logs in to every agent with the client key (its SSH
credential).  Each agent presents a host key generated here, never by the
agent itself, so the node can be registered with
ManuallyProvidedKeyVerificationStrategy before the agent has started: a
recreated agent with any other key is refused.

Layout under ``state_dir`` (directories 0700, files 0600)::

    keys/client/id_ed25519{,.pub}
    keys/hosts/NODE/ssh_host_ed25519_key{,.pub}

Keys are made with ``ssh-keygen`` (openssh-client), written to a temporary
directory and renamed into place, so a crash or a concurrent run never
leaves half a key pair.  Private keys are read only to hand them to the
controller or an agent; nothing here prints or logs them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterable

from jenkinsctl import statedir
from jenkinsctl.errors import JenkinsctlError
from jenkinsctl.names import check_path_safe_node

CLIENT = "client"
_CLIENT_FILE = "id_ed25519"
_HOST_FILE = "ssh_host_ed25519_key"


class KeyError_(JenkinsctlError):
    """Key generation or reading failed (not Python's KeyError)."""

    exit_code = 8
    category = "keys"


@dataclass(frozen=True)
class KeyPair:
    """One key pair on disk.  ``public_line`` is the OpenSSH public key
    ("ssh-ed25519 AAAA... comment"); the private key stays in its file."""

    name: str
    private_path: pathlib.Path
    public_line: str = field(repr=False)

    @property
    def public_path(self) -> pathlib.Path:
        return self.private_path.with_name(self.private_path.name + ".pub")

    @property
    def algorithm(self) -> str:
        """As Jenkins' ManuallyProvidedKeyVerificationStrategy wants it:
        ``ssh-ed25519``."""
        return self.public_line.split()[0]

    @property
    def public_key_blob(self) -> str:
        """The base64 key, the ``key`` of ManuallyProvidedKeyVerificationStrategy."""
        return self.public_line.split()[1]

    @property
    def host_key_entry(self) -> str:
        """``ALGORITHM BASE64``: a known_hosts key, and the one-line form the
        CasC ``manuallyProvidedKeyVerificationStrategy.key`` takes."""
        return f"{self.algorithm} {self.public_key_blob}"

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -l`` shows it."""
        raw = base64.b64decode(self.public_key_blob)
        return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")

    def private_key(self) -> str:
        """The private key's PEM text, for the controller's credential.  Do
        not log it."""
        return self.private_path.read_text(encoding="ascii")


class KeyStore:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = pathlib.Path(state_dir) / "keys"

    # --- reading (creating on first use) ---------------------------------

    def client_key(self) -> KeyPair:
        """The controller's SSH client key pair, created on first use."""
        return self._get(self.root / CLIENT, _CLIENT_FILE, CLIENT, create=True)  # type: ignore[return-value]

    def host_key(self, node: str) -> KeyPair:
        """Agent ``node``'s host key pair, created on first use."""
        return self._get(self._host_dir(node), _HOST_FILE, node, create=True)  # type: ignore[return-value]

    def existing_client_key(self) -> KeyPair | None:
        return self._get(self.root / CLIENT, _CLIENT_FILE, CLIENT, create=False)

    def existing_host_key(self, node: str) -> KeyPair | None:
        return self._get(self._host_dir(node), _HOST_FILE, node, create=False)

    def host_nodes(self) -> list[str]:
        d = self.root / "hosts"
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_dir() and (p / _HOST_FILE).is_file())

    def fingerprints(self) -> list[dict[str, str]]:
        """Fingerprints of the keys that exist; never key material."""
        out = []
        entries = [("client", CLIENT, self.existing_client_key())]
        entries += [("host", n, self.existing_host_key(n)) for n in self.host_nodes()]
        for kind, name, kp in entries:
            if kp is None:
                continue
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(kp.private_path.stat().st_mtime))
            out.append({"kind": kind, "name": name, "algorithm": kp.algorithm, "fingerprint": kp.fingerprint,
                        "created": created})
        return out

    # --- changing -----------------------------------------------------------

    def rotate(self, *, client: bool = True, nodes: Iterable[str] | None = None) -> list[str]:
        """Replace the client key (when ``client``) and the host keys of
        ``nodes`` (None: every node that has one) with new ones.  Returns the
        names rotated ("client" and node names).  Agents must then be
        recreated and re-registered; see ``jenkinsctl keys rotate``."""
        done = []
        if client:
            self._replace(self.root / CLIENT, _CLIENT_FILE, CLIENT)
            done.append(CLIENT)
        for node in (self.host_nodes() if nodes is None else list(nodes)):
            self._replace(self._host_dir(node), _HOST_FILE, node)
            done.append(node)
        return done

    # --- internals ----------------------------------------------------------

    def _host_dir(self, node: str) -> pathlib.Path:
        return self.root / "hosts" / check_path_safe_node(node)

    def _ensure_dir(self, d: pathlib.Path) -> None:
        """Create ``d`` and keys/ 0700, in a state dir that ``statedir``
        made or checked."""
        statedir.prepare(self.root.parent)
        chain = [d, *d.parents]
        for p in reversed(chain[: chain.index(self.root) + 1]):
            p.mkdir(exist_ok=True, mode=0o700)
            if p.stat().st_mode & 0o077:
                os.chmod(p, 0o700)

    def _get(self, d: pathlib.Path, fname: str, name: str, *, create: bool) -> KeyPair | None:
        priv = d / fname
        if not priv.is_file():
            if not create:
                return None
            self._ensure_dir(d.parent)
            self._install(d, fname, name, replace=False)
        if priv.stat().st_mode & 0o077:
            os.chmod(priv, 0o600)
        pub = priv.with_name(fname + ".pub")
        try:
            line = pub.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            line = _run_keygen(["-y", "-f", str(priv)]).strip()
            _write_private(pub, line + "\n")
        if len(line.split()) < 2:
            raise KeyError_(f"{pub}: not an OpenSSH public key",
                            hint=f"remove {d} and run again to generate a new pair")
        return KeyPair(name=name, private_path=priv, public_line=line)

    def _replace(self, d: pathlib.Path, fname: str, name: str) -> None:
        self._ensure_dir(d.parent)
        self._install(d, fname, name, replace=True)

    def _install(self, d: pathlib.Path, fname: str, name: str, *, replace: bool) -> None:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=".new-", dir=d.parent))
        try:
            _run_keygen(["-t", "ed25519", "-N", "", "-q", "-C", f"jenkinsctl-{name}", "-f", str(tmp / fname)])
            os.chmod(tmp / fname, 0o600)
            os.chmod(tmp / (fname + ".pub"), 0o600)
            if replace and d.exists():
                old = d.with_name(f".old-{d.name}-{os.getpid()}")
                os.rename(d, old)
                os.rename(tmp, d)
                shutil.rmtree(old, ignore_errors=True)
                return
            try:
                os.rename(tmp, d)
            except OSError:
                # Another run made it first (the directory exists and is not
                # empty): keep theirs, so both runs use the same key.
                if not (d / fname).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _write_private(path: pathlib.Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)


def _run_keygen(args: list[str]) -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise KeyError_("ssh-keygen not found; it generates the SSH keys",
                        hint="install openssh-client (apt-get install openssh-client)")
    proc = subprocess.run([exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        raise KeyError_(f"ssh-keygen failed: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout
