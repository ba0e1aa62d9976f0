"""schemathesis hooks for sandpit's fuzz run: keep the fuzzer's own credential out of its reach.

The run authenticates with one personal API token of an admin. Generated requests may name
anything they learnt from responses (the stateful phase follows links: `GET /tokens` lists
the token's id, `GET /auth/me` the user's id), so two requests could lock the fuzzer out for
the rest of the run and turn every later case into a 401:
- `DELETE /api/v1/tokens/{id}` with its own token's id revokes it;
- `PUT /api/v1/users/{id}/role` with its own id demotes it (admin-only routes then answer 403).
Such a request is pointed at a random id instead (the server answers 404, which the document
lists). `POST /api/v1/auth/logout` needs nothing: it ends sign-in *sessions*, never the
personal token the fuzzer uses. The ids come from the driver through the environment.

An app's logs with `follow=true` stay open while the app lives (that is what following is), so
the fuzzer would only see its request time out: such a request asks for the lines so far.
"""

import os
import uuid

import schemathesis

OWN_TOKEN_ID = os.environ["SANDPIT_FUZZ_TOKEN_ID"]
OWN_USER_ID = os.environ["SANDPIT_FUZZ_USER_ID"]

GUARDED = {
    ("DELETE", "/api/v1/tokens/{id}"): OWN_TOKEN_ID,
    ("PUT", "/api/v1/users/{id}/role"): OWN_USER_ID,
}


@schemathesis.hook
def before_call(context, case, kwargs):
    own = GUARDED.get((case.method.upper(), case.path))
    params = case.path_parameters or {}
    if own is not None and str(params.get("id", "")).lower() == own:
        params["id"] = str(uuid.uuid4())
        case.path_parameters = params
    query = case.query or {}
    if case.path == "/api/v1/apps/{id}/logs" and str(query.get("follow", "")).lower() == "true":
        query["follow"] = "false"


# Archives are bytes (`format: binary`), sent as they are like `application/octet-stream`: the
# server must refuse what is not a valid .tar.gz with 422, never fail.
schemathesis.serializer.alias("application/gzip", "application/octet-stream")
