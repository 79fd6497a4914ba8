"""The ``remoting.jar`` the emulator copies to agents: a real jar whose one
class has class-file major version 65 (Java 21), written here byte by byte.

A controller on Jenkins 2.545 or newer ships a remoting.jar compiled for
Java 21, so an agent whose ``java`` is 17 fails with
``UnsupportedClassVersionError`` the moment it loads the jar.  This jar
makes that happen for real: it is loaded by the agent's own ``java``.

Why assembled in Python: the class must be major 65, and this machine's JDK
is 17 (``javac --release 21`` is not available).  The class is small enough
to write directly (JVMS 4), with no branch, so it needs no StackMapTable:

    public class Main {
        public static void main(String[] args) throws IOException {
            System.out.println(PREAMBLE);
            System.out.flush();
            System.in.transferTo(OutputStream.nullOutputStream());  // until the controller hangs up
        }
    }

It is not Jenkins' remoting: it prints the capability preamble that
remoting's agent writes first on stdout (``<===[JENKINS REMOTING CAPACITY]===>``),
which the emulator takes as "the agent process is up", and then holds the
channel open until the controller closes it, like an agent JVM does.
"""
from __future__ import annotations

import io
import struct
import zipfile

CLASS_MAJOR = 65  # Java 21 (JVMS 4.1, table 4.1-A)
PREAMBLE = "<===[JENKINS REMOTING CAPACITY]===>rO0ABXNyABpodWRzb24ucmVtb3RpbmcuQ2FwYWJpbGl0eQ=="


class _Pool:
    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.index: dict = {}

    def _add(self, key, data: bytes) -> int:
        if key not in self.index:
            self.entries.append(data)
            self.index[key] = len(self.entries)
        return self.index[key]

    def utf8(self, s: str) -> int:
        b = s.encode("utf-8")
        return self._add(("u", s), b"\x01" + struct.pack(">H", len(b)) + b)

    def cls(self, name: str) -> int:
        return self._add(("c", name), b"\x07" + struct.pack(">H", self.utf8(name)))

    def string(self, s: str) -> int:
        return self._add(("s", s), b"\x08" + struct.pack(">H", self.utf8(s)))

    def nat(self, name: str, desc: str) -> int:
        return self._add(("n", name, desc), b"\x0c" + struct.pack(">HH", self.utf8(name), self.utf8(desc)))

    def field(self, owner: str, name: str, desc: str) -> int:
        return self._add(("f", owner, name, desc), b"\x09" + struct.pack(">HH", self.cls(owner), self.nat(name, desc)))

    def method(self, owner: str, name: str, desc: str) -> int:
        return self._add(("m", owner, name, desc), b"\x0a" + struct.pack(">HH", self.cls(owner), self.nat(name, desc)))

    def bytes(self) -> bytes:
        return struct.pack(">H", len(self.entries) + 1) + b"".join(self.entries)


def main_class(major: int = CLASS_MAJOR) -> bytes:
    cp = _Pool()
    this, sup = cp.cls("Main"), cp.cls("java/lang/Object")
    out = cp.field("java/lang/System", "out", "Ljava/io/PrintStream;")
    inp = cp.field("java/lang/System", "in", "Ljava/io/InputStream;")
    println = cp.method("java/io/PrintStream", "println", "(Ljava/lang/String;)V")
    flush = cp.method("java/io/PrintStream", "flush", "()V")
    null_out = cp.method("java/io/OutputStream", "nullOutputStream", "()Ljava/io/OutputStream;")
    transfer = cp.method("java/io/InputStream", "transferTo", "(Ljava/io/OutputStream;)J")
    text = cp.string(PREAMBLE)
    name, desc, code_attr = cp.utf8("main"), cp.utf8("([Ljava/lang/String;)V"), cp.utf8("Code")
    ldc = b"\x13" + struct.pack(">H", text)  # ldc_w
    code = (b"\xb2" + struct.pack(">H", out) + ldc + b"\xb6" + struct.pack(">H", println)  # println(PREAMBLE)
            + b"\xb2" + struct.pack(">H", out) + b"\xb6" + struct.pack(">H", flush)  # flush()
            + b"\xb2" + struct.pack(">H", inp) + b"\xb8" + struct.pack(">H", null_out)  # in, nullOutputStream()
            + b"\xb6" + struct.pack(">H", transfer)  # transferTo -> long
            + b"\x58" + b"\xb1")  # pop2; return
    body = struct.pack(">HHI", 2, 1, len(code)) + code + struct.pack(">HH", 0, 0)
    method = struct.pack(">HHHH", 0x0009, name, desc, 1) + struct.pack(">HI", code_attr, len(body)) + body
    return (struct.pack(">IHH", 0xCAFEBABE, 0, major) + cp.bytes()
            + struct.pack(">HHHHH", 0x0021, this, sup, 0, 0)  # public super class Main, no interfaces/fields
            + struct.pack(">H", 1) + method + struct.pack(">H", 0))


def remoting_jar(major: int = CLASS_MAJOR) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        # Fixed timestamps: the same bytes every time, so the launcher's
        # "is the installed jar current" hash check is meaningful.
        info = zipfile.ZipInfo("META-INF/MANIFEST.MF", (2026, 1, 1, 0, 0, 0))
        z.writestr(info, "Manifest-Version: 1.0\r\nMain-Class: Main\r\nCreated-By: fakejenkins\r\n\r\n")
        z.writestr(zipfile.ZipInfo("Main.class", (2026, 1, 1, 0, 0, 0)), main_class(major))
    return buf.getvalue()
