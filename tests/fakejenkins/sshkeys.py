"""SSH key pairs for tests: client keys for credentials, host keys to pin."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str  # "-----BEGIN OPENSSH PRIVATE KEY-----..."
    public_line: str  # "ssh-ed25519 AAAA... comment"

    @property
    def algorithm(self) -> str:
        return self.public_line.split()[0]

    @property
    def b64(self) -> str:
        return self.public_line.split()[1]

    @property
    def pin(self) -> str:
        """The ``key`` of ManuallyProvidedKeyVerificationStrategy: "ALGORITHM BASE64"."""
        return f"{self.algorithm} {self.b64}"

    def write(self, directory: Path, name: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        priv = directory / name
        priv.write_text(self.private_openssh)
        priv.chmod(0o600)
        (directory / f"{name}.pub").write_text(self.public_line + "\n")
        return priv


def generate(comment: str = "jenkinsctl-test") -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, f"{public} {comment}")
