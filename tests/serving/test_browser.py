"""The explorer page that ``attnrnn serve`` answers at ``/``, driven in real headless
Chromium against a live server (uvicorn on a free loopback port) over the tiny runs
of tests/serving/conftest.py (a review classifier, a character-level date translator,
a tone speech recognizer and a dialogue summarizer).

A person's path through the page: pick a model, type a sentence (or upload a WAV),
submit, read the output, hover its tokens. What the page shows is checked against
the Python API's own answer for the same input (same tokens, same attention), and the
highlight against the rule tests/test_explorer.py states: hovering output token i
highlights exactly the source tokens j with ``attention[i][j] >= 0.5 * max(row i)``.

Chromium missing is a failure, not a skip (.ci/run installs it).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

STRONG = 0.5
WAIT_SECONDS = 30


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def server(models, live_server) -> Iterator[str]:
    """The four tiny runs of conftest.py served on a free loopback port; the base URL."""
    from attnrnn.serving.app import create_app
    from attnrnn.serving.settings import ServeSettings

    with live_server(create_app(models, ServeSettings(log_requests=False))) as live:
        yield live.url


# --------------------------------------------------------------------------- the browser


def wait_for(browser: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: condition(driver))


def by_testid(browser: Any, testid: str) -> list[Any]:
    return browser.find_elements("css selector", f'[data-testid="{testid}"]')


def open_explorer(browser: Any, server: str, model: str) -> None:
    """Load ``/`` and pick ``model`` once the model list has arrived."""
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    wait_for(
        browser, lambda b: b.find_element("id", "query").get_attribute("data-state") == "ready"
    )
    Select(by_testid(browser, "model-select")[0]).select_by_value(model)


def submit_and_wait(browser: Any) -> str:
    """Click Explain and wait for the answer; returns the results' state."""
    browser.execute_script("document.getElementById('results').dataset.state = 'sent'")
    by_testid(browser, "submit")[0].click()
    return wait_for(
        browser,
        lambda b: (
            (state := b.find_element("id", "results").get_attribute("data-state"))
            in ("done", "error")
            and state
        ),
    )


def hover(browser: Any, element: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser, duration=0).move_to_element(element).perform()


def highlighted(browser: Any, testid: str) -> set[int]:
    return set(
        browser.execute_script(
            "return Array.from(document.querySelectorAll("
            "'[data-testid=\"' + arguments[0] + '\"]'))"
            ".flatMap((e, i) => e.classList.contains('highlighted') ? [i] : [])",
            testid,
        )
    )


