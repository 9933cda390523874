"""GET /spec: the OpenAPI 3 document of what `modmt serve` answers (LibreTranslate's paths, modmt's `w`).

Written out here rather than generated, so that it says what the handlers in runtime/server_app.py
accept and answer, limits included; tests/test_server.py fuzzes the server from it (schemathesis).
"""

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _errors(*codes: int) -> dict:
    text = {400: "Invalid request", 403: "Invalid API key, or disabled", 404: "No such file", 405: "Wrong method",
            413: "Body too large", 499: "Client went away", 500: "Internal error",
            503: "Queue full or shutting down"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


def openapi_spec(sources: list[str], targets: list[str], settings) -> dict:
    text_or_list = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": settings.char_limit},
                              {"type": "array", "items": {"type": "string", "maxLength": settings.char_limit},
                               "minItems": 1, "maxItems": settings.batch_limit}]}
    translate_body = {
        "type": "object", "required": ["q", "source", "target"],
        "properties": {
            "q": text_or_list,
            "source": {"type": "string", "enum": [*sources, "auto"], "description": "a language code, or auto"},
            "target": {"type": "string", "enum": targets},
            "format": {"type": "string", "enum": ["text", "html"], "default": "text"},
            "alternatives": {"type": "integer", "minimum": 0, "maximum": settings.alternatives_limit, "default": 0},
            "api_key": {"type": "string"},
            "w": {"type": "string", "pattern": r"^\d+(\.\d+)?:\d+(\.\d+)?$|^learned$",
                  "description": "modmt: the merge weights IN:OUT of LoRA_in(source) and LoRA_out(target), "
                                 "on a shared base"},
        }}
    file_body = {
        "type": "object", "required": ["file", "source", "target"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "a .txt or .html file, UTF-8"},
            "source": translate_body["properties"]["source"], "target": translate_body["properties"]["target"],
            "api_key": {"type": "string"}, "w": translate_body["properties"]["w"]}}
    detected = {"type": "object", "properties": {"confidence": {"type": "number"}, "language": {"type": "string"}}}
    translated = {"type": "object", "required": ["translatedText"], "properties": {
        "translatedText": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "alternatives": {"type": "array"},
        "detectedLanguage": {"oneOf": [detected, {"type": "array", "items": detected}]}}}
    language = {"type": "object", "properties": {"code": {"type": "string"}, "name": {"type": "string"},
                                                 "targets": {"type": "array", "items": {"type": "string"}}}}
    body = lambda schema: {"required": True, "content": {"application/json": {"schema": schema},  # noqa: E731
                                                         "application/x-www-form-urlencoded": {"schema": schema}}}
    ok = lambda schema: {"description": "OK", "content": {"application/json": {"schema": schema}}}  # noqa: E731
    return {
        "openapi": "3.0.3",
        "info": {"title": "modmt serve", "version": "1",
                 "description": "LibreTranslate's API over modular LoRA directions; source languages: "
                                + ", ".join(sources)},
        "paths": {
            "/translate": {"post": {"summary": "Translate text", "requestBody": body(translate_body),
                                    "responses": {"200": ok(translated), **_errors(400, 403, 413, 500, 503)}}},
            "/detect": {"post": {"summary": "Detect the language of a text", "requestBody": body({
                "type": "object", "required": ["q"], "properties": {"q": text_or_list, "api_key": {"type": "string"}}}),
                "responses": {"200": ok({"type": "array", "items": detected}), **_errors(400, 403, 413)}}},
            "/translate_file": {"post": {
                "summary": "Translate a .txt or .html file; the answer is the URL to download it from",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": file_body}}},
                "responses": {"200": ok({"type": "object", "required": ["translatedFileUrl"],
                                         "properties": {"translatedFileUrl": {"type": "string"}}}),
                              **_errors(400, 403, 413, 500, 503)}}},
            "/download_file/{filename}": {"get": {
                "summary": "A translated file (kept 30 minutes)",
                "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The file", "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                              **_errors(403, 404)}}},
            "/languages": {"get": {"summary": "Languages and their targets",
                                   "responses": {"200": ok({"type": "array", "items": language})}}},
            "/directions": {"get": {
                "summary": "The merge weights each direction uses when a request names no w (modmt's own)",
                "responses": {"200": ok({"type": "array", "items": {
                    "type": "object", "required": ["source", "target", "w", "tuned"],
                    "properties": {"source": {"type": "string"}, "target": {"type": "string"},
                                   "w": {"type": ["string", "null"]}, "tuned": {"type": "boolean"},
                                   "dev_chrf": {"type": "number"}}}})}}},
            "/frontend/settings": {"get": {"summary": "Settings a front end reads",
                                           "responses": {"200": ok({"type": "object"})}}},
            "/health": {"get": {"summary": "Liveness", "responses": {
                "200": ok({"type": "object", "properties": {"status": {"type": "string"}}}),
                "503": {"description": "Shutting down"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "OpenMetrics text", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
    }
