"""The baseline for the ingest benchmark: a Falcon POST route that reads the body and
answers like /track/api-call, doing nothing else."""

import falcon


class NoOp:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.media = {"success": True}


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/track/api-call", NoOp())
    return app
