/* fieldsync server root page: the customer search over customers.js (window.FIELDSYNC_CUSTOMERS:
   {rows, readings}), with the rules of matching.js that the tablet's query page and `fieldsync
   find` follow too (docs/search.md). A file, not an inline script, so the pages'
   Content-Security-Policy can forbid inline script. */
(function () {
  "use strict";
  var data = window.FIELDSYNC_CUSTOMERS || { rows: [], readings: {} };
  var match = window.fieldsyncMatch;
  match.learnReadings(data.readings || {});
  // A row is the customer page's link ("" without a folder), the seven values as shown, then
  // their normalised texts where they differ (else 0).
  var rows = data.rows || [];
  var access = {
    text: function (row, field) { var n = row[8]; return n && n[field] !== 0 ? n[field] : row[field + 1]; },
    capacity: function (row) { return row[4] === "" ? NaN : parseFloat(row[4]); }
  };
  var input = document.getElementById("search");
  var status = document.getElementById("search-status");
  var table = document.getElementById("results");
  var body = table.tBodies[0];
  var LIMIT = 200;
  function cell(tr, text, href) {
    var td = document.createElement("td");
    if (href) { var a = document.createElement("a"); a.href = href; a.textContent = text; td.appendChild(a); }
    else { td.textContent = text; }
    tr.appendChild(td);
  }
  function search(text, fieldQueries) { return match.search(rows, text, fieldQueries || {}, access); }
  function run() {
    body.textContent = "";
    if (!match.queryWords(input.value).length) {
      table.hidden = true;
      status.textContent = "共 " + rows.length + " 户，输入任意字段的一部分即可查询。";
      return;
    }
    var hits;
    try {
      hits = search(input.value);
    } catch (error) {
      table.hidden = true;
      status.textContent = "输入有误：" + error.message;
      return;
    }
    hits.slice(0, LIMIT).forEach(function (hit) {
      var tr = document.createElement("tr"), r = hit.row;
      cell(tr, r[1], r[0]); cell(tr, r[2], r[0]);
      for (var c = 3; c < 8; c++) { cell(tr, r[c]); }
      body.appendChild(tr);
    });
    table.hidden = hits.length === 0;
    status.textContent = hits.length === 0 ? "没有符合条件的客户。" :
      "找到 " + hits.length + " 户" + (hits.length > LIMIT ? "，显示前 " + LIMIT + " 户" : "") + "。";
  }
  window.fieldsyncServerSearch = { search: search };
  input.addEventListener("input", run);
  run();
})();
