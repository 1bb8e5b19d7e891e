"""The baselines of the ingest benchmark: a Falcon POST route that reads the body and
answers like /track/api-call, doing nothing else — as a WSGI app (`create_app`, the
reference under sync workers) and as an ASGI app (`create_asgi_app`)."""

import falcon
import falcon.asgi


class NoOp:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.media = {"success": True}


class AsyncNoOp:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await req.bounded_stream.read()
        resp.media = {"success": True}


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/track/api-call", NoOp())
    return app


def create_asgi_app() -> falcon.asgi.App:
    app = falcon.asgi.App()
    app.add_route("/track/api-call", AsyncNoOp())
    return app
