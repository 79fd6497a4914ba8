"""Launch an SSH agent the way the pinned ssh-slaves plugin does
(SSHLauncher.launch, ssh-slaves 3.1097.v868116049892), with paramiko.

1. connect to host:port (retrying connection failures maxNumRetries times,
   retryWaitTime apart, scaled by the emulator's ``time_scale``), verify
   the host key against the node's strategy, log in with the credential;
2. ``verifyNoHeaderJunk``: run ``exit 0``; any output (a chatty .bashrc or
   motd) aborts the launch;
3. ``reportEnvironment``: run ``set`` and log it;
4. ``copyAgentJar``: remoting.jar into remoteFS over SFTP (creating remoteFS
   0700 if missing), or over SCP when no SFTP client can be started;
5. ``startAgent``: ``cd "REMOTEFS" && JAVA JVMOPTS -jar remoting.jar -workDir
   REMOTEFS -jar-cache REMOTEFS/remoting/jarCache`` (prefix/suffix around it),
   ``JAVA`` being ``java`` from the login PATH unless javaPath is set.  The
   jar is agentjar.remoting_jar(): class-file major 65, so a Java 17 agent
   fails for real with UnsupportedClassVersionError.  The node is online
   once the agent process writes remoting's capability preamble, and stays
   online while that SSH session lives.

Every failure leaves the node offline with a reason a person can act on.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import stat
import threading
import time
from typing import TYPE_CHECKING, Optional

import paramiko

from . import model
from .agentjar import PREAMBLE, remoting_jar

if TYPE_CHECKING:
    from .server import Computer, FakeJenkins

AGENT_JAR = "remoting.jar"
JUNK = ("SSH connection reports a garbage before a command execution.\nCheck your .bashrc, .profile, and so on "
        "to make sure it is quiet.\nThe received junk text is as follows:")


class Channel:
    """An online agent: the SSH connection and the agent process's session."""

    def __init__(self, transport: paramiko.Transport, session: paramiko.Channel):
        self.transport, self.session = transport, session

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            self.transport.close()


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

    def log_raw(self, text: str) -> bool:
        return self.emu.launch_update(self.name, self.gen, lambda c: c.log.extend(text.split("\n")))

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

    def exec_quiet(self, t: paramiko.Transport, command: str) -> tuple[int, bytes]:
        """Trilead's Connection.exec: stdout and stderr into one stream."""
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
        return status, out

    def verify_no_header_junk(self, t: paramiko.Transport) -> None:
        _, out = self.exec_quiet(t, "exit 0")
        if out:
            self.log_raw(JUNK)
            self.log_raw(out.decode("utf-8", "replace").rstrip("\n"))
            raise LaunchError("SSH connection reports a garbage before a command execution: the login shell of "
                              f"{self.where()} prints text (.bashrc, .profile, motd). Make it quiet for "
                              "non-interactive logins.")

    def report_environment(self, t: paramiko.Transport) -> None:
        self.log("[SSH] The remote user's environment is:")
        _, out = self.exec_quiet(t, "set")
        self.log_raw(out.decode("utf-8", "replace").rstrip("\n"))

    def copy_agent_jar(self, t: paramiko.Transport, wd: str) -> None:
        jar = remoting_jar()
        path = wd + "/" + AGENT_JAR
        self.log("[SSH] Starting sftp client.")
        try:
            sftp = t.open_sftp_client()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            sftp = None
            self.log(f"ERROR: [SSH] SFTP failed. Copying via SCP.\n{type(exc).__name__}: {exc}")
        if sftp is None:
            self.copy_agent_jar_scp(t, wd, jar)
            return
        try:
            try:
                st = sftp.stat(wd)
            except FileNotFoundError:
                st = None
            if st is None:
                self.log(f"[SSH] Remote file system root {wd} does not exist. Will try to create it...")
                _sftp_mkdirs(sftp, wd)
            elif stat.S_ISREG(st.st_mode or 0):
                raise LaunchError(f"Remote file system root {wd} is a file not a directory or a symlink.")
            self.log("[SSH] Copying latest remoting.jar...")
            overwrite = True
            try:
                with sftp.open(path, "rb") as fh:
                    have = hashlib.md5(fh.read()).hexdigest().upper()
                want = hashlib.md5(jar).hexdigest().upper()
                self.log_raw(f"Source agent hash is {want}. Installed agent hash is {have}")
                overwrite = have != want
            except FileNotFoundError:
                pass
            if overwrite:
                try:
                    sftp.remove(path)
                except OSError:
                    pass
                with sftp.open(path, "wb") as fh:
                    fh.write(jar)
                self.log(f"[SSH] Copied {len(jar)} bytes.")
            else:
                self.log_raw("Verified agent jar. No update is necessary.")
        except LaunchError:
            raise
        except (OSError, paramiko.SSHException) as exc:
            raise LaunchError(f"Could not copy remoting.jar into '{wd}' on agent: {type(exc).__name__}: {exc}. "
                              f"Make {wd} writable by the SSH user or change remoteFS.") from None
        finally:
            sftp.close()

    def copy_agent_jar_scp(self, t: paramiko.Transport, wd: str, jar: bytes) -> None:
        """copySlaveJarUsingSCP: test -d, mkdir -p, rm, then the scp sink
        protocol (``scp -t DIR``) with mode 0644."""
        if self.exec_quiet(t, f"test -d {wd}")[0] != 0:
            self.log(f"[SSH] Remote file system root {wd} does not exist. Will try to create it...")
            if self.exec_quiet(t, f"mkdir -p {wd}")[0] != 0:
                self.log_raw(f"Failed to create {wd}")
        self.exec_quiet(t, f"rm {wd}/{AGENT_JAR}")
        self.log("[SSH] Copying latest remoting.jar...")
        chan = t.open_session(timeout=self.la.launch_timeout_seconds)
        chan.settimeout(self.la.launch_timeout_seconds)
        try:
            chan.exec_command(f"scp -t -d {wd}")

            def ack() -> None:
                b = chan.recv(1)
                if b != b"\0":
                    rest = b""
                    while b and not rest.endswith(b"\n"):
                        rest += chan.recv(1024)
                        if not rest:
                            break
                    raise OSError(f"scp: {(b[1:] if b else b'') + rest!r}".strip())

            ack()
            chan.sendall(f"C0644 {len(jar)} {AGENT_JAR}\n".encode())
            ack()
            chan.sendall(jar + b"\0")
            ack()
        except (OSError, socket.timeout, paramiko.SSHException) as exc:
            raise LaunchError(f"Could not copy remoting.jar into '{wd}' on agent: {exc}") from None
        finally:
            chan.close()

    def start_agent(self, t: paramiko.Transport, wd: str) -> paramiko.Channel:
        la = self.la
        java = la.java_path or "java"
        jvm = la.jvm_options or ""
        suffix = la.suffix_start_slave_cmd or ""
        if "-workDir" in suffix or "-jar-cache" in suffix:
            work_dir_param = ""
        else:
            base = la.work_dir or wd
            work_dir_param = f" -workDir {base} -jar-cache {base}/remoting/jarCache"
        cmd = f'cd "{wd}" && {java} {jvm} -jar {AGENT_JAR}{work_dir_param}'
        cmd = (la.prefix_start_slave_cmd or "") + cmd + suffix
        self.log(f"[SSH] Starting agent process: {cmd}")
        chan = t.open_session(timeout=la.launch_timeout_seconds)
        chan.exec_command(cmd)
        self.log_raw("Expanded the channel window size to 4MB")
        # computer.setChannel: wait for the agent's preamble on stdout,
        # copying stderr into the log meanwhile.
        deadline = time.monotonic() + la.launch_timeout_seconds
        out, err = b"", b""
        chan.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                data = chan.recv(4096)
                if not data and chan.exit_status_ready():
                    break
                out += data
            except socket.timeout:
                pass
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(4096)
            if PREAMBLE.encode() in out:
                if err:
                    self.log_raw(err.decode("utf-8", "replace").rstrip("\n"))
                return chan
            if chan.exit_status_ready() and not chan.recv_ready():
                break
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(4096)
        if err:
            self.log_raw(err.decode("utf-8", "replace").rstrip("\n"))
        if chan.exit_status_ready():
            outcome = f"Agent JVM has terminated. Exit code={chan.recv_exit_status()}"
        else:
            outcome = "Agent JVM has not reported exit code. Is it still running?"
        chan.close()
        first = next((line for line in err.decode("utf-8", "replace").splitlines()
                      if "Error" in line or "not found" in line), "")
        raise LaunchError(f"{outcome}" + (f": {first.strip()}" if first else ""))

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
    channel: Optional[Channel] = None
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
                job.verify_no_header_junk(t)
                job.report_environment(t)
                wd = job.cfg.remote_fs.rstrip("/") or "/"
                job.copy_agent_jar(t, wd)
                session = job.start_agent(t, wd)
                channel = Channel(t, session)
            except BaseException:
                t.close()
                raise
            break
    except LaunchError as exc:
        reason = exc.reason
    except Exception as exc:  # keep the node honest about emulator bugs too
        reason = f"Launch failed: {type(exc).__name__}: {exc}"

    def finish(c: "Computer") -> None:
        c.launching = False
        if reason is None:
            c.connected = True
            c.channel = channel
            c.launch_failure = None
            c.log.append("Remoting version is: (fakejenkins agentjar, class file major 65)")
            c.log.append("Agent successfully connected and online")
        else:
            c.connected = False
            c.launch_failure = reason
            c.log.append(f"[{_stamp()}] ERROR: {reason}")
            c.log.append(f"[{_stamp()}] [SSH] Connection closed.")

    if not emu.launch_update(name, generation, finish):
        if channel is not None:
            channel.close()  # the node was deleted, changed or relaunched meanwhile
        return
    if channel is not None:
        threading.Thread(target=_watch, args=(emu, name, generation, channel), name=f"channel-{name}",
                         daemon=True).start()


def _watch(emu: "FakeJenkins", name: str, generation: int, channel: Channel) -> None:
    """The channel ends when the agent process or the connection ends (the
    container was removed, sshd restarted): the node goes offline with
    ChannelTermination, as SlaveComputer.onClosed does."""
    session = channel.session
    while not emu._stop.is_set():
        if session.exit_status_ready() or session.closed or not channel.transport.is_active():
            break
        time.sleep(0.2)

    def lost(c: "Computer") -> None:
        if c.channel is channel:
            c.channel = None
            c.connected = False
            c.launch_failure = "Connection was broken: the agent process or its SSH connection ended"
            c.channel_broken = True
            c.log.append(f"[{_stamp()}] {c.launch_failure}")

    emu.launch_update(name, generation, lost)
    channel.close()


def _sftp_mkdirs(sftp: paramiko.SFTPClient, path: str) -> None:
    """Trilead SFTPClient.mkdirs(path, 0700): each missing parent too."""
    parts = [p for p in path.split("/") if p]
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        cur = (cur.rstrip("/") + "/" + p) if cur else p
        try:
            sftp.stat(cur)
        except FileNotFoundError:
            sftp.mkdir(cur, 0o700)

