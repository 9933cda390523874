"""LibreTranslate's own API tests and its own web app, unchanged, against `modmt serve` over HTTP.

Neither can be installed or vendored here (no network; LibreTranslate is AGPL-3.0, modmt Apache-2.0), so
both come from a LibreTranslate source tree at $LIBRETRANSLATE_SRC (`.ci/run` unpacks one when the machine
has a copy; these tests are skipped otherwise). Its tests translate en->es, so the server holds a tiny
en/es pool (Spanish added through a languages file, as a user adds a language).
"""
import json
import os
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest

from test_server import Server, direct, free_port

SOURCE = Path(os.environ.get("LIBRETRANSLATE_SRC", "/nonexistent"))
pytestmark = pytest.mark.skipif(not (SOURCE / "libretranslate" / "tests" / "test_api").is_dir(),
                                reason="no LibreTranslate source tree at $LIBRETRANSLATE_SRC (.ci/run unpacks one "
                                       "when the machine has a copy)")

# Spanish beside the tiny corpus's 24 English sentences (train/tiny_sentences.tsv), line for line.
SPANISH = """El gato duerme en el sofá.
Bebo café todas las mañanas.
El tren sale a mediodía.
Ella lee un libro en el jardín.
Estamos aprendiendo un idioma nuevo.
Hoy hace buen tiempo.
Mi hermano trabaja en un hospital.
Los niños juegan en el parque.
Este programa convierte archivos de audio.
Una biblioteca para leer imágenes.
Documentación para el editor de texto.
Herramientas para gestionar conexiones de red.
El río fluye hacia el mar.
Él abrió la ventana.
La tienda cierra a las seis.
Archivos de desarrollo para la biblioteca de compresión.
La música está demasiado alta.
Caminamos por la playa.
Interfaz de línea de órdenes para la base de datos.
El pan está fresco.
Tipos de letra para el entorno de escritorio.
La reunión empieza mañana.
Un juego sencillo para niños.
El perro corre en la nieve.""".splitlines()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from modmt.runtime.languages import load_registry

    path = tmp_path_factory.mktemp("languages") / "languages.json"
    path.write_text(json.dumps({"languages": [{"code": "es", "name": "Spanish", "flores101": "spa",
                                               "flores200": "spa_Latn", "ddtp": "es"}]}), encoding="utf-8")
    return load_registry(path)


@pytest.fixture(scope="module")
def backends(tmp_path_factory, tiny_model_dir, registry):
    """An en/es pool on an int8 shared base: en->es, es->en and en->en."""
    from modmt.export.direction import ExportOptions
    from modmt.export.shared_base import export_all_directions
    from modmt.runtime.served_directions import load_backends
    from modmt.train.adapters import LoraSettings, train_pool
    from modmt.train.corpus import open_corpus
    from modmt.train.tiny import tiny_sentences, write_tiny_corpus
    from modmt.train.trainer import TrainSettings

    root = tmp_path_factory.mktemp("en-es")
    corpus = write_tiny_corpus(root / "corpus")
    english = tiny_sentences()["en"]
    (corpus / "train" / "en-es.tsv").write_text("".join(f"{e}\t{s}\n" for e, s in zip(english[:16], SPANISH[:16])),
                                                encoding="utf-8")
    for split, rows in (("dev", slice(16, 20)), ("devtest", slice(20, 24))):
        (corpus / split / "es.txt").write_text("\n".join(SPANISH[rows]) + "\n", encoding="utf-8")
    train_pool(tiny_model_dir, open_corpus(corpus, registry), registry, ["en", "es"], root / "pool",
               LoraSettings(rank=4, alpha=8), TrainSettings(epochs=2, learning_rate=1e-2, batch_size=4, save_steps=1000))
    export_all_directions(root / "pool", ExportOptions(quantize="int8"), root / "base", registry)
    return load_backends([str(root / "base")], provider="cpu")


@pytest.fixture(scope="module")
def server(backends, registry):
    with Server(backends, registry=registry) as running:
        yield running


