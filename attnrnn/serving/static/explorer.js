/* The attnrnn attention explorer.
 *
 * One script for two pages:
 *  - the page the server answers at / (explorer.html): pick a model from GET /v1/models,
 *    type text or upload/record audio, POST it with "attention": true and draw the answer;
 *  - the self-contained file `attnrnn explain` writes (attnrnn/explorer.py): the records
 *    are embedded as JSON in a script element of type application/json, id "attnrnn-data", drawn
 *    the same way, with no network.
 *
 * Every piece of text from a record or a response goes into the page through
 * textContent or an attribute value, never as markup.
 *
 * Which links are highlighted (the rule the tests check): output token i and source
 * position j are a strong link when attention[i][j] >= STRONG * max(attention[i]).
 * Hovering or focusing output token i highlights its strongly linked source tokens
 * (class "highlighted"); hovering source token j highlights the output tokens that
 * link strongly to j. Every token hovered over also gets its exact weight in
 * data-weight and a shade proportional to it. Speech works the same way with listener
 * frames in place of source tokens.
 */
(function () {
  "use strict";

  const STRONG = 0.5;
  const TOP_WORDS = 3;
  const ACCENT = [234, 88, 12];
  // A magma-like ramp for the spectrogram: (position, r, g, b).
  const SPECTRUM = [
    [0.0, 0, 0, 4], [0.2, 59, 15, 112], [0.4, 140, 41, 129],
    [0.6, 222, 73, 104], [0.8, 254, 159, 109], [1.0, 252, 253, 191],
  ];

  // ------------------------------------------------------------------ small helpers

  /** An element with attributes and children; "text" sets textContent, "on" adds
   *  event listeners, everything else is an attribute (false/null/undefined: left out). */
  function el(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "on") {
        for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
      } else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children || []) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  /** A weight as people read it: six significant digits. */
  function exact(value) {
    return isNumber(value) ? String(Number(value.toPrecision(6))) : "n/a";
  }

  function short(value) {
    return isNumber(value) ? value.toFixed(2) : "n/a";
  }

  function percent(value) {
    return isNumber(value) ? (100 * value).toFixed(1) + "%" : "n/a";
  }

  /** A token as shown: whitespace made visible, the empty token as a sign. */
  function visible(token) {
    const text = String(token);
    if (text.length === 0) return "\u2205";
    return text.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  }

  function quoted(token) {
    return "\u201c" + visible(token) + "\u201d";
  }

  function maximum(values) {
    let largest = 0;
    for (const value of values) if (isNumber(value) && value > largest) largest = value;
    return largest;
  }

  /** The accent at opacity ``fraction`` (0..1) of the largest weight. */
  function shade(fraction) {
    const alpha = Math.max(0, Math.min(1, isNumber(fraction) ? fraction : 0)) * 0.85;
    return "rgba(" + ACCENT.join(", ") + ", " + alpha.toFixed(3) + ")";
  }

  /** Indices j with row[j] >= STRONG * max(row) (none when the row is all zero). */
  function strongLinks(row) {
    const largest = maximum(row);
    const strong = new Set();
    if (largest <= 0) return strong;
    row.forEach(function (value, index) {
      if (isNumber(value) && value >= STRONG * largest) strong.add(index);
    });
    return strong;
  }

  /** Indices of the k largest values, largest first (ties keep their order). */
  function topIndices(values, k) {
    return values
      .map(function (value, index) { return [isNumber(value) ? value : -Infinity, index]; })
      .sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; })
      .slice(0, k)
      .map(function (pair) { return pair[1]; });
  }

  /** Arrow keys (and Home/End) move the focus along a row of tokens: one tab stop per
   *  row (a roving tabindex), so a long sentence does not take a tab press per token. */
  function arrowKeys(event) {
    const current = event.currentTarget;
    const row = Array.from(current.parentElement.children);
    const index = row.indexOf(current);
    const moves = { ArrowRight: index + 1, ArrowDown: index + 1, ArrowLeft: index - 1, ArrowUp: index - 1,
      Home: 0, End: row.length - 1 };
    if (!(event.key in moves)) return;
    const target = row[Math.max(0, Math.min(row.length - 1, moves[event.key]))];
    event.preventDefault();
    if (target === current) return;
    current.tabIndex = -1;
    target.tabIndex = 0;
    target.focus();
  }

  /** A focusable token that calls show() on hover/focus and hide() on leave/blur. */
  function tokenSpan(token, attributes, show, hide) {
    return el("span", Object.assign({
      class: "tok", tabindex: -1, role: "listitem",
      on: { mouseenter: show, focus: show, mouseleave: hide, blur: hide, keydown: arrowKeys },
    }, attributes), [el("span", { class: "text", text: visible(token) })]);
  }

  /** A row (list) of token spans; its first token is its tab stop. */
  function tokenRow(attributes, spans) {
    if (spans.length) spans[0].tabIndex = 0;
    return el("div", Object.assign({ role: "list" }, attributes), spans);
  }

  function legendScale(label, rampClass, low, high, testid) {
    return el("span", { class: "scale", "data-testid": testid }, [
      label + " ", el("span", { class: "ramp " + rampClass, "aria-hidden": "true" }),
      " " + low + " \u2192 " + high,
    ]);
  }

  function legend(items, note) {
    return el("div", { class: "legend", "data-testid": "legend", role: "note",
      "aria-label": "colour legend" }, items.concat(note ? [el("span", { text: note })] : []));
  }

  const LINK_NOTE = "Outlined: a strong link (at least " + Math.round(STRONG * 100) +
    "% of the strongest weight). Exact weights on hover or focus.";

  // ------------------------------------------------------------------ translation / summarization

  /** The best hypothesis then the alternatives, as {text, score, tokens, attention, copy}. */
  function hypotheses(task, record) {
    const summary = task === "summarization";
    const list = [{
      text: summary ? record.summary : record.translation,
      score: record.score,
      tokens: summary ? record.tokens : record.target_tokens,
      attention: record.attention,
      copy: record.copy_probability,
    }];
    const details = Array.isArray(record.alternatives_detail) ? record.alternatives_detail : null;
    for (const alternative of details || []) {
      if (list.some(function (h) { return h.text === alternative.text && h.score === alternative.score; })) continue;
      list.push({
        text: alternative.text, score: alternative.score,
        tokens: alternative.target_tokens || alternative.tokens,
        attention: alternative.attention, copy: alternative.copy_probability,
      });
    }
    if (!details) {
      for (const text of record.alternatives || []) list.push({ text: text, score: null });
    }
    return list;
  }

  function renderAlignmentRecord(task, record, number) {
    const options = hypotheses(task, record);
    const section = el("section", { class: "record", "data-testid": "record", "data-task": task,
      "aria-label": task + " " + number });
    const outputText = el("p", { class: "output-text", "data-testid": "output-text", text: options[0].text });
    section.append(outputText);
    section.append(el("p", { class: "meta", text: "score " + short(record.score) }));
    const panel = el("div", { class: "panel" });
    function choose(index) {
      outputText.textContent = options[index].text;
      panel.replaceChildren(alignmentPanel(task, record.source_tokens || [], options[index]));
    }
    if (options.length > 1) section.append(nbestSwitch(options, number, choose));
    section.append(panel);
    choose(0);
    return section;
  }

  function nbestSwitch(options, number, choose) {
    const name = "nbest-" + number;
    const fieldset = el("fieldset", { class: "nbest", "data-testid": "nbest" },
      [el("legend", { text: "n-best list (" + options.length + ")" })]);
    options.forEach(function (option, index) {
      const input = el("input", { type: "radio", name: name, value: index, checked: index === 0,
        "data-testid": "nbest-option", on: { change: function () { choose(index); } } });
      fieldset.append(el("label", {}, [input, " " + (index + 1) + ". " + option.text + " ",
        el("span", { class: "score", text: "(" + short(option.score) + ")" })]));
    });
    return fieldset;
  }

  function alignmentPanel(task, sourceTokens, hypothesis) {
    const targetTokens = hypothesis.tokens || [];
    const attention = hypothesis.attention;
    if (!Array.isArray(attention) || attention.length === 0) {
      return el("p", { class: "meta", text: "No attention in this result." });
    }
    const copy = task === "summarization" && Array.isArray(hypothesis.copy) ? hypothesis.copy : null;
    const strong = attention.map(strongLinks);
    const overall = maximum(attention.map(maximum));
    const readout = el("p", { class: "readout", "data-testid": "readout", "aria-live": "polite" });
    const sources = [];
    const targets = [];
    const rows = [];
    const columns = [];  // header cells and body cells of each source column

    function clear() {
      for (const span of sources.concat(targets)) {
        span.classList.remove("highlighted", "active");
        span.style.backgroundColor = "";
        span.removeAttribute("data-weight");
      }
      for (const row of rows) row.classList.remove("active-row");
      for (const cells of columns) for (const cell of cells) cell.classList.remove("active-col");
      readout.textContent = "Hover or focus a token to see its links.";
    }

    function showTarget(i) {
      clear();
      const row = attention[i];
      const largest = maximum(row);
      targets[i].classList.add("active");
      sources.forEach(function (span, j) {
        span.dataset.weight = String(row[j]);
        span.style.backgroundColor = shade(largest > 0 ? row[j] / largest : 0);
        if (strong[i].has(j)) span.classList.add("highlighted");
      });
      if (rows[i]) rows[i].classList.add("active-row");
      const links = topIndices(row, row.length).filter(function (j) { return strong[i].has(j); });
      readout.textContent = quoted(targetTokens[i]) + " attended to: " + links.map(function (j) {
        return quoted(sourceTokens[j]) + " " + exact(row[j]);
      }).join(", ") + (copy ? "; copy probability " + exact(copy[i]) : "");
    }

    function showSource(j) {
      clear();
      const column = attention.map(function (row) { return row[j]; });
      const largest = maximum(column);
      sources[j].classList.add("active");
      targets.forEach(function (span, i) {
        span.dataset.weight = String(column[i]);
        span.style.backgroundColor = shade(largest > 0 ? column[i] / largest : 0);
        if (strong[i].has(j)) span.classList.add("highlighted");
      });
      if (columns[j]) for (const cell of columns[j]) cell.classList.add("active-col");
      const linked = targets.map(function (_, i) { return i; }).filter(function (i) { return strong[i].has(j); });
      readout.textContent = quoted(sourceTokens[j]) + " was attended to by: " + (linked.length ? linked.map(function (i) {
        return quoted(targetTokens[i]) + " " + exact(column[i]);
      }).join(", ") : "no output token strongly") + " (largest " + exact(largest) + ")";
    }

    sourceTokens.forEach(function (token, j) {
      const column = attention.map(function (row) { return row[j]; });
      const best = topIndices(column, 1)[0];
      sources.push(tokenSpan(token, {
        class: "tok source-token", "data-testid": "source-token", "data-index": j,
        "aria-label": "source token " + (j + 1) + ": " + visible(token),
        title: visible(token) + " \u2014 attended most by " + quoted(targetTokens[best]) + " " + exact(column[best]),
      }, function () { showSource(j); }, clear));
    });
    targetTokens.forEach(function (token, i) {
      const row = attention[i] || [];
      const best = topIndices(row, 1)[0];
      const attributes = {
        class: "tok target-token", "data-testid": "target-token", "data-index": i,
        "aria-label": "output token " + (i + 1) + ": " + visible(token) +
          (copy ? ", copy probability " + short(copy[i]) : ""),
        title: visible(token) + " \u2190 " + quoted(sourceTokens[best]) + " " + exact(row[best]) +
          (copy ? "\ncopy probability " + exact(copy[i]) : ""),
      };
      if (copy) attributes["data-copy"] = String(copy[i]);
      const span = tokenSpan(token, attributes, function () { showTarget(i); }, clear);
      if (copy) {
        const fill = el("span");
        fill.style.width = (100 * Math.max(0, Math.min(1, copy[i] || 0))).toFixed(1) + "%";
        span.append(el("span", { class: "copy-bar", "aria-hidden": "true" }, [fill]));
      }
      targets.push(span);
    });

    const legendItems = [legendScale("attention", "", "0", exact(overall) + " (strongest)", "legend-attention")];
    if (copy) legendItems.push(legendScale("copy probability", "copy", "0", "1", "legend-copy"));
    const table = heatmap(sourceTokens, targetTokens, attention, overall, rows, columns, showTarget, clear);
    const container = el("div", {}, [
      legend(legendItems, LINK_NOTE),
      el("h3", { text: "Source" }),
      tokenRow({ class: "tokens source-tokens", "data-testid": "source-tokens",
        "aria-label": "source tokens (arrow keys move along)" }, sources),
      el("h3", { text: copy ? "Output (blue bar: copy probability)" : "Output" }),
      tokenRow({ class: "tokens target-tokens", "data-testid": "target-tokens",
        "aria-label": "output tokens (arrow keys move along)" }, targets),
      readout,
      el("h3", { text: "Heatmap: a row per output token, a column per source token" }),
      el("div", { class: "scroll" }, [table]),
    ]);
    clear();
    return container;
  }

  /** A table: one row per output token, one column per source token, shaded by weight. */
  function heatmap(sourceTokens, targetTokens, attention, overall, rows, columns, showTarget, clear) {
    const head = el("tr", {}, [el("th", { scope: "col", text: "" })]);
    sourceTokens.forEach(function (token, j) {
      const cell = el("th", { scope: "col", text: visible(token) });
      columns[j] = [cell];
      head.append(cell);
    });
    const body = el("tbody");
    attention.forEach(function (row, i) {
      const tr = el("tr", {}, [el("th", { scope: "row", text: visible(targetTokens[i] || "") })]);
      row.forEach(function (value, j) {
        const cell = el("td", {
          "data-row": i, "data-col": j, "data-weight": String(value),
          title: visible(targetTokens[i] || "") + " \u2190 " + visible(sourceTokens[j] || "") + ": " + exact(value),
        });
        cell.style.backgroundColor = shade(overall > 0 ? value / overall : 0);
        if (columns[j]) columns[j].push(cell);
        tr.append(cell);
      });
      rows.push(tr);
      body.append(tr);
    });
    const short = sourceTokens.every(function (token) { return visible(token).length <= 2; });
    const table = el("table", { class: short ? "heatmap short-heads" : "heatmap", "data-testid": "heatmap" }, [
      el("caption", { class: "visually-hidden", text: "Attention: a row per output token, a column per source token" }),
      el("thead", {}, [head]), body,
    ]);
    table.addEventListener("mouseover", function (event) {
      const cell = event.target.closest("td");
      if (!cell) return;
      showTarget(Number(cell.dataset.row));
      const cells = columns[Number(cell.dataset.col)] || [];
      for (const other of cells) other.classList.add("active-col");
    });
    table.addEventListener("mouseleave", clear);
    return table;
  }

  // ------------------------------------------------------------------ classification (and language model)

  /** Per-token weights averaged over the hops of a (hops, S) or (S,) attention. */
  function averageHops(attention) {
    if (!Array.isArray(attention) || attention.length === 0) return [];
    if (!Array.isArray(attention[0])) return attention;
    const size = attention[0].length;
    const sums = new Array(size).fill(0);
    for (const hop of attention) hop.forEach(function (value, j) { sums[j] += value; });
    return sums.map(function (sum) { return sum / attention.length; });
  }

  /** Tokens shaded by weight, the top-k list linked to them, a readout. */
  function shadedTokens(tokens, weights, what, testid) {
    const largest = maximum(weights);
    const readout = el("p", { class: "readout", "data-testid": "readout", "aria-live": "polite" });
    const ranks = topIndices(weights, weights.length);
    const spans = tokens.map(function (token, j) {
      const rank = ranks.indexOf(j) + 1;
      const span = tokenSpan(token, {
        class: "tok token", "data-testid": testid, "data-index": j, "data-weight": String(weights[j]),
        "aria-label": visible(token) + ", " + what + " " + exact(weights[j]),
        title: visible(token) + ": " + what + " " + exact(weights[j]) + " (rank " + rank + " of " + tokens.length + ")",
      }, function () {
        readout.textContent = quoted(token) + ": " + what + " " + exact(weights[j]) + ", rank " + rank + " of " + tokens.length;
      }, function () { readout.textContent = ""; });
      span.style.backgroundColor = shade(largest > 0 ? weights[j] / largest : 0);
      return span;
    });
    const top = el("ol", { class: "top-words", "data-testid": "top-words" });
    for (const j of topIndices(weights, Math.min(TOP_WORDS, tokens.length))) {
      const mark = function () { spans[j].classList.add("highlighted"); };
      const unmark = function () { spans[j].classList.remove("highlighted"); };
      top.append(el("li", { "data-index": j }, [el("span", {
        tabindex: 0, "data-testid": "top-word", "data-index": j, text: visible(tokens[j]) + " " + short(weights[j]),
        title: what + " " + exact(weights[j]),
        on: { mouseenter: mark, focus: mark, mouseleave: unmark, blur: unmark },
      })]));
    }
    const row = tokenRow({ class: "tokens", "data-testid": "tokens", "aria-label": "tokens (arrow keys move along)" }, spans);
    return { row: row, top: top, readout: readout, largest: largest };
  }

  function renderClassificationRecord(record, number) {
    const probabilities = Object.entries(record.probabilities || {}).sort(function (a, b) { return b[1] - a[1]; });
    const section = el("section", { class: "record", "data-testid": "record", "data-task": "classification",
      "aria-label": "classification " + number });
    section.append(el("p", { class: "label-line", "data-testid": "label",
      text: String(record.label) + " " + percent((record.probabilities || {})[record.label]) }));
    const list = el("ul", { class: "probabilities", "data-testid": "probabilities", "aria-label": "class probabilities" });
    for (const [name, probability] of probabilities) {
      const fill = el("span");
      fill.style.width = (100 * probability).toFixed(1) + "%";
      list.append(el("li", { class: name === record.label ? "chosen" : "", "data-testid": "probability",
        "data-label": name, "data-probability": String(probability), title: name + ": " + exact(probability) }, [
        el("span", { class: "name", text: name }),
        el("span", { class: "bar", "aria-hidden": "true" }, [fill]),
        el("span", { class: "value", text: percent(probability) }),
      ]));
    }
    section.append(list);
    const tokens = record.tokens || [];
    const hops = Array.isArray(record.attention) && Array.isArray(record.attention[0]) ? record.attention : [record.attention || []];
    const view = shadedTokens(tokens, averageHops(record.attention), "attention", "token");
    section.append(
      legend([legendScale("attention", "", "0", exact(view.largest) + " (strongest)", "legend-attention")],
        "Outlined: the token of the most-attended word you point at. Exact weights on hover or focus."),
      el("h3", { text: hops.length > 1 ? "Tokens (mean of " + hops.length + " attention hops)" : "Tokens" }),
      view.row, view.readout, el("h3", { text: "Most attended" }), view.top);
    if (hops.length > 1) {
      const details = el("details", {}, [el("summary", { text: "each hop" })]);
      hops.forEach(function (hop, index) {
        details.append(el("div", { class: "row-name", text: "hop " + (index + 1) }),
          shadedTokens(tokens, hop, "attention (hop " + (index + 1) + ")", "hop-token").row);
      });
      section.append(details);
    }
    return section;
  }

  function renderLanguageModelRecord(record, number) {
    const section = el("section", { class: "record", "data-testid": "record", "data-task": "language_model",
      "aria-label": "language model " + number });
    section.append(el("p", { class: "label-line", "data-testid": "label",
      text: record.perplexity === null ? "too short to score" : "perplexity " + short(record.perplexity) }));
    const view = shadedTokens(record.tokens || [], record.surprisal || [], "surprisal (nats)", "token");
    section.append(
      legend([legendScale("surprisal", "", "0", exact(view.largest) + " nats", "legend-attention")],
        "Exact values on hover or focus."),
      el("h3", { text: "Tokens" }), view.row, view.readout, el("h3", { text: "Most surprising" }), view.top);
    return section;
  }

  // ------------------------------------------------------------------ speech

  function spectrumColour(fraction) {
    const x = Math.max(0, Math.min(1, fraction));
    for (let k = 1; k < SPECTRUM.length; k++) {
      const [p1, r1, g1, b1] = SPECTRUM[k];
      const [p0, r0, g0, b0] = SPECTRUM[k - 1];
      if (x <= p1) {
        const t = (x - p0) / (p1 - p0);
        return [r0 + t * (r1 - r0), g0 + t * (g1 - g0), b0 + t * (b1 - b0)];
      }
    }
    return SPECTRUM[SPECTRUM.length - 1].slice(1);
  }

  /** Draws a (T, F) spectrogram, low bins at the bottom; returns [min, max]. */
  function drawSpectrogram(canvas, values) {
    const frames = values.length;
    const bins = frames ? values[0].length : 0;
    canvas.width = Math.max(frames, 1);
    canvas.height = Math.max(bins, 1);
    let low = Infinity;
    let high = -Infinity;
    for (const frame of values) for (const value of frame) {
      if (value < low) low = value;
      if (value > high) high = value;
    }
    const context = canvas.getContext("2d");
    if (!context || !frames || !bins) return [0, 0];
    const image = context.createImageData(frames, bins);
    const span = high > low ? high - low : 1;
    for (let t = 0; t < frames; t++) {
      for (let f = 0; f < bins; f++) {
        const [r, g, b] = spectrumColour((values[t][f] - low) / span);
        const offset = 4 * ((bins - 1 - f) * frames + t);
        image.data[offset] = r;
        image.data[offset + 1] = g;
        image.data[offset + 2] = b;
        image.data[offset + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
    return [low, high];
  }

  /** Draws a (U, T') alignment over white, shaded relative to ``overall``. */
  function drawAlignment(canvas, attention, overall) {
    const units = attention.length;
    const columns = units ? attention[0].length : 0;
    canvas.width = Math.max(columns, 1);
    canvas.height = Math.max(units, 1);
    const context = canvas.getContext("2d");
    if (!context || !units || !columns) return;
    const image = context.createImageData(columns, units);
    for (let u = 0; u < units; u++) {
      for (let j = 0; j < columns; j++) {
        const a = overall > 0 ? Math.max(0, attention[u][j]) / overall : 0;
        const offset = 4 * (u * columns + j);
        image.data[offset] = 255 + a * (ACCENT[0] - 255);
        image.data[offset + 1] = 255 + a * (ACCENT[1] - 255);
        image.data[offset + 2] = 255 + a * (ACCENT[2] - 255);
        image.data[offset + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
  }

  function renderSpeechRecord(record, number) {
    const section = el("section", { class: "record", "data-testid": "record", "data-task": "speech",
      "aria-label": "transcript " + number });
    section.append(el("p", { class: "output-text", "data-testid": "output-text", text: record.text }));
    section.append(el("p", { class: "meta", text: String(record.audio || "") + " \u00b7 score " + short(record.score) }));
    const attention = Array.isArray(record.attention) ? record.attention : [];
    if (attention.length === 0) {
      section.append(el("p", { class: "meta", text: "No attention in this result." }));
    } else {
      section.append(speechStage(record, attention));
    }
    if ((record.alternatives || []).length) {
      section.append(el("h3", { text: "n-best" }), el("ol", { class: "alternatives", "data-testid": "alternatives" },
        record.alternatives.map(function (text) { return el("li", { text: text }); })));
    }
    return section;
  }

  function speechStage(record, attention) {
    const tokens = record.tokens || [];
    const spectrogram = record.spectrogram && Array.isArray(record.spectrogram.values) ? record.spectrogram : null;
    const columns = attention[0].length;
    const seconds = spectrogram ? spectrogram.values.length * spectrogram.hop_seconds : null;
    const strong = attention.map(strongLinks);
    const overall = maximum(attention.map(maximum));
    const readout = el("p", { class: "readout", "data-testid": "readout", "aria-live": "polite" });
    const overlay = el("div", { class: "overlay", "data-testid": "frame-marks", "aria-hidden": "true" });
    const tooltip = el("div", { class: "tooltip", "data-testid": "tooltip", hidden: true });
    const units = [];
    let cursor = 0;

    function when(j) {
      if (seconds === null) return "frame " + j;
      const start = (j * seconds) / columns;
      return (start).toFixed(2) + "\u2013" + ((j + 1) * seconds / columns).toFixed(2) + " s";
    }

    function clear() {
      overlay.replaceChildren();
      tooltip.hidden = true;
      for (const span of units) {
        span.classList.remove("highlighted", "active");
        span.style.backgroundColor = "";
        span.removeAttribute("data-weight");
      }
      readout.textContent = "Hover or focus a character, or point at the pictures.";
    }

    function showUnit(i) {
      clear();
      const row = attention[i];
      const largest = maximum(row);
      units[i].classList.add("active");
      for (const j of strong[i]) {
        const mark = el("div", { class: "frame-mark highlighted", "data-column": j, "data-weight": String(row[j]) });
        mark.style.left = (100 * j / columns) + "%";
        mark.style.width = (100 / columns) + "%";
        mark.style.opacity = String(0.4 + 0.6 * (largest > 0 ? row[j] / largest : 0));
        overlay.append(mark);
      }
      if (alignment.offsetHeight) {
        const mark = el("div", { class: "row-mark" });
        mark.style.top = (alignment.offsetTop + (i * alignment.offsetHeight) / attention.length) + "px";
        mark.style.height = (alignment.offsetHeight / attention.length) + "px";
        overlay.append(mark);
      }
      const peak = topIndices(row, 1)[0];
      readout.textContent = quoted(tokens[i]) + " attended most to " + when(peak) + " (" + exact(row[peak]) +
        "); strong links: " + strong[i].size + " frame(s)";
    }

    function showColumn(j, x, y) {
      clear();
      const column = attention.map(function (row) { return row[j]; });
      const largest = maximum(column);
      units.forEach(function (span, i) {
        span.dataset.weight = String(column[i]);
        span.style.backgroundColor = shade(largest > 0 ? column[i] / largest : 0);
        if (strong[i].has(j)) span.classList.add("highlighted");
      });
      const mark = el("div", { class: "cursor-mark", "data-column": j });
      mark.style.left = (100 * (j + 0.5) / columns) + "%";
      overlay.append(mark);
      const lines = topIndices(column, 3).map(function (i) { return quoted(tokens[i]) + " " + exact(column[i]); });
      const text = when(j) + " (frame " + j + ")\n" + lines.join("\n");
      readout.textContent = text.replace(/\n/g, "; ");
      if (x !== undefined) {
        tooltip.textContent = text;
        tooltip.hidden = false;
        tooltip.style.left = Math.min(x + 12, stage.clientWidth - 120) + "px";
        tooltip.style.top = (y + 12) + "px";
      }
    }

    tokens.forEach(function (token, i) {
      const peak = topIndices(attention[i] || [], 1)[0];
      units.push(tokenSpan(token, {
        class: "tok target-token", "data-testid": "target-token", "data-index": i,
        "aria-label": "output " + (i + 1) + ": " + visible(token),
        title: visible(token) + ": strongest at " + when(peak) + " " + exact((attention[i] || [])[peak]),
      }, function () { showUnit(i); }, clear));
    });

    const pictures = [];
    let legendItems = [];
    if (spectrogram) {
      const canvas = el("canvas", { class: "spectrogram", "data-testid": "spectrogram", role: "img",
        "aria-label": "spectrogram, " + spectrogram.values.length + " frames of " + spectrogram.hop_seconds * 1000 + " ms" });
      const [low, high] = drawSpectrogram(canvas, spectrogram.values);
      pictures.push(canvas);
      legendItems.push(legendScale("spectrogram", "spectrum", short(low), short(high), "legend-spectrogram"));
    }
    const alignment = el("canvas", { class: "alignment", "data-testid": "alignment", role: "img",
      "aria-label": "alignment: " + attention.length + " outputs by " + columns + " listener frames" });
    drawAlignment(alignment, attention, overall);
    pictures.push(alignment);
    legendItems = legendItems.concat([
      legendScale("attention", "", "0", exact(overall) + " (strongest)", "legend-attention"),
      el("span", {}, [el("span", { class: "swatch frames", "aria-hidden": "true" }), " frames a character attends to"]),
    ]);

    const stage = el("div", { class: "stage", tabindex: 0, role: "group", "data-testid": "speech-stage",
      "aria-label": "spectrogram and alignment; left and right arrow keys move through time" },
    pictures.concat([overlay, tooltip]));
    function columnAt(event) {
      const box = alignment.getBoundingClientRect();
      const fraction = (event.clientX - box.left) / Math.max(box.width, 1);
      return Math.max(0, Math.min(columns - 1, Math.floor(fraction * columns)));
    }
    stage.addEventListener("mousemove", function (event) {
      const box = stage.getBoundingClientRect();
      cursor = columnAt(event);
      showColumn(cursor, event.clientX - box.left, event.clientY - box.top);
    });
    stage.addEventListener("mouseleave", clear);
    stage.addEventListener("focus", function () { showColumn(cursor); });
    stage.addEventListener("blur", clear);
    stage.addEventListener("keydown", function (event) {
      const moves = { ArrowLeft: -1, ArrowRight: 1, PageDown: 10, PageUp: -10 };
      if (event.key in moves) cursor = Math.max(0, Math.min(columns - 1, cursor + moves[event.key]));
      else if (event.key === "Home") cursor = 0;
      else if (event.key === "End") cursor = columns - 1;
      else return;
      event.preventDefault();
      showColumn(cursor);
    });

    const container = el("div", { class: "speech" }, [
      legend(legendItems, LINK_NOTE),
      el("h3", { text: "Output" }),
      tokenRow({ class: "tokens target-tokens", "data-testid": "target-tokens",
        "aria-label": "output characters (arrow keys move along)" }, units),
      stage,
      el("div", { class: "time-axis", "aria-hidden": "true" }, seconds === null
        ? [el("span", { text: "frame 0" }), el("span", { text: "frame " + columns })]
        : [el("span", { text: "0 s" }), el("span", { text: seconds.toFixed(2) + " s" })]),
      readout,
    ]);
    clear();
    return container;
  }

  // ------------------------------------------------------------------ dispatch

  function renderGenericRecord(task, record, number, problem) {
    return el("section", { class: "record", "data-testid": "record", "data-task": task,
      "aria-label": task + " " + number }, [
      problem ? el("p", { class: "meta", text: "Could not draw this result: " + problem }) : null,
      el("pre", { class: "generic", text: JSON.stringify(record, null, 2) }),
    ]);
  }

  /** The view of one record of ``task`` (number counts from 1). */
  function renderRecord(task, record, number) {
    try {
      if (task === "translation" || task === "summarization") return renderAlignmentRecord(task, record, number);
      if (task === "classification") return renderClassificationRecord(record, number);
      if (task === "speech") return renderSpeechRecord(record, number);
      if (task === "language_model") return renderLanguageModelRecord(record, number);
      return renderGenericRecord(task, record, number, null);
    } catch (error) {
      return renderGenericRecord(task, record, number, String(error && error.message ? error.message : error));
    }
  }

  function renderRecords(target, task, records) {
    target.replaceChildren.apply(target, records.map(function (record, index) {
      return renderRecord(task, record, index + 1);
    }));
  }

  // ------------------------------------------------------------------ the served page

  /** A 16-bit mono WAV file of float samples in [-1, 1]. */
  function wavFile(samples, rate) {
    const buffer = new ArrayBuffer(44 + 2 * samples.length);
    const view = new DataView(buffer);
    const ascii = function (offset, text) {
      for (let k = 0; k < text.length; k++) view.setUint8(offset + k, text.charCodeAt(k));
    };
    ascii(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); ascii(8, "WAVE");
    ascii(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); ascii(36, "data"); view.setUint32(40, 2 * samples.length, true);
    samples.forEach(function (value, k) {
      const clipped = Math.max(-1, Math.min(1, value));
      view.setInt16(44 + 2 * k, clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff, true);
    });
    return new File([buffer], "recording.wav", { type: "audio/wav" });
  }

  /** Records from the microphone into a WAV file (at most ``limit`` seconds). */
  function microphone(button, onDone, onError) {
    let session = null;
    const limit = 30;
    async function start() {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const Context = window.AudioContext || window.webkitAudioContext;
      const context = new Context();
      const source = context.createMediaStreamSource(stream);
      const processor = context.createScriptProcessor(4096, 1, 1);
      const chunks = [];
      processor.onaudioprocess = function (event) {
        chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
        if (chunks.length * 4096 > limit * context.sampleRate) stop();
      };
      source.connect(processor);
      processor.connect(context.destination);
      session = { stream: stream, context: context, processor: processor, chunks: chunks };
      button.textContent = "Stop recording";
      button.setAttribute("aria-pressed", "true");
    }
    function stop() {
      if (!session) return;
      const { stream, context, processor, chunks } = session;
      session = null;
      processor.disconnect();
      stream.getTracks().forEach(function (track) { track.stop(); });
      const samples = [];
      for (const chunk of chunks) for (const value of chunk) samples.push(value);
      context.close();
      button.textContent = "Record";
      button.setAttribute("aria-pressed", "false");
      onDone(wavFile(samples, context.sampleRate), samples.length / context.sampleRate);
    }
    button.addEventListener("click", function () {
      if (session) stop();
      else start().catch(function (error) { onError("microphone: " + error.message); });
    });
  }

  function bootServer(form) {
    const $ = function (id) { return document.getElementById(id); };
    const select = $("model");
    const results = $("results");
    const status = $("status");
    const submit = $("submit");
    const recordButton = $("record");
    const audioInput = $("audio");
    let models = [];
    let recorded = null;

    function setStatus(text, isError) {
      status.textContent = text;
      status.classList.toggle("error", Boolean(isError));
    }

    function headers(extra) {
      const result = Object.assign({ Accept: "application/json" }, extra || {});
      const key = $("api-key").value.trim();
      if (key) result.Authorization = "Bearer " + key;
      return result;
    }

    function current() {
      return models.find(function (model) { return model.name === select.value; }) || null;
    }

    function describe(model) {
      const parts = [model.task + " \u00b7 " + model.action];
      const languages = model.languages || {};
      if (languages.source || languages.target) parts.push((languages.source || "?") + " \u2192 " + (languages.target || "?"));
      const metrics = model.metrics || {};
      const shown = Object.entries(metrics).filter(function (pair) { return isNumber(pair[1]); }).slice(0, 4);
      if (shown.length) parts.push(shown.map(function (pair) { return pair[0] + " " + short(pair[1]); }).join(", "));
      if (model.attnrnn_version) parts.push("attnrnn " + model.attnrnn_version);
      return parts.join(" \u00b7 ");
    }

    function update() {
      const model = current();
      if (!model) return;
      const speech = model.action === "transcribe";
      const search = ["translate", "summarize", "transcribe"].indexOf(model.action) >= 0;
      $("text-field").hidden = speech;
      $("audio-field").hidden = !speech;
      $("search-field").hidden = !search;
      $("length-penalty-field").hidden = speech;
      $("model-info").textContent = describe(model);
      const defaults = model.search || {};
      for (const [id, name] of [["beam", "beam"], ["n-best", "n_best"], ["length-penalty", "length_penalty"]]) {
        $(id).placeholder = isNumber(defaults[name]) ? String(defaults[name]) : "";
      }
      const limits = model.limits || {};
      for (const [key, value] of Object.entries(limits)) {
        if (/beam/.test(key) && isNumber(value)) $("beam").max = value;
        if (/n_best/.test(key) && isNumber(value)) $("n-best").max = value;
      }
    }

    async function answer(response) {
      let body = null;
      try { body = await response.json(); } catch (error) { body = null; }
      if (!response.ok) {
        const problem = body && body.error ? body.error : null;
        const message = problem ? problem.message + (problem.field ? " (" + problem.field + ")" : "") : response.statusText;
        throw new Error("HTTP " + response.status + ": " + message);
      }
      return body;
    }

    async function send(model) {
      const numbers = {};
      for (const [id, name] of [["beam", "beam"], ["n-best", "n_best"], ["length-penalty", "length_penalty"]]) {
        const field = $(id);
        if (!field.closest("[hidden]") && field.value !== "") numbers[name] = Number(field.value);
      }
      if (model.action === "transcribe") {
        const file = audioInput.files[0] || recorded;
        if (!file) throw new Error("choose a WAV or FLAC file (or record one)");
        const data = new FormData();
        data.append("audio", file, file.name || "audio.wav");
        const query = new URLSearchParams(Object.assign({ attention: "true" }, numbers));
        return answer(await fetch(model.endpoint + "?" + query.toString(),
          { method: "POST", headers: headers(), body: data }));
      }
      const text = $("text").value;
      if (!text.trim()) throw new Error("type some text first");
      const body = Object.assign({ texts: [text], attention: true }, numbers);
      return answer(await fetch(model.endpoint, {
        method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
      }));
    }

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const model = current();
      if (!model) return;
      submit.disabled = true;
      results.dataset.state = "loading";
      results.setAttribute("aria-busy", "true");
      setStatus("Working\u2026");
      const started = performance.now();
      try {
        const body = await send(model);
        renderRecords(results, model.task, body.results || []);
        results.dataset.state = "done";
        setStatus((body.results || []).length + " result(s) from " + model.name + " in " +
          Math.round(performance.now() - started) + " ms");
      } catch (error) {
        results.dataset.state = "error";
        setStatus(error.message, true);
      } finally {
        submit.disabled = false;
        results.removeAttribute("aria-busy");
      }
    });

    select.addEventListener("change", update);
    audioInput.addEventListener("change", function () {
      recorded = null;
      const file = audioInput.files[0];
      if (file) $("audio-preview").src = URL.createObjectURL(file);
    });
    if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
      microphone(recordButton, function (file, duration) {
        recorded = file;
        audioInput.value = "";
        $("audio-preview").src = URL.createObjectURL(file);
        setStatus("recorded " + duration.toFixed(1) + " s; submit to transcribe it");
      }, function (message) { setStatus(message, true); });
    } else {
      recordButton.disabled = true;
      recordButton.title = "recording needs a secure page (https or localhost)";
    }

    async function loadModels() {
      setStatus("Loading the models\u2026");
      try {
        const body = await answer(await fetch("/v1/models", { headers: headers() }));
        models = body.models || [];
        select.replaceChildren.apply(select, models.map(function (model) {
          return el("option", { value: model.name, text: model.name + " (" + model.task + ")" });
        }));
        form.dataset.state = "ready";
        setStatus(models.length ? "" : "The server has no models.", !models.length);
        update();
      } catch (error) {
        setStatus("Could not list the models: " + error.message, true);
      }
    }
    $("api-key").addEventListener("change", loadModels);
    loadModels();
  }

  // ------------------------------------------------------------------ start

  function start() {
    const embedded = document.getElementById("attnrnn-data");
    const results = document.getElementById("results");
    if (embedded && results) {
      const data = JSON.parse(embedded.textContent);
      renderRecords(results, data.task, data.records || []);
      results.dataset.state = "done";
    }
    const form = document.getElementById("query");
    if (form) bootServer(form);
  }

  window.attnrnnExplorer = { renderRecord: renderRecord, strongLinks: strongLinks, STRONG: STRONG };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
