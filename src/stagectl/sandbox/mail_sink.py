"""An SMTP relay inside the sandbox that wants a login over STARTTLS, so that e-mail alerting is
followed to its end the way it works with a provider's relay.

The sandbox environment points `alerting.smarthost` at it, with `alerting.smtp_username`, the
password in the vault and `alerting.smtp_ca_file` at its certificate. It runs as a plain
container on the sandbox's `shared` network (Alertmanager's) (not part of any stack stagectl deploys),
refuses mail before STARTTLS and a login, checks the password against the file the deploy
wrote for Alertmanager, and prints each mail it accepts as one JSON line, which `received()`
reads back from its logs. Nothing is relayed further.
"""

from __future__ import annotations

import json
from typing import Any

from stagectl.sandbox import docker_cli
from stagectl.tlscerts import self_signed

NAME = "stagectl-mail-sink"
PORT = 587
USERNAME = "alerts"
NETWORK = "shared"
#: On the sandbox server: the relay's certificate (also the CA Alertmanager checks it against)
#: and key, written when the server starts, before any deploy reads `alerting.smtp_ca_file`.
DIRECTORY = "/etc/stagectl-sandbox/mail-sink"
CERTIFICATE = f"{DIRECTORY}/cert.pem"
_KEY = f"{DIRECTORY}/key.pem"
#: What the deploy writes for Alertmanager (`paths.shared` of the sandbox environment).
_PASSWORD_FILE = "/opt/shared/alertmanager/config/secrets/smtp_password"

# Runs with the Python of the project base image (its stand-in in the sandbox): no extra image.
# The standard library has no SMTP server any more; the subset Alertmanager's client speaks is
# small: EHLO, STARTTLS, AUTH PLAIN or LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
_SERVER = f"PORT, USERNAME = {PORT}, {USERNAME!r}\n" + """
import base64, email, json, socketserver, ssl, sys, time

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain("/sink/cert.pem", "/sink/key.pem")


class Session(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write((line + "\\r\\n").encode())
        self.wfile.flush()

    def read(self):
        return self.rfile.readline().decode("utf-8", "replace").rstrip("\\r\\n")

    def login(self, user, password):
        with open("/sink/password") as handle:
            expected = handle.read()
        self.user = user if (user == USERNAME and expected and password == expected) else None
        self.reply("235 2.7.0 accepted" if self.user else "535 5.7.8 bad credentials")

    def handle(self):
        self.tls, self.user, sender, recipients = False, None, None, []
        self.reply("220 stagectl-mail-sink ESMTP")
        while True:
            line = self.read()
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if not line and not verb:
                return
            if verb in ("EHLO", "HELO"):
                extensions = ["AUTH PLAIN LOGIN"] if self.tls else ["STARTTLS"]
                for extension in ["stagectl-mail-sink", *extensions[:-1]]:
                    self.reply("250-" + extension)
                self.reply("250 " + extensions[-1])
            elif verb == "STARTTLS" and not self.tls:
                self.reply("220 2.0.0 go ahead")
                self.connection = context.wrap_socket(self.connection, server_side=True)
                self.rfile, self.wfile = self.connection.makefile("rb"), self.connection.makefile("wb")
                self.tls = True
            elif verb == "AUTH" and self.tls:
                mechanism, _, initial = argument.partition(" ")
                if mechanism.upper() == "PLAIN":
                    if not initial:
                        self.reply("334 ")
                        initial = self.read()
                    _, user, password = base64.b64decode(initial).decode().split("\\0")
                    self.login(user, password)
                elif mechanism.upper() == "LOGIN":
                    self.reply("334 " + base64.b64encode(b"Username:").decode())
                    user = base64.b64decode(self.read()).decode()
                    self.reply("334 " + base64.b64encode(b"Password:").decode())
                    self.login(user, base64.b64decode(self.read()).decode())
                else:
                    self.reply("504 5.5.4 unknown mechanism")
            elif verb == "MAIL":
                if not self.user:
                    self.reply("530 5.7.0 authentication required")
                    continue
                sender, recipients = argument[5:].strip("<> "), []
                self.reply("250 2.1.0 ok")
            elif verb == "RCPT" and sender is not None:
                recipients.append(argument[3:].strip("<> "))
                self.reply("250 2.1.5 ok")
            elif verb == "DATA" and recipients:
                self.reply("354 end with .")
                lines = []
                while (data := self.read()) != ".":
                    lines.append(data[1:] if data.startswith(".") else data)
                message = email.message_from_string("\\n".join(lines))
                print(json.dumps({"received_at": time.time(), "tls": self.tls, "user": self.user,
                                  "from": sender, "to": recipients, "subject": message["Subject"]}), flush=True)
                sender, recipients = None, []
                self.reply("250 2.0.0 queued")
            elif verb in ("RSET", "NOOP"):
                sender, recipients = (None, []) if verb == "RSET" else (sender, recipients)
                self.reply("250 2.0.0 ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("503 5.5.1 not now" if verb in ("STARTTLS", "AUTH", "RCPT", "DATA") else "502 5.5.2 unknown")


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("", PORT), Session).serve_forever()
"""


def write_certificate(server: str) -> None:
    """The relay's certificate and key on the sandbox server, made once: a running relay keeps the
    pair it started with, so a new one at a later start (a reboot) would make Alertmanager, which
    reads the file at each e-mail, refuse the relay's certificate."""
    have = docker_cli.run("exec", server, "test", "-s", _KEY, "-a", "-s", CERTIFICATE, check=False)
    if have.returncode == 0:
        return
    pair = self_signed(NAME, days=3650)
    docker_cli.run(
        "exec", "-i", server, "sh", "-c",
        f"set -e; umask 077; mkdir -p {DIRECTORY}; cat > {_KEY}; chmod 0755 {DIRECTORY}",
        input_text=pair.private_key,
    )
    docker_cli.run("exec", "-i", server, "sh", "-c", f"cat > {CERTIFICATE}; chmod 0644 {CERTIFICATE}",
                   input_text=pair.certificate)


def start(sandbox: str, image: str) -> None:
    """Start the relay (again): its log starts empty, so `received()` shows only what came after."""
    docker_cli.in_server(sandbox, "rm", "--force", NAME, check=False)
    # --init: as PID 1 the Python server would ignore SIGTERM, and every stop (the sandbox's
    # shutdown too) would wait for Docker's timeout before killing it.
    docker_cli.in_server(
        sandbox, "run", "--detach", "--name", NAME, "--network", NETWORK,
        "--memory", "64m", "--restart", "unless-stopped", "--read-only", "--init",
        "--label", "stagectl.sandbox=mail-sink",
        "--volume", f"{CERTIFICATE}:/sink/cert.pem:ro",
        "--volume", f"{_KEY}:/sink/key.pem:ro",
        "--volume", f"{_PASSWORD_FILE}:/sink/password:ro",
        image, "python3", "-u", "-c", _SERVER,
    )


def received(sandbox: str) -> list[dict[str, Any]]:
    """Every mail the relay accepted, oldest first: {received_at, tls, user, from, to, subject}."""
    out = []
    for line in docker_cli.in_helper(sandbox, NAME, "mail relay", "logs", NAME).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
