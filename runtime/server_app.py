"""`modmt serve`: LibreTranslate's HTTP API over the directions a process holds (Starlette, run by uvicorn).

Endpoints as LibreTranslate has them, so its clients (libretranslatepy, CMS and chat plugins, browser
extensions) point at modmt unchanged:
  POST /translate          q (a string or a list), source, target, format (text|html), api_key;
                           modmt's own extra: w (IN:OUT merge weights, on a shared base)
  GET  /languages          [{code, name, targets}]
  GET  /frontend/settings  the limits and language defaults a front end reads
  GET  /health             status, directions, queue
Parameters come as a JSON body, form fields or a query string, as LibreTranslate takes them.
Errors have LibreTranslate's shape, {"error": message}, with 400 (bad request), 403 (API key), 413
(body too large), 429/503 (queue full or shutting down); what modmt does not do (detection,
files, suggestions) is a 400 that says so.
"""
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from modmt.runtime.errors import ModmtError
from modmt.runtime.html_text import join_html, split_html, text_of
from modmt.runtime.server_batcher import Batcher, Busy


@dataclass
class ServerSettings:
    char_limit: int = 5000             # characters per request, over all of q
    batch_limit: int = 64              # texts per request (q as a list)
    max_body_bytes: int = 1 << 20
    api_keys: frozenset | None = None  # None: no key needed (api_key accepted and ignored)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def read_api_keys(path: Path) -> frozenset:
    """One key per line; blank lines and # comments ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ModmtError(f"cannot read --api-keys {path} ({e}); give a UTF-8 file with one key per line") from None
    keys = frozenset(k.strip() for k in lines if k.strip() and not k.strip().startswith("#"))
    if not keys:
        raise ModmtError(f"--api-keys {path} holds no keys; put one key per line")
    return keys


def create_app(batcher: Batcher, registry, settings: ServerSettings):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    directions = sorted(batcher.backends)
    sources = sorted({s for s, _ in directions})

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def parameters(request) -> dict:
        """Query string, then form fields or a JSON body (the body wins), with the body size bounded."""
        params = dict(request.query_params)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            raise BadRequest(f"request body over {settings.max_body_bytes} bytes; send less text per request", 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                raise BadRequest(f"request body over {settings.max_body_bytes} bytes; send less text per request", 413)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not body:
            return params
        if kind == "application/json":
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError) as e:
                raise BadRequest(f"Invalid request: the body is not valid JSON ({e})") from None
            if not isinstance(data, dict):
                raise BadRequest("Invalid request: the JSON body must be an object of parameters")
            return {**params, **data}
        if kind == "multipart/form-data":
            request._body = body  # Starlette parses the form from the body read above
            form = await request.form()
            multi = {k: form.getlist(k) for k in form.keys()}
            return {**params, **{k: v if len(v) > 1 else v[0] for k, v in multi.items()}}
        try:  # application/x-www-form-urlencoded, also what clients send without a content type
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise BadRequest("Invalid request: the form body is not UTF-8") from None
        form = {}
        for key, value in pairs:
            form.setdefault(key, []).append(value)
        return {**params, **{k: v if len(v) > 1 else v[0] for k, v in form.items()}}

    def check_key(params: dict) -> None:
        if settings.api_keys is None:
            return
        key = params.get("api_key")
        if not isinstance(key, str) or not any(secrets.compare_digest(key, k) for k in settings.api_keys):
            raise BadRequest("Invalid API key", 403)

    def language(params: dict, name: str) -> str:
        code = params.get(name)
        if not isinstance(code, str) or not code.strip():
            raise BadRequest(f"Invalid request: missing {name} parameter")
        code = code.strip()
        if code == "auto":
            raise BadRequest("Invalid request: modmt does not detect languages; give source as a language code")
        if code not in registry.codes:
            raise BadRequest(f"{code} is not supported")
        return code

    async def translate(request):
        try:
            params = await parameters(request)
            check_key(params)
            q = params.get("q")
            texts = q if isinstance(q, list) else [q]
            if q is None or q == "" or q == [] or not all(isinstance(t, str) for t in texts):
                raise BadRequest("Invalid request: missing q parameter")
            if len(texts) > settings.batch_limit:
                raise BadRequest(f"Invalid request: request ({len(texts)}) exceeds text limit ({settings.batch_limit})")
            chars = sum(len(t) for t in texts)
            if chars > settings.char_limit:
                raise BadRequest(f"Invalid request: request ({chars}) exceeds text limit ({settings.char_limit})")
            src, tgt = language(params, "source"), language(params, "target")
            fmt = params.get("format", "text") or "text"
            if fmt not in ("text", "html"):
                raise BadRequest(f"Invalid request: format is text or html, got {str(fmt)[:40]!r}")
            if params.get("alternatives") not in (None, "", "0", 0):
                raise BadRequest("Invalid request: modmt gives one translation per text; drop alternatives")
            backend = batcher.backends.get((src, tgt))
            if backend is None:
                raise BadRequest(f"{src}->{tgt} is not served here; GET /languages lists the directions")
            w = params.get("w")
            if w is not None and not isinstance(w, str):
                raise BadRequest("Invalid request: w is IN:OUT, e.g. 3:7")
            try:
                backend.check(src, tgt, w or None)
            except ModmtError as e:
                raise BadRequest(f"Invalid request: {e}") from None
            direction = (src, tgt, w or None)
            if fmt == "html":
                docs = [split_html(t) for t in texts]
                runs = [text_of(pieces[i]) for pieces, indices in docs for i in indices]
                translated = await batcher.translate(runs, [direction] * len(runs)) if runs else []
                outputs, at = [], 0
                for pieces, indices in docs:
                    outputs.append(join_html(pieces, indices, translated[at:at + len(indices)]))
                    at += len(indices)
            else:
                nonblank = [i for i, t in enumerate(texts) if t.strip()]
                translated = await batcher.translate([texts[i] for i in nonblank], [direction] * len(nonblank)) \
                    if nonblank else []
                outputs = [""] * len(texts)
                for i, text in zip(nonblank, translated):
                    outputs[i] = text
        except BadRequest as e:
            return error(str(e), e.status)
        except Busy as e:
            return error(str(e), 503)
        except Exception as e:  # a bug, not a bad request: say so in the API's shape, no traceback
            return error(f"internal error ({type(e).__name__}); see the server log", 500)
        return JSONResponse({"translatedText": outputs if isinstance(q, list) else outputs[0]})

    async def languages(request):
        return JSONResponse([{"code": s, "name": registry.get(s).name,
                              "targets": sorted(t for s2, t in directions if s2 == s)} for s in sources])

    async def frontend_settings(request):
        first = directions[0] if directions else ("en", "en")
        return JSONResponse({
            "charLimit": settings.char_limit, "frontendTimeout": 500, "apiKeys": settings.api_keys is not None,
            "keyRequired": settings.api_keys is not None, "suggestions": False, "filesTranslation": False,
            "supportedFilesFormat": [],
            "language": {"source": {"code": first[0], "name": registry.get(first[0]).name},
                         "target": {"code": first[1], "name": registry.get(first[1]).name}}})

    async def health(request):
        return JSONResponse({"status": "shutting down" if batcher.closed else "ok",
                             "directions": [f"{s}-{t}" for s, t in directions], "queue": batcher.pending,
                             **batcher.stats})

    async def unsupported(request):
        return error(f"Invalid request: {request.url.path} is not supported by modmt (it translates between the "
                     "languages GET /languages lists)")

    async def lifespan(app):
        batcher.start()
        yield
        batcher.close()

    routes = [Route("/translate", translate, methods=["POST", "GET"]),
              Route("/languages", languages, methods=["GET", "POST"]),
              Route("/frontend/settings", frontend_settings, methods=["GET"]),
              Route("/health", health, methods=["GET"]),
              *[Route(p, unsupported, methods=["GET", "POST"]) for p in ("/detect", "/translate_file", "/suggest")]]
    return Starlette(routes=routes, lifespan=lifespan)
