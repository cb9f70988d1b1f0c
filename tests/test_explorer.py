"""The self-contained explorer page (attnrnn/explorer.py) in real headless Chromium:
every task's view, the hover links, the n-best switch, the keyboard, the legend, phone
width, a screenshot that is not blank, and text that stays text.

The highlight rule under test (the one explorer.js documents): output token i and
source position j are a strong link when ``attention[i][j] >= 0.5 * max(attention[i])``;
hovering output token i highlights exactly its strongly linked source tokens, so the
highlighted tokens are the ones with the largest weights of that row (each of them
weighs more than every token left out), and hovering source token j highlights the
output tokens strongly linked to j.

The browser is Debian's ``chromium`` with its ``chromium-driver`` (override the paths
with ATTNRNN_CHROMIUM / ATTNRNN_CHROMEDRIVER); when either is missing these tests fail
with a message saying what to install, they do not skip.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from attnrnn.explorer import (
    STATIC,
    embedded_json,
    explorer_page,
    spectrogram,
    write_explorer_html,
)

STRONG = 0.5


# --------------------------------------------------------------------------- the browser


def open_page(browser: Any, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1200, 900)
    browser.get(path.as_uri())
    WebDriverWait(browser, 10).until(
        lambda driver: (
            driver.execute_script("return document.getElementById('results').dataset.state")
            == "done"
        )
    )


def hover(browser: Any, element: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser, duration=0).move_to_element(element).perform()


def elements(browser: Any, testid: str, within: Any = None) -> list[Any]:
    return (within or browser).find_elements("css selector", f'[data-testid="{testid}"]')


# The state of a row of tokens in one round trip: (highlighted, data-weight) per token.
TOKEN_STATE = """
const within = arguments[0] || document;
return Array.from(within.querySelectorAll('[data-testid="' + arguments[1] + '"]'))
  .map(e => [e.classList.contains('highlighted'), e.dataset.weight === undefined ? null
             : Number(e.dataset.weight)]);
"""


def token_state(browser: Any, testid: str, within: Any = None) -> list[tuple[bool, float | None]]:
    """(highlighted, data-weight) of every ``testid`` token (in ``within``, or the page)."""
    return [tuple(pair) for pair in browser.execute_script(TOKEN_STATE, within, testid)]


def strong_links(row: list[float]) -> set[int]:
    largest = max(row)
    return {j for j, value in enumerate(row) if largest > 0 and value >= STRONG * largest}


def assert_largest_highlighted(row: list[float], state: list[tuple[bool, float | None]]) -> None:
    """The highlighted tokens are the strong links of ``row``: the largest weights."""
    highlighted = {j for j, (on, _) in enumerate(state) if on}
    assert highlighted == strong_links(row)
    assert max(range(len(row)), key=row.__getitem__) in highlighted
    others = [row[j] for j in range(len(row)) if j not in highlighted]
    assert not others or min(row[j] for j in highlighted) > max(others)
    assert [weight for _, weight in state] == pytest.approx(row)


def colours_in(png: bytes) -> int:
    """How many distinct colours a PNG screenshot holds."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    return len(colours)


# --------------------------------------------------------------------------- fake records


def attention_rows(rows: int, columns: int, seed: int) -> list[list[float]]:
    """Rows that sum to 1 around a peak, with weights at 0.6 and 0.4 of the peak on the
    two sides of the strong-link threshold (0.5) and low noise elsewhere (below 0.1)."""
    rng = random.Random(seed)
    matrix = []
    for i in range(rows):
        row = [rng.uniform(0.0, 0.1) for _ in range(columns)]
        row[i % columns] = 1.0
        row[(i + 1) % columns] = 0.4
        if i % 2:
            row[(i + 2) % columns] = 0.6
        total = sum(row)
        matrix.append([value / total for value in row])
    return matrix


def translation_record() -> dict[str, Any]:
    source = ["ein", "großer", "Hund", "läuft", "</s>"]
    return {
        "translation": "a big dog runs",
        "score": -1.25,
        "alternatives": ["a large dog runs", "one big dog"],
        "source_tokens": source,
        "target_tokens": ["a", "big", "dog", "runs", "</s>"],
        "attention": attention_rows(5, 5, seed=1),
        "alternatives_detail": [
            {
                "text": "a large dog runs",
                "score": -2.5,
                "target_tokens": ["a", "large", "dog", "runs", "</s>"],
                "attention": attention_rows(5, 5, seed=2),
            },
            {
                "text": "one big dog",
                "score": -3.75,
                "target_tokens": ["one", "big", "dog", "</s>"],
                "attention": attention_rows(4, 5, seed=3),
            },
        ],
    }


