"""fakerelay - a test SMTP relay in Python's standard library, for relayq's tests.

    ca = TestCA(tmpdir)                       # CA + server cert for localhost/127.0.0.1
    with FakeRelay(ca=ca, mode="starttls", auth=("u", "p")) as relay:
        relay.port ...
        relay.rcpt_replies["x@y"] = "550 5.1.1 no such user"
        relay.data_reply = "451 4.3.0 try again later"
        relay.messages                        # what it accepted

Modes: "starttls" (STARTTLS offered; AUTH only offered after it when
auth_plain_ok is False), "plain" (no STARTTLS), "tls" (implicit TLS).  With
auth set, MAIL before a successful AUTH PLAIN/LOGIN gets 530.  dot_delay
slows the reply to the final dot (a slow relay); accepted messages are
recorded with the time of the 250.  One thread per connection, every socket
bounded by a timeout; stop() closes the listener and every connection.
"""
import base64
import os
import socket
import ssl
import subprocess
import threading
import time


class TestCA:
    """A CA and a server certificate for localhost and 127.0.0.1, made with openssl."""

    def __init__(self, directory, name="Test Relay CA"):
        self.dir = directory
        j = lambda f: os.path.join(directory, f)
        self.ca_cert, self.ca_key = j("relay-ca.pem"), j("relay-ca.key")
        self.cert, self.key = j("relay-cert.pem"), j("relay-key.pem")
        run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True,
                                        timeout=60)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name}", "-keyout", self.ca_key, "-out", self.ca_cert,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        csr = j("relay.csr")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", self.key, "-out", csr)
        ext = j("relay.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        run("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", self.cert)
        os.chmod(self.ca_cert, 0o644)
        os.chmod(self.cert, 0o644)

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


class FakeRelay:
    def __init__(self, ca=None, mode="starttls", auth=None, timeout=20):
        self.ca, self.mode, self.auth, self.timeout = ca, mode, auth, timeout
        self.rcpt_replies = {}          # address -> "4xx ..." / "5xx ..."
        self.data_reply = None          # reply to the final dot instead of 250
        self.dot_delay = 0.0
        self.messages = []              # dicts: sender, rcpts, data, tls, auth, time
        self.auth_seen = []             # (user, password) tried
        self.sessions = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.running = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(10)

    def subjects(self):
        out = []
        with self.lock:
            for m in self.messages:
                for line in m["data"].split(b"\r\n"):
                    if line == b"":
                        break
                    if line.lower().startswith(b"subject:"):
                        out.append(line[8:].strip().decode(errors="replace"))
        return out

    # --- server -----------------------------------------------------------------------------

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.settimeout(self.timeout)
            with self.lock:
                self.conns.append(c)
                self.sessions += 1
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c):
        try:
            self._dialogue(c)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _dialogue(self, raw):
        conn = raw
        tls = False
        if self.mode == "tls":
            conn = self.ca.server_context().wrap_socket(raw, server_side=True)
            tls = True
            with self.lock:
                self.conns.append(conn)
        f = conn.makefile("rb")

        def send(text):
            conn.sendall(text.encode() + b"\r\n")

        def readline():
            line = f.readline(4096)
            if not line:
                raise ValueError("eof")
            return line.rstrip(b"\r\n").decode(errors="replace")

        send("220 fakerelay ESMTP")
        authed = None
        sender, rcpts = None, []
        while True:
            line = readline()
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                ext = ["fakerelay", "PIPELINING", "SIZE 10485760", "8BITMIME",
                       "ENHANCEDSTATUSCODES"]
                if self.mode == "starttls" and not tls:
                    ext.append("STARTTLS")
                if self.auth and (tls or self.mode == "plain"):
                    ext.append("AUTH PLAIN LOGIN")
                for i, e in enumerate(ext):
                    send(("250 " if i == len(ext) - 1 else "250-") + e)
            elif verb == "STARTTLS" and self.mode == "starttls" and not tls:
                send("220 2.0.0 Ready to start TLS")
                conn = self.ca.server_context().wrap_socket(raw, server_side=True)
                with self.lock:
                    self.conns.append(conn)
                f = conn.makefile("rb")
                tls = True
                authed, sender, rcpts = None, None, []
            elif verb == "AUTH" and self.auth:
                parts = line.split(" ")
                mech = parts[1].upper() if len(parts) > 1 else ""
                if mech == "PLAIN":
                    resp = parts[2] if len(parts) > 2 else (send("334 "), readline())[1]
                    try:
                        _, u, p = base64.b64decode(resp).decode().split("\0")
                    except Exception:
                        send("501 5.5.2 bad PLAIN")
                        continue
                elif mech == "LOGIN":
                    send("334 VXNlcm5hbWU6")
                    u = base64.b64decode(readline()).decode()
                    send("334 UGFzc3dvcmQ6")
                    p = base64.b64decode(readline()).decode()
                else:
                    send("504 5.5.4 unknown mechanism")
                    continue
                with self.lock:
                    self.auth_seen.append((u, p))
                if (u, p) == tuple(self.auth):
                    authed = u
                    send("235 2.7.0 Authentication successful")
                else:
                    send("535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                if self.auth and not authed:
                    send("530 5.7.0 Authentication required")
                    continue
                sender = line[line.index("<") + 1:line.index(">")] if "<" in line else ""
                rcpts = []
                send("250 2.1.0 Ok")
            elif verb == "RCPT":
                if sender is None:
                    send("503 5.5.1 need MAIL")
                    continue
                addr = line[line.index("<") + 1:line.index(">")]
                reply = self.rcpt_replies.get(addr)
                if reply:
                    send(reply)
                else:
                    rcpts.append(addr)
                    send("250 2.1.5 Ok")
            elif verb == "DATA":
                if sender is None or not rcpts:
                    send("554 5.5.1 no valid recipients")
                    continue
                send("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    l = f.readline(1 << 20)
                    if not l:
                        raise ValueError("eof in data")
                    if l == b".\r\n":
                        break
                    lines.append(l[1:] if l.startswith(b"..") else l)
                if self.dot_delay:
                    time.sleep(self.dot_delay)
                reply = self.data_reply
                if reply:
                    send(reply)
                else:
                    with self.lock:
                        self.messages.append({"sender": sender, "rcpts": rcpts,
                                              "data": b"".join(lines), "tls": tls,
                                              "auth": authed, "time": time.time()})
                    send("250 2.0.0 Ok: queued as FAKE%d" % len(self.messages))
                sender, rcpts = None, []
            elif verb == "RSET":
                sender, rcpts = None, []
                send("250 2.0.0 Ok")
            elif verb == "NOOP":
                send("250 2.0.0 Ok")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Error: command not recognized")
