"""A pytest plugin under which LibreTranslate's own API tests (libretranslate/tests/test_api, unchanged) run
against a server over HTTP: their `client` fixture, a Flask test client in LibreTranslate's conftest, is an
HTTP client of the server at $LIBRETRANSLATE_API_URL here, with the two things those tests read from a Flask
response (`data`, the body's bytes, and `json`, the parsed body)."""
import json
import os

import httpx
import pytest


class HttpResponse:
    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        self.headers = response.headers
        self.data = response.content

    @property
    def json(self):
        try:
            return json.loads(self.data)
        except ValueError:
            return None


class HttpClient:
    """Flask's test-client calls (`get`, `post` with `data=` as a form or `json=`) sent over HTTP."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def open(self, method: str, path: str, data=None, json=None, query_string=None, headers=None):
        return HttpResponse(httpx.request(method, self.url + path, data=data, json=json, params=query_string,
                                          headers=headers, timeout=120))

    def get(self, path, **kwargs):
        return self.open("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.open("POST", path, **kwargs)


@pytest.fixture()
def client():
    return HttpClient(os.environ["LIBRETRANSLATE_API_URL"])
