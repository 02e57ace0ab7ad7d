/* fieldsync query page (P2): offline customer search with the same rules as `fieldsync find`.
 *
 * Data arrives as <script src> chunks (fetch() is refused on file://) that call
 * fieldsyncQuery.manifest/columns/readings. A chunk holds each field of its customers as one
 * string (values ended by "\n"), shown text and, where it differs, the normalised text that
 * fieldsync computed in Python. The rules are in matching.js (shared with the server's page);
 * searchColumns() there finds words with indexOf and one regular expression per word over those
 * strings, so a keystroke does not run JavaScript per customer. Fast typing is debounced and only
 * the newest query is searched: keystrokes never queue behind searches. A search runs in slices
 * of SLICE_MS (searchSteps() yields about every 10k customers) with a message between slices, so
 * input events and frames get in between, and a newer input drops the search under way.
 */
(function () {
  "use strict";
  var FIELDS = ["account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage"];
  var SHOWN = 100;
  var DEBOUNCE_MS = 100;   // a search waits until typing pauses this long
  var SLICE_MS = 8;        // the main thread is given back at least this often during a search
  var chunks = [], expected = -1, loaded = 0, folders = {}, columns = null, shown = null, count = 0;
  var timer = 0, lastInput = -Infinity, job = null;
  var slices = new MessageChannel();   // a message, not setTimeout(0), which chromium clamps to 4 ms
  var match = window.fieldsyncMatch;

  function lineOffsets(text, rows) {
    var offsets = new Int32Array(rows + 1), at = 0;
    for (var i = 0; i < rows; i++) { at = text.indexOf("\n", at) + 1; offsets[i + 1] = at; }
    return offsets;
  }

  // The chunks (in account order) joined into one column per field.
  function buildColumns() {
    var norm = [], raw = [];
    for (var f = 0; f < FIELDS.length; f++) {
      var shownText = chunks.map(function (c) { return c.raw[f]; }).join("");
      var same = chunks.every(function (c) { return c.norm[f] === 0; });
      raw.push({ text: shownText, offsets: lineOffsets(shownText, count) });
      if (same) { norm.push(raw[f]); continue; }
      var normText = chunks.map(function (c) { return c.norm[f] === 0 ? c.raw[f] : c.norm[f]; }).join("");
      norm.push({ text: normText, offsets: lineOffsets(normText, count) });
    }
    var capacity = new Float64Array(count), cap = raw[3];
    for (var i = 0; i < count; i++) {
      var value = cap.text.slice(cap.offsets[i], cap.offsets[i + 1] - 1);
      capacity[i] = value === "" ? NaN : parseFloat(value);
    }
    chunks = null;
    shown = raw;
    columns = { count: count, norm: norm, capacity: capacity };
  }

  function row(id) {
    return FIELDS.map(function (_, f) { return shown[f].text.slice(shown[f].offsets[id], shown[f].offsets[id + 1] - 1); });
  }

  function search(text, fieldQueries, limit) { return match.searchColumns(columns, text, fieldQueries, limit); }

  function fieldQueries() {
    var queries = {};
    document.querySelectorAll("[data-field]").forEach(function (input) {
      queries[FIELDS.indexOf(input.getAttribute("data-field"))] = input.value;
    });
    return queries;
  }

  function showError(error, started) {   // a malformed capacity or voltage: say so, never "no match"
    var status = document.getElementById("status");
    document.getElementById("results").replaceChildren();
    status.textContent = "输入有误：" + error.message;
    status.setAttribute("data-ms", String(Math.round(performance.now() - started)));
  }

  function render() {
    var text = document.getElementById("q").value, started = performance.now();
    try {
      job = { text: text, started: started, slices: 0, steps: match.searchSteps(columns, text, fieldQueries(), SHOWN) };
    } catch (error) {
      job = null;
      showError(error, started);
      return;
    }
    runSlice();
  }

  // One slice of the current search; the rest is posted as a message. A job replaced or dropped
  // (job !== mine) since the message was posted is not continued.
  function runSlice() {
    var mine = job, until = performance.now() + SLICE_MS, step;
    if (!mine) return;
    mine.slices += 1;
    try {
      while (!(step = mine.steps.next()).done) {
        if (performance.now() >= until) { slices.port2.postMessage(0); return; }
      }
    } catch (error) {
      job = null;
      showError(error, mine.started);
      return;
    }
    job = null;
    show(mine.text, step.value, mine.started);
    document.getElementById("status").setAttribute("data-slices", String(mine.slices));   // tests, bench
  }
  slices.port1.onmessage = runSlice;

  function show(text, found, started) {
    var status = document.getElementById("status");
    var body = document.getElementById("results");
    var fragment = document.createDocumentFragment();
    found.ids.forEach(function (id) {
      var tr = document.createElement("tr");
      tr.className = "hit";
      row(id).forEach(function (value, f) {
        var td = document.createElement("td");
        var folder = f === 0 ? folders[value] : null;
        if (folder) {
          var a = document.createElement("a");
          a.href = encodeURIComponent(folder) + "/index.html";
          a.textContent = value;
          td.appendChild(a);
        } else {
          td.textContent = value;
        }
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    });
    body.replaceChildren(fragment);
    status.textContent = found.total ? ("共 " + found.total + " 户" + (found.total > SHOWN ? "，显示前 " + SHOWN + " 户" : ""))
                                     : "没有找到匹配的客户";
    status.setAttribute("data-ms", String(Math.round(performance.now() - started)));
    status.setAttribute("data-query", text);
  }

  // A query typed after a pause is searched at once; while keys come faster than DEBOUNCE_MS
  // apart, each one restarts the wait and only the newest input is searched: nothing queues.
  function schedule() {
    var now = performance.now(), typing = now - lastInput < DEBOUNCE_MS;
    lastInput = now;
    clearTimeout(timer);
    job = null;   // a search still under way is for an older input
    // data-ms (when the shown results were searched) is set again when this input's search is done
    document.getElementById("status").removeAttribute("data-ms");
    if (!typing) { render(); return; }
    timer = setTimeout(render, DEBOUNCE_MS);
  }

  function ready() {
    var started = performance.now();
    buildColumns();
    // when the page could be typed into, and what joining the chunks cost (bench/query_page.py)
    document.body.setAttribute("data-columns-ms", String(Math.round(performance.now() - started)));
    document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
    var status = document.getElementById("status");
    status.textContent = "已载入 " + count + " 户，输入户号、户名、表号、地址、拼音首字母…";
    document.body.setAttribute("data-ready", "1");
    document.getElementById("q").addEventListener("input", schedule);
    document.querySelectorAll("[data-field]").forEach(function (i) { i.addEventListener("input", schedule); });
    if (document.getElementById("q").value) render();
  }

  function loadScript(src, done) {
    var s = document.createElement("script");
    s.src = src;
    s.onload = done;
    s.onerror = function () {
      document.getElementById("status").textContent = "数据文件缺失：" + src + "（请在设备上重新运行 fieldsync）";
    };
    document.head.appendChild(s);
  }

  window.fieldsyncQuery = {
    manifest: function (m) {
      expected = m.chunks + 1;   // the customer chunks and the pinyin table
      count = m.count;
      chunks = new Array(m.chunks);
      loadScript("_query/pinyin.js", chunkDone);
      for (var c = 0; c < m.chunks; c++) loadScript("_query/customers-" + String(c).padStart(3, "0") + ".js", chunkDone);
    },
    // chunk `index` of the customers in account order: per field, shown values and normalised
    // values (0 where every one equals the shown value), each value ended by "\n"
    columns: function (index, raw, norm) { chunks[index] = { raw: raw, norm: norm }; },
    readings: function (table) { match.learnReadings(table); },
    // every match best first, as matching.js's search() gives them (tests compare the two)
    search: function (text, queries) {
      var found = search(text, queries || {});
      return found.ids.map(function (id) { return { rank: found.rank[id], row: row(id) }; });
    }
  };

  function chunkDone() {
    loaded += 1;
    if (loaded === expected) ready();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = document.getElementById("folders");
    folders = data ? JSON.parse(data.textContent) : {};
    loadScript("_query/manifest.js", function () {});
  });
})();
