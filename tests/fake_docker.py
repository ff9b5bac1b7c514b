"""A small Docker Engine API server on 127.0.0.1: the real `docker` SDK talks to it over HTTP.

It answers the calls a detached `containers.run` + `logs(stream=True, follow=True)` + `wait` + `remove`
make, streams a container's log as Docker's multiplexed frames, and records every create request so a
test can check the command, mounts and GPU request that were sent. Containers can be looked up by id or
name; `on_start(body)` / `on_stop(body)` let a test run a container's program itself (a server on the
port the container publishes), and `kill(cid)` makes one die.
"""
from __future__ import annotations

import json
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeDocker:
    def __init__(self, logs_for, exit_code: int = 0, line_delay: float = 0.0, on_start=None, on_stop=None) -> None:
        """`logs_for(create_body) -> list[str]`: what each new container prints."""
        self.logs_for = logs_for
        self.on_start, self.on_stop = on_start, on_stop
        self.running: dict[str, bool] = {}
        self.names: dict[str, str] = {}
        self.exit_code = exit_code
        self.line_delay = line_delay
        self.created: list[dict] = []
        self.stopped: list[str] = []
        self.removed: list[str] = []
        self._logs: dict[str, list[str]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FakeDocker":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _find(self, ref: str) -> str | None:
        return ref if ref in self.running else self.names.get(ref)

    def _body(self, cid: str) -> dict:
        return self.created[int(cid[1:]) - 1]

    def start(self, cid: str) -> None:
        self.running[cid] = True
        if self.on_start is not None:
            self.on_start(self._body(cid))

    def kill(self, cid: str) -> None:
        if self.running.get(cid):
            self.running[cid] = False
            if self.on_stop is not None:
                self.on_stop(self._body(cid))

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; a stream ends when we close

            def log_message(self, *args) -> None:
                pass

            def _json(self, code: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self) -> tuple[str, dict]:
                url = urlparse(self.path)
                return re.sub(r"^/v[\d.]+", "", url.path), parse_qs(url.query)

            def do_GET(self) -> None:
                path, _query = self._route()
                if path == "/version":
                    return self._json(200, {"ApiVersion": "1.43", "Version": "24.0.0", "MinAPIVersion": "1.12"})
                if m := re.fullmatch(r"/containers/([\w.-]+)/json", path):
                    cid = fake._find(m.group(1))
                    if cid is None:
                        return self._json(404, {"message": f"No such container: {m.group(1)}"})
                    running = fake.running[cid]
                    return self._json(200, {"Id": cid, "Name": "/" + fake._body(cid)["_name"], "Config": {"Tty": False},
                                            "State": {"Running": running, "Status": "running" if running else "exited"}})
                if m := re.fullmatch(r"/containers/(\w+)/logs", path):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.docker.raw-stream")
                    self.end_headers()
                    for line in fake._logs.get(m.group(1), []):
                        if m.group(1) in fake.stopped:
                            return  # a stopped container's log stream ends, as Docker's does
                        data = (line + "\n").encode()
                        # stream 2 is stderr, where tqdm writes
                        self.wfile.write(struct.pack(">BxxxL", 2, len(data)) + data)
                        self.wfile.flush()
                        waited = 0.0
                        while waited < fake.line_delay and m.group(1) not in fake.stopped:
                            time.sleep(min(0.05, fake.line_delay))
                            waited += 0.05
                    return
                self._json(404, {"message": f"no route {path}"})

            def do_POST(self) -> None:
                path, query = self._route()
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                if path == "/containers/create":
                    cid = f"c{len(fake.created) + 1:04d}"
                    body["_name"] = query.get("name", [""])[0]
                    fake.created.append(body)
                    fake.running[cid] = False
                    if body["_name"]:
                        fake.names[body["_name"]] = cid
                    fake._logs[cid] = list(fake.logs_for(body))
                    return self._json(201, {"Id": cid, "Warnings": []})
                if m := re.fullmatch(r"/containers/(\w+)/(start|restart)", path):
                    if m.group(2) == "restart":
                        fake.kill(m.group(1))
                    fake.start(m.group(1))
                    self.send_response(204)
                    self.end_headers()
                    return
                if re.fullmatch(r"/containers/(\w+)/wait", path):
                    return self._json(200, {"StatusCode": fake.exit_code})
                if m := re.fullmatch(r"/containers/(\w+)/stop", path):
                    fake.stopped.append(m.group(1))
                    fake.kill(m.group(1))
                    self.send_response(204)
                    self.end_headers()
                    return
                self._json(404, {"message": f"no route {path}"})

            def do_DELETE(self) -> None:
                path, _ = self._route()
                if m := re.fullmatch(r"/containers/(\w+)", path):
                    fake.removed.append(m.group(1))
                    self.send_response(204)
                    self.end_headers()
                    return
                self._json(404, {"message": "no route"})

        return Handler