def summarization_record() -> dict[str, Any]:
    source = ["the", "council", "approved", "the", "new", "park", "budget", "on", "monday"]
    target = ["council", "approves", "park", "budget", "</s>"]
    return {
        "summary": "council approves park budget",
        "score": -3.0,
        "tokens": target,
        "copy_probability": [0.9, 0.15, 0.8, 0.7, 0.05],
        "source_tokens": source,
        "attention": attention_rows(len(target), len(source), seed=4),
    }


def classification_records() -> list[dict[str, Any]]:
    tokens = ["this", "movie", "was", "truly", "great", "fun"]
    return [
        {
            "label": "positive",
            "probabilities": {"negative": 0.125, "positive": 0.875},
            "tokens": tokens,
            "attention": [[0.05, 0.1, 0.05, 0.2, 0.45, 0.15]],
        },
        {
            "label": "negative",
            "probabilities": {"negative": 0.75, "positive": 0.25},
            "tokens": ["dull", "and", "slow"],
            "attention": [[0.6, 0.1, 0.3], [0.2, 0.1, 0.7]],  # two hops
        },
    ]


def speech_record() -> dict[str, Any]:
    frames, bins, units, columns = 48, 20, 5, 12
    values = [
        [
            ((t * 7 + f * 3) % 17) / 4.0 - 2.0 + (2.0 if abs(f - t // 3) < 3 else 0.0)
            for f in range(bins)
        ]
        for t in range(frames)
    ]
    return {
        "audio": "hello.wav",
        "text": "helo",
        "score": -0.5,
        "tokens": ["h", "e", "l", "o", "</s>"],
        "attention": attention_rows(units, columns, seed=5),
        "alternatives": ["hallo"],
        "spectrogram": spectrogram(values, hop_seconds=0.01),
    }


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("explorer")
    return {
        "translation": write_explorer_html(
            directory / "translation.html", "translation", [translation_record()], "De -> En"
        ),
        "summarization": write_explorer_html(
            directory / "summary.html", "summarization", [summarization_record()], "news"
        ),
        "classification": write_explorer_html(
            directory / "classes.html", "classification", classification_records(), "reviews"
        ),
        "speech": write_explorer_html(
            directory / "speech.html", "speech", [speech_record()], "asr"
        ),
    }


# --------------------------------------------------------------------------- the file itself


def test_embedded_json_cannot_end_the_script():
    text = embedded_json({"token": "</script><!-- & -->"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"token": "</script><!-- & -->"}


def test_page_is_self_contained(pages):
    page = pages["translation"].read_text(encoding="utf-8")
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    assert 'id="query"' not in page  # no form: the served page's code never starts here
    assert page.count("<script") == 2  # the data and the code


def test_script_builds_the_page_without_markup():
    """Text reaches the page through textContent and attributes only."""
    script = (STATIC / "explorer.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_non_finite_numbers_become_null(tmp_path):
    record = {**classification_records()[0], "probabilities": {"a": float("nan")}}
    page = explorer_page("classification", [record], "t")
    assert '"probabilities":{"a":null}' in page


def test_unknown_task_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown task 'poetry'.*classification"):
        write_explorer_html(tmp_path / "x.html", "poetry", [], "t")


def test_spectrogram_record_rounds_the_features():
    numpy = pytest.importorskip("numpy")
    record = spectrogram(numpy.array([[0.123, -1.456], [2.0, 3.999]]), hop_seconds=0.01)
    assert record == {
        "hop_seconds": 0.01,
        "frames": 2,
        "bins": 2,
        "values": [[0.12, -1.46], [2.0, 4.0]],
    }


# --------------------------------------------------------------------------- translation


def test_translation_hover_links_both_ways(browser, pages):
    record = translation_record()
    open_page(browser, pages["translation"])
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert elements(browser, "legend")[0].is_displayed()
    assert elements(browser, "output-text")[0].text == "a big dog runs"
    cells = elements(browser, "heatmap")[0].find_elements("css selector", "td")
    assert len(cells) == 25
    assert "dog" in cells[12].get_attribute("title")

    for i, token in enumerate(elements(browser, "target-token")):
        hover(browser, token)
        assert_largest_highlighted(record["attention"][i], token_state(browser, "source-token"))
        assert "active" in token.get_attribute("class")
    for j, token in enumerate(elements(browser, "source-token")):
        hover(browser, token)
        column = [row[j] for row in record["attention"]]
        state = token_state(browser, "target-token")
        expected = {i for i, row in enumerate(record["attention"]) if j in strong_links(row)}
        assert {i for i, (on, _) in enumerate(state) if on} == expected
        assert [weight for _, weight in state] == pytest.approx(column)

    # Leaving clears every highlight.
    hover(browser, elements(browser, "output-text")[0])
    assert not any(on for on, _ in token_state(browser, "source-token"))


def test_translation_nbest_switch(browser, pages):
    record = translation_record()
    open_page(browser, pages["translation"])
    options = elements(browser, "nbest-option")
    assert len(options) == 3
    options[2].click()
    third = record["alternatives_detail"][1]
    assert elements(browser, "output-text")[0].text == third["text"]
    tokens = elements(browser, "target-token")
    assert [token.text for token in tokens] == third["target_tokens"]
    hover(browser, tokens[1])
    assert_largest_highlighted(third["attention"][1], token_state(browser, "source-token"))


def test_translation_keyboard(browser, pages):
    from selenium.webdriver.common.keys import Keys

    record = translation_record()
    open_page(browser, pages["translation"])
    first = elements(browser, "target-token")[0]
    assert first.get_attribute("tabindex") == "0" and first.get_attribute("aria-label")
    browser.execute_script("arguments[0].focus()", first)
    assert_largest_highlighted(record["attention"][0], token_state(browser, "source-token"))
    first.send_keys(Keys.ARROW_RIGHT)  # focus moves on, and so do the links
    focused = browser.switch_to.active_element
    assert focused.get_attribute("data-index") == "1"
    assert focused.get_attribute("tabindex") == "0" and first.get_attribute("tabindex") == "-1"
    assert_largest_highlighted(record["attention"][1], token_state(browser, "source-token"))
    assert "attended to" in elements(browser, "readout")[0].text
    focused.send_keys(Keys.END)
    assert browser.switch_to.active_element.get_attribute("data-index") == "4"
    # One tab stop per row: Tab goes from the source row to the output row.
    source = elements(browser, "source-token")[0]
    browser.execute_script("arguments[0].focus()", source)
    source.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("data-testid") == "target-token"


def test_translation_screenshot_and_phone_width(browser, pages):
    open_page(browser, pages["translation"])
    hover(browser, elements(browser, "target-token")[2])
    assert colours_in(browser.get_screenshot_as_png()) > 40
    browser.set_window_size(390, 844)
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert elements(browser, "target-token")[0].is_displayed()


# --------------------------------------------------------------------------- summarization


def test_summarization_copy_probability_and_links(browser, pages):
    record = summarization_record()
    open_page(browser, pages["summarization"])
    assert elements(browser, "legend-copy")
    tokens = elements(browser, "target-token")
    copies = [float(token.get_attribute("data-copy")) for token in tokens]
    assert copies == pytest.approx(record["copy_probability"])
    assert "copy probability 0.9" in tokens[0].get_attribute("title")
    hover(browser, tokens[2])
    assert_largest_highlighted(record["attention"][2], token_state(browser, "source-token"))
    assert "copy probability 0.8" in elements(browser, "readout")[0].text
    assert not elements(browser, "nbest")  # one hypothesis: no switch


# --------------------------------------------------------------------------- classification


def test_classification_weights_label_and_top_words(browser, pages):
    first, second = classification_records()
    open_page(browser, pages["classification"])
    records = elements(browser, "record")
    assert len(records) == 2
    assert elements(browser, "label", records[0])[0].text == "positive 87.5%"
    assert [p.get_attribute("data-label") for p in elements(browser, "probability")[:2]] == [
        "positive",
        "negative",
    ]
    weights = [weight for _, weight in token_state(browser, "token", records[0])]
    assert weights == pytest.approx(first["attention"][0])
    top = elements(browser, "top-word", records[0])
    assert [int(word.get_attribute("data-index")) for word in top] == [4, 3, 5]
    hover(browser, top[0])
    assert [on for on, _ in token_state(browser, "token", records[0])] == [j == 4 for j in range(6)]
    # Two hops: the tokens carry the mean of the hops.
    mean = [sum(column) / 2 for column in zip(*second["attention"], strict=True)]
    assert [w for _, w in token_state(browser, "token", records[1])] == pytest.approx(mean)
    assert "0.45" in elements(browser, "token", records[0])[4].get_attribute("title")
    assert elements(browser, "legend")[0].is_displayed()


def test_text_stays_text(browser, tmp_path):
    hostile = '</script><script>window.owned = 1</script><img src=x onerror="window.owned=2">'
    record = {
        "label": "<b>bold</b>",
        "probabilities": {"<b>bold</b>": 1.0},
        "tokens": ["<script>alert(1)</script>", hostile],
        "attention": [[0.5, 0.5]],
    }
    path = write_explorer_html(tmp_path / "hostile.html", "classification", [record], hostile)
    assert "</script><script>window.owned" not in path.read_text(encoding="utf-8")
    open_page(browser, path)
    assert browser.execute_script("return window.owned === undefined")
    assert browser.execute_script("return document.querySelectorAll('img, b').length") == 0
    tokens = elements(browser, "token")
    assert tokens[0].text == "<script>alert(1)</script>"
    assert tokens[1].text == hostile.replace(" ", "\u2423")  # spaces shown visibly
    assert elements(browser, "label")[0].text.startswith("<b>bold</b>")
    assert elements(browser, "title")[0].text == hostile
    assert browser.title == hostile


def test_language_model_surprisal(browser, tmp_path):
    record = {
        "perplexity": 12.5,
        "tokens": ["the", "cat", "flew"],
        "surprisal": [1.0, 2.0, 6.5],
    }
    path = write_explorer_html(tmp_path / "lm.html", "language_model", [record], "lm")
    open_page(browser, path)
    assert elements(browser, "label")[0].text == "perplexity 12.50"
    assert [w for _, w in token_state(browser, "token")] == [1.0, 2.0, 6.5]
    assert elements(browser, "top-word")[0].text == "flew 6.50"


# --------------------------------------------------------------------------- speech


def test_speech_spectrogram_alignment_and_hover(browser, pages):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    record = speech_record()
    attention = record["attention"]
    columns = len(attention[0])
    open_page(browser, pages["speech"])
    spectrogram_canvas = elements(browser, "spectrogram")[0]
    assert spectrogram_canvas.get_attribute("width") == "48"
    assert colours_in(spectrogram_canvas.screenshot_as_png) > 20
    assert elements(browser, "legend-spectrogram")

    # A character -> the frames it attends to, marked over the pictures.
    units = elements(browser, "target-token")
    assert [unit.text for unit in units] == record["tokens"]
    for i, unit in enumerate(units):
        hover(browser, unit)
        marks = browser.execute_script(
            "return Array.from(document.querySelectorAll('.frame-mark.highlighted'))"
            ".map(e => Number(e.dataset.column))"
        )
        assert set(marks) == strong_links(attention[i])

    # A point in time -> the characters that attend to it.
    alignment = elements(browser, "alignment")[0]
    width = alignment.size["width"]
    for j in (0, 3, columns - 1):
        offset = round((j + 0.5) * width / columns - width / 2)
        ActionChains(browser, duration=0).move_to_element_with_offset(
            alignment, offset, 0
        ).perform()
        state = token_state(browser, "target-token")
        expected = {i for i, row in enumerate(attention) if j in strong_links(row)}
        assert {i for i, (on, _) in enumerate(state) if on} == expected
        assert [w for _, w in state] == pytest.approx([row[j] for row in attention])
        assert elements(browser, "tooltip")[0].is_displayed()

    # The keyboard walks through time.
    stage = elements(browser, "speech-stage")[0]
    browser.execute_script("arguments[0].focus()", stage)
    stage.send_keys(Keys.HOME, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    cursor = browser.execute_script("return document.querySelector('.cursor-mark').dataset.column")
    assert cursor == "2"
    assert colours_in(browser.get_screenshot_as_png()) > 40
