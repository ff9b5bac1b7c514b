"""A load balancer on 127.0.0.1 in front of bot replicas: each request goes to the next replica in turn, and to the
one after it when a replica does not take the connection (it is down), as a health-checking balancer would."""
from __future__ import annotations

import itertools

import aiohttp
from aiohttp import web


class RoundRobin:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends  # base URLs, "http://127.0.0.1:port"
        self.sent_to: list[str] = []  # the backend that took each request, in order
        self._turn = itertools.cycle(range(len(backends)))
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> str:
        self._http = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]  # aiohttp's server behind a started site; it has sockets by now
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        assert self._http is not None
        for _ in self.backends:
            backend = self.backends[next(self._turn)]
            try:
                async with self._http.request(request.method, backend + request.rel_url.path_qs, data=body,
                                              headers=headers) as resp:
                    self.sent_to.append(backend)
                    return web.Response(status=resp.status, body=await resp.read(),
                                        content_type=resp.content_type)
            except aiohttp.ClientConnectorError:
                continue  # this replica is down: the next one
        return web.Response(status=502, text="no replica is up")
