/* fieldsync query page (P2): offline customer search with the same rules as `fieldsync find`.
 *
 * Data arrives as <script src> chunks (fetch() is refused on file://) that call
 * fieldsyncQuery.manifest/add/readings. Normalised texts and the pinyin of every character
 * were computed by fieldsync in Python; the rules themselves are in matching.js (shared with
 * the server's page); this file loads the data and shows the results.
 */
(function () {
  "use strict";
  var FIELDS = ["account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage"];
  var SHOWN = 100;
  var rows = [], expected = -1, loaded = 0, folders = {};
  var match = window.fieldsyncMatch;

  // A row is the seven values as shown, then the normalised texts where they differ (else 0).
  var access = {
    text: function (row, field) { var n = row[7]; return n && n[field] !== 0 ? n[field] : row[field]; },
    capacity: function (row) { return row[3] === "" ? NaN : parseFloat(row[3]); }
  };

  function search(text, fieldQueries) { return match.search(rows, text, fieldQueries, access); }

  function render() {
    var text = document.getElementById("q").value;
    var fieldQueries = {};
    document.querySelectorAll("[data-field]").forEach(function (input) {
      fieldQueries[FIELDS.indexOf(input.getAttribute("data-field"))] = input.value;
    });
    var started = performance.now();
    var status = document.getElementById("status");
    var hits;
    try {
      hits = search(text, fieldQueries);
    } catch (error) {   // a malformed capacity or voltage: say so, never "no match"
      document.getElementById("results").replaceChildren();
      status.textContent = "输入有误：" + error.message;
      status.setAttribute("data-ms", String(Math.round(performance.now() - started)));
      return;
    }
    var body = document.getElementById("results");
    var fragment = document.createDocumentFragment();
    hits.slice(0, SHOWN).forEach(function (hit) {
      var tr = document.createElement("tr");
      tr.className = "hit";
      hit.row.slice(0, 7).forEach(function (value, f) {
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
    status.textContent = hits.length ? ("共 " + hits.length + " 户" + (hits.length > SHOWN ? "，显示前 " + SHOWN + " 户" : ""))
                                     : "没有找到匹配的客户";
    status.setAttribute("data-ms", String(Math.round(performance.now() - started)));
  }

  function ready() {
    var status = document.getElementById("status");
    status.textContent = "已载入 " + rows.length + " 户，输入户号、户名、表号、地址、拼音首字母…";
    document.body.setAttribute("data-ready", "1");
    document.getElementById("q").addEventListener("input", render);
    document.querySelectorAll("[data-field]").forEach(function (i) { i.addEventListener("input", render); });
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
      loadScript("_query/pinyin.js", chunkDone);
      for (var c = 0; c < m.chunks; c++) loadScript("_query/customers-" + String(c).padStart(3, "0") + ".js", chunkDone);
    },
    add: function (chunk) { Array.prototype.push.apply(rows, chunk); },
    readings: function (table) { match.learnReadings(table); },
    search: function (text, fieldQueries) { return search(text, fieldQueries || {}); }
  };

  function chunkDone() {
    loaded += 1;
    if (loaded === expected) {
      // chunks may arrive in any order: restore account order
      rows.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; });
      ready();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = document.getElementById("folders");
    folders = data ? JSON.parse(data.textContent) : {};
    loadScript("_query/manifest.js", function () {});
  });
})();
