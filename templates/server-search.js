/* fieldsync server root page: the customer search over customers.js (window.FIELDSYNC_CUSTOMERS).
   A file, not an inline script, so the pages' Content-Security-Policy can forbid inline script. */
(function () {
  // Substring match on the seven fields; every space-separated term must match some field.
  var rows = window.FIELDSYNC_CUSTOMERS || [];
  var input = document.getElementById("search");
  var status = document.getElementById("search-status");
  var table = document.getElementById("results");
  var body = table.tBodies[0];
  var LIMIT = 200;
  var haystacks = rows.map(function (r) { return r.slice(1).join("\u0001").toLowerCase(); });
  function cell(tr, text, href) {
    var td = document.createElement("td");
    if (href) { var a = document.createElement("a"); a.href = href; a.textContent = text; td.appendChild(a); }
    else { td.textContent = text; }
    tr.appendChild(td);
  }
  function run() {
    var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    body.textContent = "";
    if (!terms.length) { table.hidden = true; status.textContent = "共 " + rows.length + " 户，输入任意字段的一部分即可查询。"; return; }
    var found = 0;
    for (var i = 0; i < rows.length; i++) {
      var hay = haystacks[i], ok = true;
      for (var t = 0; t < terms.length && ok; t++) { ok = hay.indexOf(terms[t]) >= 0; }
      if (!ok) { continue; }
      found++;
      if (found > LIMIT) { continue; }
      var tr = document.createElement("tr"), r = rows[i];
      cell(tr, r[1], r[0]); cell(tr, r[2], r[0]);
      for (var c = 3; c < r.length; c++) { cell(tr, r[c]); }
      body.appendChild(tr);
    }
    table.hidden = found === 0;
    status.textContent = found === 0 ? "没有符合条件的客户。" :
      "找到 " + found + " 户" + (found > LIMIT ? "，显示前 " + LIMIT + " 户" : "") + "。";
  }
  input.addEventListener("input", run);
  run();
})();
