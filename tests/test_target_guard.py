"""The target-language guard: which hypothesis answers, when it may override the beam, and where it is wired in."""
import re

import pytest

from modmt.runtime.decoding import DecodeSettings, Finished, hypotheses_of
from modmt.runtime.target_guard import GUARDED, OFF_TARGET, ON_TARGET, UNSURE, TargetGuard, judgeable

POOL = ["en", "fr", "de", "ja", "zh"]
ENGLISH = "The package provides the command line tools for managing the network interfaces."
FRENCH = "Le paquet fournit les outils en ligne de commande pour gérer les interfaces réseau."
GERMAN = "Das Paket stellt die Kommandozeilenwerkzeuge zur Verwaltung der Netzwerkschnittstellen bereit."
JAPANESE = "このパッケージはネットワークインターフェースを管理するためのコマンドラインツールを提供します。"
CHINESE = "该软件包提供用于管理网络接口的命令行工具。"


@pytest.fixture(scope="module")
def guard():
    return TargetGuard(POOL)


def test_an_english_best_under_a_french_alternative_answers_in_french(guard):
    index, verdict = guard.choose([ENGLISH, FRENCH, GERMAN], ENGLISH, "fr")
    assert (index, verdict) == (1, GUARDED)
    assert guard.order([ENGLISH, FRENCH], ENGLISH, "fr") == [FRENCH, ENGLISH]


def test_a_best_in_the_target_language_stands_even_with_others_below(guard):
    assert guard.choose([FRENCH, ENGLISH], ENGLISH, "fr") == (0, ON_TARGET)
    assert guard.choose([JAPANESE, CHINESE], CHINESE, "ja") == (0, ON_TARGET)
    assert guard.choose([CHINESE, JAPANESE], JAPANESE, "zh") == (0, ON_TARGET)


def test_a_copy_of_the_source_is_off_target_and_the_translation_below_it_answers(guard):
    assert guard.choose([CHINESE, JAPANESE], CHINESE, "ja") == (1, GUARDED)
    assert guard.judge(GERMAN, GERMAN, "en") == OFF_TARGET
    # English into English may echo its source: that is the target language
    assert guard.judge(ENGLISH, ENGLISH, "en") == ON_TARGET


def test_with_no_hypothesis_in_the_target_language_the_best_stays_and_is_counted(guard):
    before = guard.counts.off_target
    assert guard.choose([ENGLISH, GERMAN], ENGLISH, "ja") == (0, OFF_TARGET)
    assert guard.choose([ENGLISH], ENGLISH, "fr") == (0, OFF_TARGET)  # greedy search: one hypothesis, labelled
    assert guard.counts.off_target == before + 2


@pytest.mark.parametrize("text", ["Linux", "GNU Emacs 29.1", "ls -la /usr/bin | grep x", "3.14159 2.71828 1.41421",
                                  "東京大学", "libfoo-dev (>= 1.2.3), libbar0"])
def test_names_numbers_code_and_short_texts_are_never_overridden(guard, text):
    assert not judgeable(text) or guard.judge(text, "", "fr") == UNSURE
    assert guard.choose([text, FRENCH], ENGLISH, "fr") == (0, UNSURE)


def test_a_target_the_detector_does_not_know_is_never_judged():
    guard = TargetGuard(["en", "fr", "tlh"])  # Klingon: not among py3langid's languages
    assert guard.choose([ENGLISH, FRENCH], ENGLISH, "tlh") == (0, UNSURE)


def test_the_counts_say_what_the_guard_did(guard):
    fresh = TargetGuard(POOL)
    fresh.choose([ENGLISH, FRENCH], ENGLISH, "fr")
    fresh.choose([FRENCH], ENGLISH, "fr")
    fresh.choose(["42"], "42", "fr")
    c = fresh.counts
    assert (c.judged, c.guarded, c.off_target) == (2, 1, 0)
    assert "1 outputs replaced" in c.summary() and "of 2" in c.summary()


class Letters:
    """A tokenizer of one character per token id (ord), enough for hypotheses_of."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(map(chr, ids))


def test_hypotheses_are_the_best_then_the_distinct_others_in_beam_order():
    f = Finished(0, [ord("a")], [[ord("a")], [ord("b")], [ord("a")], [ord("c")]])
    assert hypotheses_of(f, Letters()) == ["a", "b", "c"]


def test_the_offline_api_answers_with_the_guards_choice_and_turns_it_off_on_request(tiny_export):
    """On the tiny model no output is a language, so the guard is checked through its hook: a guard that always
    finds the best off-target and the last hypothesis on-target must make every multi-hypothesis answer change."""
    from modmt.runtime.translator import Translator

    translator = Translator(tiny_export, provider="cpu")
    texts = ["hello world", "a second line of text", "", "three"]
    settings = DecodeSettings(beam=3, max_new_tokens=6)
    plain = translator.translate(texts, settings, guard=False)

    class LastIsTarget:
        def __init__(self):
            self.seen = []

        def choose(self, hypotheses, source, tgt):
            self.seen.append((source, tgt, len(hypotheses)))
            return len(hypotheses) - 1, GUARDED

    fake = LastIsTarget()
    translator.__dict__["guard"] = fake
    guarded = translator.translate(texts, settings)
    assert [s for s, _, _ in fake.seen] and all(t == "zh" for _, t, _ in fake.seen)
    assert sorted(s for s, _, _ in fake.seen) == sorted(t for t in texts if t)
    assert guarded[2] == "" and plain[2] == ""
    changed = [i for i, (s, _, n) in enumerate(fake.seen) if n > 1]
    assert changed, "beam 3 gave no sentence more than one distinct hypothesis"
    assert sum(g != p for g, p in zip(guarded, plain)) == len(changed)
    assert translator.translate(texts, settings, guard=False) == plain  # off: the beam's best, as before


def test_modmt_translate_sums_up_what_the_guard_did_and_no_guard_turns_it_off(tmp_path, tiny_export):
    import subprocess
    import sys
    from pathlib import Path

    source = tmp_path / "in.txt"
    source.write_text("hello world\nthe second line\n\nlast\n", encoding="utf-8")
    runs = {}
    for flag in ("--guard", "--no-guard"):
        out = tmp_path / f"out{flag}.txt"
        runs[flag] = subprocess.run([str(Path(sys.executable).parent / "modmt-translate"), str(tiny_export), "-i",
                                     str(source), "-o", str(out), "--beam", "2", "--max-new-tokens", "4", flag],
                                    capture_output=True, text=True, timeout=300)
        assert runs[flag].returncode == 0, runs[flag].stderr
        assert len(out.read_text(encoding="utf-8").splitlines()) == 4
    assert re.search(r"target-language guard: \d+ outputs replaced .* \d+ still off-target, of \d+ it could judge",
                     runs["--guard"].stderr)
    assert "target-language guard" not in runs["--no-guard"].stderr
