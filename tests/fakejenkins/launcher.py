"""Launch an SSH agent the way the ssh-slaves plugin does, with paramiko.

1. connect to host:port (retrying connection failures maxNumRetries times,
   retryWaitTime apart, scaled by the emulator's ``time_scale``);
2. verify the host key against the node's strategy;
3. log in with the credential's username and private key (or password);
4. find Java (``java -version``) and require the controller's minimum (17);
5. make sure remoteFS is writable: ``mkdir -p`` and write ``remoting.jar``;
6. only then mark the node online.

Every failure leaves the node offline with a reason a person can act on.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shlex
import socket
import time
from typing import TYPE_CHECKING, Optional

import paramiko

from . import model

if TYPE_CHECKING:
    from .server import Computer, FakeJenkins

MIN_JAVA = 17
# JavaVersionChecker's candidates, in its order.
JAVA_CANDIDATES = ["java", "$JAVA_HOME/bin/java", "/usr/bin/java", "/usr/java/default/bin/java",
                   "/usr/java/latest/bin/java", "/usr/local/bin/java", "/usr/local/java/bin/java"]


class LaunchError(Exception):
    """A failure that ends the launch; ``retry`` if the plugin would retry it."""

    def __init__(self, reason: str, retry: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _stamp() -> str:
    return time.strftime("%m/%d/%y %H:%M:%S")


class _Launch:
    def __init__(self, emu: "FakeJenkins", name: str, generation: int):
        self.emu, self.name, self.gen = emu, name, generation
        with emu.lock:
            c = emu.computers[name]
            self.cfg = c.config
            self.trusted_key = c.trusted_key
        self.la = self.cfg.launcher

    def log(self, line: str) -> bool:
        return self.emu.launch_update(self.name, self.gen, lambda c: c.log.append(f"[{_stamp()}] {line}"))

    def where(self) -> str:
        return f"{self.la.host}:{self.la.port}"

    # --- steps -------------------------------------------------------------

    def credential(self) -> model.Credential:
        with self.emu.lock:
            cred = self.emu.credentials.get(self.la.credentials_id or "")
        if cred is None:
            raise LaunchError(f"Cannot find SSH User credentials with id: {self.la.credentials_id}. "
                              "Create the credential in the system store, then relaunch the agent.")
        return cred

    def connect(self) -> paramiko.Transport:
        la = self.la
        timeout = la.launch_timeout_seconds
        try:
            sock = socket.create_connection((la.host, la.port), timeout=timeout)
        except socket.gaierror as exc:
            raise LaunchError(f"Cannot resolve the agent host ‘{la.host}’: {exc}. Check launcher.host.", retry=True) from None
        except OSError as exc:
            raise LaunchError(f"Cannot connect to {self.where()}: {exc}. Is sshd running there and the port right?",
                              retry=True) from None
        if la.tcp_no_delay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = paramiko.Transport(sock)
        st = la.strategy
        if st is not None and st.cls == model.MANUALLY_PROVIDED and st.algorithm:
            # getPreferredKeyAlgorithms: the pinned algorithm first.
            opts = t.get_security_options()
            pinned = [st.algorithm] if st.algorithm != "ssh-rsa" else ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
            opts.key_types = tuple(pinned + [k for k in opts.key_types if k not in pinned])
        try:
            t.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            t.close()
            raise LaunchError(f"SSH handshake with {self.where()} failed: {exc}", retry=True) from None
        return t

    def verify_host_key(self, t: paramiko.Transport) -> None:
        key = t.get_remote_server_key()
        algorithm, blob = key.get_name(), key.asbytes()
        seen = f"{algorithm} {fingerprint(blob)}"
        st = self.la.strategy
        if st is None or st.cls == model.NON_VERIFYING:
            how = "no sshHostKeyVerificationStrategy (Jenkins falls back to Non verifying)" if st is None \
                else "NonVerifyingKeyVerificationStrategy"
            warning = (f"Node ‘{self.name}’ launched with {how}: the host key of {self.where()} ({seen}) was "
                       "not verified, so a man in the middle could impersonate the agent. Pin the key with "
                       "ManuallyProvidedKeyVerificationStrategy.")
            self.log("WARNING: " + warning)

            def record(c: "Computer") -> None:
                c.security_warnings.append(warning)
                self.emu.security_warnings.append({"node": self.name, "kind": "host-key-not-verified", "message": warning})

            self.emu.launch_update(self.name, self.gen, record)
            return
        if st.cls == model.MANUALLY_PROVIDED:
            if (st.algorithm, st.key) == (algorithm, blob):
                self.log(f"[SSH] The SSH key with fingerprint {fingerprint(blob)} has been verified")
                return
            pinned = f"{st.algorithm} {fingerprint(st.key or b'')}"
            raise LaunchError(
                f"Host key verification failed for {self.where()}: the host presented {seen} but the node pins "
                f"{pinned} (ManuallyProvidedKeyVerificationStrategy). Update the pinned key if the host was rebuilt, "
                "otherwise someone may be intercepting the connection.", retry=True)
        if st.cls == model.MANUALLY_TRUSTED:
            if self.trusted_key is None:
                if st.require_initial_manual_trust:
                    raise LaunchError(
                        f"Host key verification failed for {self.where()}: {seen} is not trusted yet and the node "
                        "requires initial manual trust. Approve the key on the node's page.")
                self.emu.launch_update(self.name, self.gen, lambda c: setattr(c, "trusted_key", (algorithm, blob)))
                self.log(f"[SSH] {seen} is now trusted (first connection)")
                return
            if self.trusted_key != (algorithm, blob):
                raise LaunchError(
                    f"Host key verification failed for {self.where()}: the host presented {seen}, which differs "
                    f"from the key trusted on the first connection ({self.trusted_key[0]} "
                    f"{fingerprint(self.trusted_key[1])}).", retry=True)
            return
        if st.cls == model.KNOWN_HOSTS_FILE:
            path = self.emu.known_hosts
            if not path or not os.path.exists(path):
                raise LaunchError(f"Host key verification failed for {self.where()}: no Known Hosts file was found at "
                                  f"{path or '~/.ssh/known_hosts'}. Create one, readable by Jenkins.", retry=True)
            hk = paramiko.HostKeys(path)
            lookup = self.la.host if self.la.port == 22 else f"[{self.la.host}]:{self.la.port}"
            entry = hk.lookup(lookup) or {}
            known = entry.get(algorithm)
            if known is None or known.asbytes() != blob:
                raise LaunchError(f"Host key verification failed for {self.where()}: {seen} is not in {path}.",
                                  retry=True)
            return
        raise LaunchError(f"Unknown host key strategy {st.cls}")

    def authenticate(self, t: paramiko.Transport, cred: model.Credential) -> None:
        t.auth_timeout = self.la.launch_timeout_seconds
        try:
            if cred.cls == model.USERNAME_PASSWORD:
                t.auth_password(cred.username, cred.password or "")
                return
            pkey = _load_key(cred)
            t.auth_publickey(cred.username, pkey)
        except paramiko.AuthenticationException:
            what = "password" if cred.cls == model.USERNAME_PASSWORD else "private key"
            raise LaunchError(
                f"Authentication failed: {self.where()} rejected the {what} of credential ‘{cred.id}’ for user "
                f"‘{cred.username}’. Put the matching public key into ~{cred.username}/.ssh/authorized_keys on the "
                "agent, or fix the credential.") from None
        except paramiko.SSHException as exc:
            raise LaunchError(f"Authentication with {self.where()} failed: {exc}") from None

    def run(self, t: paramiko.Transport, command: str) -> tuple[int, str]:
        chan = t.open_session(timeout=self.la.launch_timeout_seconds)
        chan.settimeout(self.la.launch_timeout_seconds)
        chan.set_combine_stderr(True)
        chan.exec_command(command)
        out = b""
        try:
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                out += data
        except socket.timeout:
            chan.close()
            raise LaunchError(f"‘{command}’ did not finish within {self.la.launch_timeout_seconds}s on {self.where()}")
        status = chan.recv_exit_status()
        chan.close()
        return status, out.decode("utf-8", "replace")

    def check_java(self, t: paramiko.Transport) -> str:
        candidates = [self.la.java_path] if self.la.java_path else \
            JAVA_CANDIDATES + [self.cfg.remote_fs.rstrip("/") + "/jdk/bin/java"]
        tried = []
        for java in candidates:
            cmd = f"{java} -version" if java.startswith("$") else f"{shlex.quote(java)} -version"
            self.log(f"[SSH] Checking java version of {java}")
            status, out = self.run(t, cmd)
            tried.append(java)
            m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
            if status != 0 or not m:
                continue
            major = int(m.group(1))
            if major == 1 and m.group(2):
                major = int(m.group(2))
            if major < MIN_JAVA:
                raise LaunchError(f"Java {major} found at {java} on {self.where()}, but Jenkins {self.emu.version} "
                                  f"agents need Java {MIN_JAVA} or newer. Install a newer JRE or set javaPath.")
            self.log(f"[SSH] {java} -version returned {major}.")
            return java
        raise LaunchError(f"Java not found on {self.where()} (tried {', '.join(tried)}). Install Java {MIN_JAVA} or "
                          "newer on the agent (e.g. openjdk-17-jre-headless), or set javaPath in the launcher.")

    def check_remote_fs(self, t: paramiko.Transport, user: str) -> None:
        rfs = self.cfg.remote_fs
        q = shlex.quote(rfs)
        status, out = self.run(t, f"mkdir -p -- {q} && touch -- {q}/remoting.jar")
        if status != 0:
            raise LaunchError(f"Could not copy remoting.jar into ‘{rfs}’ on {self.where()}: the directory is not "
                              f"writable by ‘{user}' ({out.strip()}). Make it writable by that user or change remoteFS.")
        self.log(f"[SSH] Copied remoting.jar to {rfs}")


def _load_key(cred: model.Credential) -> paramiko.PKey:
    text = cred.private_key or ""
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=cred.passphrase)
        except paramiko.PasswordRequiredException:
            raise LaunchError(f"The private key of credential ‘{cred.id}’ is encrypted and the credential has "
                              "no passphrase.") from None
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{cls.__name__}: {exc}")
    raise LaunchError(f"The private key of credential ‘{cred.id}’ could not be read ({'; '.join(errors)}). "
                      "Store an unencrypted OpenSSH or PEM private key.")


def launch(emu: "FakeJenkins", name: str, generation: int) -> None:
    """Thread body: one launch of ``name``, with the plugin's retries."""
    try:
        job = _Launch(emu, name, generation)
    except KeyError:
        return
    la = job.la
    reason: Optional[str] = None
    try:
        cred = job.credential()
        for attempt in range(la.max_num_retries + 1):
            if not emu.launch_update(name, generation, lambda c: setattr(c, "launch_attempts", c.launch_attempts + 1)):
                return
            job.log(f"[SSH] Opening SSH connection to {job.where()}.")
            try:
                t = job.connect()
                try:
                    job.verify_host_key(t)
                except LaunchError:
                    t.close()
                    raise
            except LaunchError as exc:
                if not exc.retry or attempt == la.max_num_retries:
                    raise
                wait = la.retry_wait_time * emu.time_scale
                job.log(f"ERROR: {exc.reason}")
                job.log(f"SSH Connection failed, retrying in {la.retry_wait_time} seconds. "
                        f"There are {la.max_num_retries - attempt} more retries left.")
                if emu._stop.wait(wait):
                    return
                continue
            try:
                job.authenticate(t, cred)
                job.log("[SSH] Authentication successful.")
                job.check_java(t)
                job.check_remote_fs(t, cred.username)
            finally:
                t.close()
            break
    except LaunchError as exc:
        reason = exc.reason
    except Exception as exc:  # keep the node honest about emulator bugs too
        reason = f"Launch failed: {type(exc).__name__}: {exc}"

    def finish(c: "Computer") -> None:
        c.launching = False
        if reason is None:
            c.connected = True
            c.launch_failure = None
            c.log.append(f"[{_stamp()}] Agent successfully connected and online")
        else:
            c.connected = False
            c.launch_failure = reason
            c.log.append(f"[{_stamp()}] ERROR: {reason}")
            c.log.append(f"[{_stamp()}] Launch failed - cleaning up connection")

    emu.launch_update(name, generation, finish)
