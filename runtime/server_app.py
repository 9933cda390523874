"""`modmt serve`: LibreTranslate's HTTP API over the directions a process holds (Starlette, run by uvicorn).

Endpoints as LibreTranslate has them, so its clients (libretranslatepy, its own web app, CMS and
chat plugins, browser extensions) point at modmt unchanged:
  POST /translate          q (a string or a list), source (a code or "auto"), target, format
                           (text|html), alternatives (n-best from the beam), api_key;
                           modmt's own extra: w (IN:OUT merge weights, on a shared base)
  POST /detect             q: [{confidence, language}], among the source languages held
  GET  /languages          [{code, name, targets}]
  GET  /directions         modmt's own: [{source, target, w, tuned}], the weights a request without w gets
  GET  /frontend/settings  the limits and language defaults a front end reads
  GET  /spec               the OpenAPI document of what this server serves (runtime/server_spec.py)
  GET  /health             {"status": "ok"}; the numbers are at GET /metrics (Prometheus)
  POST /translate_file     file (.txt, .html) with source, target: {translatedFileUrl}, fetched with
  GET  /download_file/NAME (kept 30 minutes in --files-dir, which replicas may share)
  GET  /                   a translation page (runtime/page/)
Each text is cut into sentences (runtime/text_pieces.py) that decode as rows of the continuous
batcher (runtime/server_batcher.py) and are put back together: no text is cut short. Parameters
come as a JSON body, form fields or a query string, as LibreTranslate takes them. Errors have
LibreTranslate's shape, {"error": message}, with 400 (bad request), 403 (API key, or suggestions,
which this server does not take, or files where they are turned off), 404 (no such file), 405 (wrong method), 413 (body too large), 503
(queue full or shutting down).
"""
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from modmt.runtime.errors import ModmtError
from modmt.runtime.html_text import join_html, split_html, text_of
from modmt.runtime.server_batcher import Batcher, Busy
from modmt.runtime.text_pieces import join_pieces, pieces_of, split_text

PAGE = Path(__file__).parent / "page"


@dataclass
class ServerSettings:
    char_limit: int = 5000             # characters per request, over all of q
    batch_limit: int = 64              # texts per request (q as a list)
    max_body_bytes: int = 1 << 20
    api_keys: frozenset | None = None  # None: no key needed (api_key accepted and ignored)
    alternatives_limit: int = 3        # LibreTranslate's default
    split: str = "sentences"           # or "none": a text is one piece unless over piece_tokens
    piece_tokens: int = 512            # a piece over this is split further (the model's input limit)
    files_dir: Path | None = None      # where /translate_file keeps translations for download; None: files off


FILE_FORMATS = {".txt": "text", ".html": "html", ".htm": "html"}  # /translate_file: suffix -> format
FILE_LIFETIME_S = 1800                                         # a translated file is kept 30 minutes
STORED_NAME = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9._-]{1,120}")


def store_file(folder: Path, name: str, text: str) -> str:
    """Write a translated file as <random id>.<name> (atomically: a replica sharing the folder never reads half
    a file) and remove those older than FILE_LIFETIME_S; returns the stored name."""
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("*"):
        try:
            if STORED_NAME.fullmatch(old.name) and now - old.stat().st_mtime > FILE_LIFETIME_S:
                old.unlink()
        except OSError:
            pass  # another replica removed it first
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-120:].lstrip(".") or "file.txt"
    stored = f"{uuid.uuid4().hex}.{safe}"
    partial = folder / f".{stored}.part"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, folder / stored)
    return stored


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


