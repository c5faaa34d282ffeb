"""smtpraw - an SMTP client on a raw socket for the integration tests: the
exact bytes go out (pipelining, smuggling sequences, broken commands), and
replies are read back in order as Reply(code, lines)."""
import socket
import time


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines          # texts after "CODE-" / "CODE "
        self.text = lines[-1]       # the last line, e.g. "2.1.0 Ok"

    def __repr__(self):
        return f"<{self.code} {' | '.join(self.lines)}>"


class Raw:
    """An SMTP client on a raw socket: exact bytes out, replies read in order."""

    def __init__(self, port, timeout=20, greet=True, source="127.0.0.1", tls=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        if tls is not None:             # implicit TLS: handshake before the greeting
            self.starttls(tls)
        if greet:
            self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection; unread: %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
                raise AssertionError(f"not an SMTP reply line: {line!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return Reply(int(line[:3]), lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def timed(self, line):
        """(reply, seconds until it came)."""
        t0 = time.monotonic()
        r = self.cmd(line)
        return r, time.monotonic() - t0

    def closed_by_server(self):
        """True when the server closes the connection (after what was read)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def starttls(self, context, server_hostname="localhost"):
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Close with a TCP RST, as a client that crashed."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