def test_libretranslates_own_api_tests_pass(server, tmp_path):
    """libretranslate/tests/test_api/test_*.py, copied as they are (their conftest, which builds LibreTranslate's
    Flask app, is left out; tests/libretranslate/http_client.py gives their `client` fixture over HTTP)."""
    tests = sorted((SOURCE / "libretranslate" / "tests" / "test_api").glob("test_*.py"))
    assert len(tests) >= 6, tests
    for test in tests:
        shutil.copy(test, tmp_path / test.name)
    env = {**os.environ, "LIBRETRANSLATE_API_URL": server.url,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent / "libretranslate"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "http_client", "--noconftest", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout and "failed" not in run.stdout, run.stdout[-2000:]


def render_web_app(site: Path) -> None:
    """LibreTranslate's index.html and app.js rendered from its templates with jinja2, as its Flask app does
    with its defaults (no API keys, no URL prefix, English); the translation helpers return the English text."""
    import jinja2

    def gettext(text, **values):
        return text % values if values else text

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(SOURCE / "libretranslate" / "templates"))
    env.globals.update(_=gettext, _h=lambda text, **values: escape(gettext(text, **values)),
                       _e=lambda text, **values: json.dumps(gettext(text, **values)),
                       url_for=lambda endpoint, filename=None: f"/static/{filename}" if endpoint == "static" else "/")
    (site / "js").mkdir(parents=True)
    (site / "index.html").write_text(env.get_template("index.html").render(
        frontendTimeout=500, api_keys=[], version="modmt-test", swagger_url="/spec", available_locales=[],
        current_locale="en", alternate_locales=[], under_attack=False, hide_api=False), encoding="utf-8")
    (site / "js" / "app.js").write_text(env.get_template("app.js.template").render(
        url_prefix="", api_secret="", bogus_api_secret="", under_attack=False), encoding="utf-8")


def test_libretranslates_own_web_app_translates_through_modmt(server, backends, tmp_path):
    """LibreTranslate's page and app.js, served by nginx with its static files, every API path proxied to
    `modmt serve` (one origin, as the app expects): in headless Chromium it loads the languages, translates
    what is typed (it sends alternatives=3 with every request) and detects the source on "Auto Detect"."""
    from test_server import nginx_serving, page_in_chromium

    render_web_app(tmp_path / "site")
    site = (f"server {{ listen 127.0.0.1:{free_port()};\n"
            f"  location = / {{ root {tmp_path}/site; try_files /index.html =404; }}\n"
            f"  location = /js/app.js {{ root {tmp_path}/site; }}\n"
            f"  location /static/ {{ alias {SOURCE}/libretranslate/static/; }}\n"
            f"  location / {{ proxy_pass {server.url}; proxy_set_header Host $http_host; }}\n}}\n")
    with nginx_serving(tmp_path, site) as proxy, page_in_chromium(proxy) as page:
        source = "select[aria-labelledby=sourceLangLabel]"
        page.wait_for_selector(f"{source} option[value='es']", state="attached")

        def typed(src: str, tgt: str, text: str):
            """Pick the languages, type the text: the app's request and the server's answer."""
            page.select_option(source, src)
            page.select_option("select[aria-labelledby=targetLangLabel]", tgt)
            with page.expect_response(lambda r: r.url.endswith("/translate")) as answer:
                page.fill("#textarea1", text)
            assert answer.value.status == 200, answer.value.text()
            return answer.value.request.post_data_buffer or b"", answer.value.json()

        text = "The cat sleeps in the garden."
        sent, body = typed("en", "es", text)
        assert b"alternatives" in sent and isinstance(body["alternatives"], list)  # what LibreTranslate's app sends
        assert body["translatedText"] == direct(backends, text, "en", "es")
        page.wait_for_function(f"document.getElementById('textarea2').value === {json.dumps(body['translatedText'])}")
        assert page.evaluate("window._vueApp.error") in ("", None, False)

        spanish = "El perro duerme en el jardín y los niños juegan en el parque."
        _, body = typed("auto", "en", spanish)
        assert body["detectedLanguage"]["language"] == "es", body
        assert body["translatedText"] == direct(backends, spanish, "es", "en")
        page.wait_for_function("document.getElementById('sourceLangLabel').parentElement.textContent"
                               ".includes('Spanish')")