def create_app(batcher: Batcher, registry, settings: ServerSettings, metrics=None, detector=None, on_hangup=None):
    """metrics: a ServerMetrics (GET /metrics); detector: a LanguageDetector over the held sources
    (source=auto, /detect); both made here when not given. on_hangup(): called on SIGHUP (the CLI reloads)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from modmt.runtime.language_detection import LanguageDetector
    from modmt.runtime.server_metrics import CONTENT_TYPE_LATEST, ServerMetrics
    from modmt.runtime.server_spec import openapi_spec

    # What is served is read from the batcher at each request: a reload (runtime/server_cli.py) swaps its backends.
    detectors = {}

    def served() -> tuple[list, list, LanguageDetector]:
        """(directions, source languages, a detector over those sources) as served now."""
        directions = sorted(batcher.backends)
        sources = sorted({s for s, _ in directions})
        if detector is not None:
            return directions, sources, detector
        if tuple(sources) not in detectors:
            detectors.clear()
            detectors[tuple(sources)] = LanguageDetector(sources)
        return directions, sources, detectors[tuple(sources)]

    served()  # the first detector now, not in the first request
    if metrics is None:
        metrics = batcher.metrics or ServerMetrics()
    batcher.metrics = metrics
    metrics.watch(batcher)

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
            try:
                form = await request.form()
            except Exception as e:
                raise BadRequest(f"Invalid request: the multipart body cannot be read ({str(e)[:80]})") from None
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
        if code == "auto" and name == "source":
            return code
        if code not in registry.codes:
            raise BadRequest(f"{code} is not supported")
        return code

    def texts_of(params: dict, name: str = "q") -> tuple[object, list[str]]:
        q = params.get(name)
        texts = q if isinstance(q, list) else [q]
        if q is None or q == "" or q == [] or not all(isinstance(t, str) for t in texts):
            raise BadRequest(f"Invalid request: missing {name} parameter")
        if len(texts) > settings.batch_limit:
            raise BadRequest(f"Invalid request: request ({len(texts)}) exceeds text limit ({settings.batch_limit})")
        chars = sum(len(t) for t in texts)
        if chars > settings.char_limit:
            raise BadRequest(f"Invalid request: request ({chars}) exceeds text limit ({settings.char_limit})")
        return q, texts

    def alternatives_of(params: dict) -> int:
        value = params.get("alternatives")
        if value in (None, ""):
            return 0
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise BadRequest("Invalid request: alternatives is a whole number") from None
        if count > settings.alternatives_limit:
            raise BadRequest(f"Invalid request: alternatives ({count}) exceeds the limit "
                             f"({settings.alternatives_limit})")
        if count < 0:
            raise BadRequest("Invalid request: alternatives is 0 or more")
        return count

    def detected_source(text: str, tgt: str) -> tuple[str, float]:
        """The most likely held source language that has a direction to tgt (a blank text: any, at 0 %)."""
        if not text.strip():
            return next(((s, 0.0) for s in served()[1] if (s, tgt) in batcher.backends), (tgt, 0.0))
        ranked = [(code, p) for code, p in served()[2].rank(text) if (code, tgt) in batcher.backends]
        if not ranked:
            raise BadRequest(f"Invalid request: no language with a direction to {tgt} was detected; give source")
        return ranked[0]

    def pieces(text: str, src: str, backend) -> list[tuple[bool, str]]:
        if settings.split == "sentences":
            return split_text(text, src, backend.count_tokens, settings.piece_tokens)
        return split_text(text, src, backend.count_tokens, settings.piece_tokens, sentences=False)

    async def translate_pieces(request, runs: list[tuple[str, tuple]], alternatives: int):
        """runs: (text, (src, tgt, w)); per run [best, alternative, ...] and the count cut at max_new_tokens.
        A client that goes away cancels its work."""
        work = asyncio.ensure_future(batcher.translate([t for t, _ in runs], [d for _, d in runs], alternatives,
                                                       detail=True))
        while True:
            done, _ = await asyncio.wait({work}, timeout=0.5)
            if done:
                return work.result()
            if await request.is_disconnected():
                work.cancel()
                raise asyncio.CancelledError

    async def translate_texts(request, texts: list[str], src: str, tgt: str, fmt: str, alternatives: int, w):
        """Each text cut into pieces, translated, put back together: (outputs, alternatives per text, detected
        language per text, count of pieces cut at max_new_tokens)."""
        detected, layouts, runs = [], [], []
        for text in texts:
            # html: the text runs between tags are translated (and detected), the markup kept
            markup, indices = split_html(text) if fmt == "html" else (None, None)
            parts = [text_of(markup[i]) for i in indices] if markup is not None else ([text] if text.strip() else [])
            text_src, confidence = (detected_source(" ".join(parts), tgt) if src == "auto" else (src, None))
            detected.append({"confidence": confidence or 0.0, "language": text_src})
            backend = batcher.backends.get((text_src, tgt))
            if backend is None:
                raise BadRequest(f"{text_src}->{tgt} is not served here; GET /languages lists the directions")
            try:
                backend.check(text_src, tgt, w or None)
            except ModmtError as e:
                raise BadRequest(f"Invalid request: {e}") from None
            segments = [pieces(part, text_src, backend) for part in parts]
            layouts.append((markup, indices, segments, len(runs)))
            runs += [(p, (text_src, tgt, w or None)) for seg in segments for p in pieces_of(seg)]
        translated, truncated = await translate_pieces(request, runs, alternatives) if runs else ([], 0)
        outputs, alternates = [], []
        for markup, indices, segments, at in layouts:
            versions = []
            for j in range(1 + alternatives):  # version j: each piece's j-th hypothesis, or its best
                joined, cursor = [], at
                for seg in segments:
                    count = len(pieces_of(seg))
                    picks = [r[j] if j < len(r) else r[0] for r in translated[cursor:cursor + count]]
                    joined.append(join_pieces(seg, picks))
                    cursor += count
                version = join_html(markup, indices, joined) if markup is not None else (joined[0] if joined else "")
                if version not in versions:
                    versions.append(version)
            outputs.append(versions[0])
            alternates.append(versions[1:])
        return outputs, alternates, detected, truncated

    def answer_failure(e: BaseException) -> tuple[JSONResponse, int]:
        """A handler's exception as LibreTranslate's error shape, and its status for the metrics."""
        if isinstance(e, BadRequest):
            return error(str(e), e.status), e.status
        if isinstance(e, Busy):
            return error(str(e), 503), 503
        if isinstance(e, asyncio.CancelledError):  # the client went away; nobody reads this answer
            return error("the client closed the connection", 499), 499
        return error(f"internal error ({type(e).__name__}); see the server log", 500), 500

    def metered(handler):
        """A translating endpoint: every answer counted in the metrics under the direction the handler names
        (request.state.direction), every failure in LibreTranslate's error shape, never a traceback."""
        async def endpoint(request):
            started, status = time.monotonic(), 200
            request.state.direction = ("", "")
            try:
                return await handler(request)
            except (asyncio.CancelledError, Exception) as e:
                response, status = answer_failure(e)
                return response
            finally:
                metrics.request(request.state.direction, status,
                                time.monotonic() - started if status == 200 else None)
        return endpoint

    def weights_of(params: dict):
        w = params.get("w")
        if w is not None and not isinstance(w, str):
            raise BadRequest("Invalid request: w is IN:OUT, e.g. 3:7")
        return w

    @metered
    async def translate(request):
        params = await parameters(request)
        check_key(params)
        q, texts = texts_of(params)
        src, tgt = language(params, "source"), language(params, "target")
        request.state.direction = (src, tgt)
        fmt = params.get("format", "text") or "text"
        if fmt not in ("text", "html"):
            raise BadRequest(f"Invalid request: format is text or html, got {str(fmt)[:40]!r}")
        alternatives = alternatives_of(params)
        outputs, alternates, detected, truncated = await translate_texts(request, texts, src, tgt, fmt, alternatives,
                                                                         weights_of(params))
        single = not isinstance(q, list)
        body = {"translatedText": outputs[0] if single else outputs}
        if alternatives:
            body["alternatives"] = alternates[0] if single else alternates
        if src == "auto":
            body["detectedLanguage"] = detected[0] if single else detected
        headers = {"X-Modmt-Truncated": str(truncated)} if truncated else None
        return JSONResponse(body, headers=headers)

    @metered
    async def translate_file(request):
        """A .txt or .html file, translated whole (sentence by sentence, markup kept); the answer is the
        URL it can be downloaded from, as LibreTranslate's. Files live in settings.files_dir, so replicas
        that share that folder serve each other's downloads."""
        if settings.files_dir is None:
            raise BadRequest("Files translation is disabled on this server", 403)
        params = await parameters(request)
        check_key(params)
        upload = params.get("file")
        if not hasattr(upload, "filename") or not upload.filename:
            raise BadRequest("Invalid request: missing file parameter")
        name = Path(upload.filename).name
        suffix = Path(name).suffix.lower()
        if suffix not in FILE_FORMATS:
            raise BadRequest(f"Invalid request: file format not supported (send {', '.join(FILE_FORMATS)})")
        try:
            text = (await upload.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("Invalid request: the file is not UTF-8 text") from None
        src, tgt = language(params, "source"), language(params, "target")
        request.state.direction = (src, tgt)
        outputs, _, _, _ = await translate_texts(request, [text], src, tgt, FILE_FORMATS[suffix], 0,
                                                 weights_of(params))
        stored = store_file(settings.files_dir, name, outputs[0])
        return JSONResponse({"translatedFileUrl": str(request.url_for("download_file", filename=stored))})

    async def download_file(request):
        filename = request.path_params["filename"]
        if settings.files_dir is None:
            return error("Files translation is disabled on this server", 403)
        if not STORED_NAME.fullmatch(filename) or not (settings.files_dir / filename).is_file():
            return error("Invalid filename: no such translated file (files are kept "
                         f"{FILE_LIFETIME_S // 60} minutes)", 404)
        return FileResponse(settings.files_dir / filename, filename=filename.split(".", 1)[1])

    async def detect(request):
        try:
            params = await parameters(request)
            check_key(params)
            q, texts = texts_of(params)
        except BadRequest as e:
            return error(str(e), e.status)
        _, sources, detector = served()
        ranked = detector.rank(texts[0])
        return JSONResponse([{"confidence": p, "language": code} for code, p in ranked if p >= 1.0] or
                            [{"confidence": 0.0, "language": sources[0] if sources else "en"}])

    async def languages(request):
        directions, sources, _ = served()
        return JSONResponse([{"code": s, "name": registry.get(s).name,
                              "targets": sorted(t for s2, t in directions if s2 == s)} for s in sources])

    async def direction_weights(request):
        """modmt's own: the merge weights each direction uses when a request names no w, and whether modmt-tune
        chose them."""
        return JSONResponse([{"source": s, "target": t, **batcher.backends[(s, t)].default_weights(s, t)}
                             for s, t in served()[0] if (s, t) in batcher.backends])

    async def frontend_settings(request):
        directions = served()[0]
        first = directions[0] if directions else ("en", "en")
        return JSONResponse({
            "charLimit": settings.char_limit, "frontendTimeout": 500, "apiKeys": settings.api_keys is not None,
            "keyRequired": settings.api_keys is not None, "suggestions": False,
            "filesTranslation": settings.files_dir is not None,
            "supportedFilesFormat": list(FILE_FORMATS) if settings.files_dir is not None else [],
            "language": {"source": {"code": first[0], "name": registry.get(first[0]).name},
                         "target": {"code": first[1], "name": registry.get(first[1]).name}}})

    async def health(request):
        if batcher.closed:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics_page(request):
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def spec(request):
        directions, sources, _ = served()
        return JSONResponse(openapi_spec(sources, sorted({t for _, t in directions}), settings))

    async def page(request):
        return FileResponse(PAGE / "index.html")

    async def suggestions_disabled(request):
        return error("Suggestions are disabled on this server", 403)

    async def http_error(request, exc):  # 404 and 405 in LibreTranslate's shape
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        if on_hangup is not None and hasattr(signal, "SIGHUP"):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
        yield
        batcher.close()

    routes = [Route("/translate", translate, methods=["POST"]),
              Route("/detect", detect, methods=["POST"]),
              Route("/languages", languages, methods=["GET"]),
              Route("/directions", direction_weights, methods=["GET"]),
              Route("/frontend/settings", frontend_settings, methods=["GET"]),
              Route("/spec", spec, methods=["GET"]),
              Route("/health", health, methods=["GET"]),
              Route("/metrics", metrics_page, methods=["GET"]),
              Route("/", page, methods=["GET"]),
              Mount("/static", StaticFiles(directory=PAGE), name="static"),
              Route("/translate_file", translate_file, methods=["POST"]),
              Route("/download_file/{filename}", download_file, methods=["GET"], name="download_file"),
              Route("/suggest", suggestions_disabled, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