def weights(browser: Any, testid: str) -> list[float]:
    """The data-weight of every ``testid`` token, in one round trip."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll("
        "'[data-testid=\"' + arguments[0] + '\"]')).map(e => Number(e.dataset.weight))",
        testid,
    )


def strong_links(row: list[float]) -> set[int]:
    largest = max(row)
    return {j for j, value in enumerate(row) if largest > 0 and value >= STRONG * largest}


def colours_in(png: bytes) -> int:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    return len(colours)


# --------------------------------------------------------------------------- the tests


def test_page_lists_the_served_models(browser, server):
    open_explorer(browser, server, "dates")
    options = by_testid(browser, "model-select")[0].find_elements("tag name", "option")
    assert {option.text for option in options} == {
        "classifier (classification)",
        "dates (translation)",
        "tones (speech)",
        "dialogues (summarization)",
    }
    assert "translation" in by_testid(browser, "model-info")[0].text
    assert by_testid(browser, "text-input")[0].is_displayed()
    assert not by_testid(browser, "audio-input")[0].is_displayed()


def test_translate_a_sentence_and_hover_its_tokens(browser, server, models):
    text = "9 April 2023"
    expected = models["dates"].translate([text], beam=2, n_best=2)[0]
    open_explorer(browser, server, "dates")
    by_testid(browser, "text-input")[0].send_keys(text)
    by_testid(browser, "beam")[0].send_keys("2")
    by_testid(browser, "n-best")[0].send_keys("2")
    assert submit_and_wait(browser) == "done"

    assert by_testid(browser, "output-text")[0].text == expected.translation
    assert "1 result(s) from dates" in by_testid(browser, "status")[0].text
    sources = by_testid(browser, "source-token")
    targets = by_testid(browser, "target-token")
    visible = [token.replace(" ", "\u2423") for token in expected.source_tokens]
    assert [token.text for token in sources] == visible
    assert len(targets) == len(expected.target_tokens)
    assert len(by_testid(browser, "nbest-option")) == 1 + len(expected.alternatives)
    for i, target in enumerate(targets):
        hover(browser, target)
        row = expected.attention[i]
        assert highlighted(browser, "source-token") == strong_links(row)
        assert weights(browser, "source-token") == pytest.approx(row, abs=1e-6)
    hover(browser, sources[0])
    column_links = {i for i, row in enumerate(expected.attention) if 0 in strong_links(row)}
    assert highlighted(browser, "target-token") == column_links
    assert colours_in(browser.get_screenshot_as_png()) > 40


def test_errors_are_shown_not_thrown(browser, server):
    open_explorer(browser, server, "dates")
    assert submit_and_wait(browser) == "error"  # nothing typed
    assert "type some text" in by_testid(browser, "status")[0].text
    by_testid(browser, "text-input")[0].send_keys("1 May 2001")
    by_testid(browser, "beam")[0].send_keys("999")
    browser.execute_script("document.getElementById('beam').removeAttribute('max')")
    assert submit_and_wait(browser) == "error"
    status = by_testid(browser, "status")[0]
    assert "HTTP 422" in status.text and "beam" in status.text
    assert "error" in status.get_attribute("class")


def test_classify_a_text(browser, server, models):
    text = "a truly great and moving film"
    expected = models["classifier"].predict([text])[0]
    open_explorer(browser, server, "classifier")
    assert not by_testid(browser, "beam")[0].is_displayed()  # no search options
    by_testid(browser, "text-input")[0].send_keys(text)
    assert submit_and_wait(browser) == "done"

    assert by_testid(browser, "label")[0].text.startswith(expected.label + " ")
    shown = {
        p.get_attribute("data-label"): float(p.get_attribute("data-probability"))
        for p in by_testid(browser, "probability")
    }
    assert shown == pytest.approx(expected.probabilities)
    shaded = weights(browser, "token")
    assert shaded == pytest.approx(expected.weights)
    top = [int(word.get_attribute("data-index")) for word in by_testid(browser, "top-word")]
    assert top == sorted(range(len(shaded)), key=lambda j: -shaded[j])[:3]


def test_summarize_with_copy_probabilities(browser, server, models):
    text = "#Person1#: Hello anna, would you like some tea?\n#Person2#: Yes please."
    expected = models["dialogues"].summarize([text])[0]
    open_explorer(browser, server, "dialogues")
    browser.execute_script("document.getElementById('text').value = arguments[0]", text)
    assert submit_and_wait(browser) == "done"

    assert by_testid(browser, "output-text")[0].text == expected.summary
    targets = by_testid(browser, "target-token")
    copies = [float(t.get_attribute("data-copy")) for t in targets]
    assert copies == pytest.approx(expected.copy_probability)
    hover(browser, targets[0])
    assert highlighted(browser, "source-token") == strong_links(expected.attention[0])


def test_upload_a_wav_and_hover_the_transcript(browser, server, models, tone_files):
    wav = tone_files[1]  # 16 kHz: the server resamples it as the Python API does
    expected = models["tones"].transcribe([str(wav)])[0]
    open_explorer(browser, server, "tones")
    assert not by_testid(browser, "text-input")[0].is_displayed()
    by_testid(browser, "audio-input")[0].send_keys(str(wav))
    assert submit_and_wait(browser) == "done"

    assert by_testid(browser, "output-text")[0].text == expected.text
    canvas = by_testid(browser, "spectrogram")[0]
    assert int(canvas.get_attribute("width")) == expected.features.shape[0]
    assert int(canvas.get_attribute("height")) == expected.features.shape[1]
    assert colours_in(canvas.screenshot_as_png) > 20
    units = by_testid(browser, "target-token")
    assert len(units) == len(expected.target_tokens)
    for i, unit in enumerate(units):
        hover(browser, unit)
        marks = browser.execute_script(
            "return Array.from(document.querySelectorAll('.frame-mark.highlighted'))"
            ".map(e => Number(e.dataset.column))"
        )
        assert set(marks) == strong_links(expected.attention[i])
    assert colours_in(browser.get_screenshot_as_png()) > 40


def test_record_from_the_microphone_and_transcribe(browser, server):
    open_explorer(browser, server, "tones")
    button = by_testid(browser, "record")[0]
    button.click()
    wait_for(browser, lambda b: button.get_attribute("aria-pressed") == "true")
    time.sleep(0.6)
    button.click()
    wait_for(browser, lambda b: "recorded" in by_testid(b, "status")[0].text)
    assert submit_and_wait(browser) == "done", by_testid(browser, "status")[0].text
    assert by_testid(browser, "spectrogram") and by_testid(browser, "target-token")


def test_page_assets_are_served(server):
    import urllib.request

    for path, kind in (("/", "text/html"), ("/static/explorer.js", "javascript")):
        with urllib.request.urlopen(server + path, timeout=WAIT_SECONDS) as response:
            assert kind in response.headers["Content-Type"]
            assert response.status == 200
