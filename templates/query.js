/* fieldsync query page (P2): offline customer search with the same rules as `fieldsync find`.
 *
 * Data arrives as <script src> chunks (fetch() is refused on file://) that call
 * fieldsyncQuery.manifest/add/readings. Normalised texts and the pinyin of every character
 * were computed by fieldsync in Python; this file only matches and ranks.
 */
(function () {
  "use strict";
  var FIELDS = ["account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage"];
  var PINYIN = { 1: true, 4: true, 5: true };            // name, address, line
  var CAPACITY = 3, VOLTAGE = 6;
  var EXACT = 0, PREFIX = 1, SUBSTRING = 2, NONE = 3;
  var LETTERS = /^[a-z]+$/;
  var COMPARISON = /^\s*(>=|<=|==|=|>|<)\s*([0-9]+(?:\.[0-9]*)?)\s*(?:kva|千伏安)?\s*$/;
  var MAX_QUERY = 200, SHOWN = 100;

  var rows = [], readings = {}, initialMask = new Int32Array(65536), expected = -1, loaded = 0, folders = {};
  for (var letter = 0; letter < 26; letter++) initialMask[97 + letter] = 1 << letter;  // Latin reads as itself

  function normalize(text) { return String(text).normalize("NFKC").toLowerCase(); }
  function normalizeVoltage(text) {
    return normalize(text).replace(/\s+/g, "").replace(/千伏/g, "kv").replace(/伏/g, "v");
  }
  function queryText(field, text) { return field === VOLTAGE ? normalizeVoltage(text) : normalize(text); }
  function norm(row, field) { var n = row[7]; return n && n[field] ? n[field] : row[field]; }

  function plainRank(text, q) {
    var at = text.indexOf(q);
    if (at < 0) return NONE;
    return text === q ? EXACT : text.lastIndexOf(q, 0) === 0 ? PREFIX : SUBSTRING;
  }

  // Full pinyin: a small automaton over (letters matched, started at the first letter?), so a
  // polyphonic character matches on any reading without listing every spelling. How one
  // reading meets the query at a given point is worked out once per query (`memo`).
  function fullRank(text, q, memo) {
    var best = NONE, active = [], chars = Array.from(text), lastIndex = chars.length - 1;
    for (var i = 0; i < chars.length; i++) {
      var r = readings[chars[i]], options = r ? r[1] : [chars[i]], following = [];
      for (var k = 0; k < options.length; k++) {
        var reading = options[k];
        var starts = memo.starts(reading);
        for (var t = 0; t < starts.length; t++) {
          var offset = starts[t][0], atStart = i === 0 && offset === 0 ? 1 : 0;
          if (starts[t][1]) {   // the whole query fits in this reading's tail
            var rank = atStart && i === lastIndex && reading.length - offset === q.length ? EXACT : atStart ? PREFIX : SUBSTRING;
            if (rank < best) best = rank;
          } else {
            following.push((reading.length - offset) * 2 + atStart);
          }
        }
        for (var s = 0; s < active.length; s++) {
          var done = active[s] >> 1, flag = active[s] & 1, step = memo.step(reading, done);
          if (step === 2) {
            var rank2 = flag && i === lastIndex && done + reading.length === q.length ? EXACT : flag ? PREFIX : SUBSTRING;
            if (rank2 < best) best = rank2;
          } else if (step === 1) {
            following.push((done + reading.length) * 2 + flag);
          }
        }
      }
      active = following.length > 1 ? Array.from(new Set(following)) : following;
      if (best === EXACT) break;
    }
    return best;
  }

  function fullMemo(q) {
    var startCache = new Map(), stepCache = new Map();
    return {
      // [offset, fits] for every tail of `reading` where a match may begin
      starts: function (reading) {
        var found = startCache.get(reading);
        if (found) return found;
        found = [];
        for (var o = 0; o < reading.length; o++) {
          var tail = reading.slice(o);
          if (tail.startsWith(q)) found.push([o, true]);
          else if (q.startsWith(tail)) found.push([o, false]);
        }
        startCache.set(reading, found);
        return found;
      },
      // 2: the rest of the query ends inside `reading`; 1: it goes on past it; 0: no match
      step: function (reading, done) {
        var key = done + " " + reading, found = stepCache.get(key);
        if (found !== undefined) return found;
        var rest = q.slice(done);
        found = reading.startsWith(rest) ? 2 : rest.startsWith(reading) ? 1 : 0;
        stepCache.set(key, found);
        return found;
      }
    };
  }

  function compareCapacity(query) {
    var m = COMPARISON.exec(normalize(query));
    if (!m) return null;
    var op = m[1], limit = parseFloat(m[2]);
    return function (row) {
      if (row[CAPACITY] === "") return NONE;
      var v = parseFloat(row[CAPACITY]);
      var ok = op === ">=" ? v >= limit : op === "<=" ? v <= limit : op === ">" ? v > limit :
               op === "<" ? v < limit : v === limit;
      return ok ? (v === limit ? EXACT : SUBSTRING) : NONE;
    };
  }

  // One condition on one field -> function(row) giving its rank (NONE when it does not match).
  // Initials: one letter per character, so a window of the text whose letter masks cover the
  // query's letters. Masks are indexed by UTF-16 code unit: no allocation over 100,000 rows
  // (characters outside the BMP have no initials here).
  function initialsRank(text, bits) {
    var last = text.length - bits.length;
    for (var start = 0; start <= last; start++) {
      var j = 0;
      while (j < bits.length && (initialMask[text.charCodeAt(start + j)] & bits[j])) j++;
      if (j === bits.length) return last === 0 ? EXACT : start === 0 ? PREFIX : SUBSTRING;
    }
    return NONE;
  }

  // Characters where a full-pinyin match of q can begin: some reading has a tail that starts
  // with q or that q starts with. A row without one of them cannot match; the rest go through
  // the automaton.
  function fullStarts(q, memo) {
    var found = new Uint8Array(65536);
    found[q.charCodeAt(0)] = 1;   // a Latin letter reads as itself
    Object.keys(readings).forEach(function (ch) {
      if (ch.length === 1 && readings[ch][1].some(function (r) { return memo.starts(r).length > 0; })) {
        found[ch.charCodeAt(0)] = 1;
      }
    });
    return found;
  }

  function containsAny(text, flags) {
    for (var i = 0; i < text.length; i++) if (flags[text.charCodeAt(i)]) return true;
    return false;
  }

  function fieldMatcher(field, query) {
    if (field === CAPACITY) { var compare = compareCapacity(query); if (compare) return compare; }
    var q = queryText(field, query);
    var letters = PINYIN[field] && LETTERS.test(q);
    var bits = letters ? Array.from(q, function (c) { return 1 << (c.charCodeAt(0) - 97); }) : null;
    var memo = letters && q.length > 1 ? fullMemo(q) : null;
    var starts = memo ? fullStarts(q, memo) : null;
    return function (row) {
      var text = norm(row, field);
      var best = plainRank(text, q);
      if (best === EXACT || !letters || !text) return best;
      var r = initialsRank(text, bits);
      if (r < best) best = r;
      if (best !== EXACT && starts && containsAny(text, starts)) {
        r = fullRank(text, q, memo);
        if (r < best) best = r;
      }
      return best;
    };
  }

  function search(text, fieldQueries) {
    var tests = [];
    text = (text || "").slice(0, MAX_QUERY).trim();
    if (text) {
      var any = FIELDS.map(function (_, f) { return fieldMatcher(f, text); });
      tests.push(function (row) {
        var best = NONE;
        for (var f = 0; f < any.length && best !== EXACT; f++) { var r = any[f](row); if (r < best) best = r; }
        return best;
      });
    }
    Object.keys(fieldQueries).forEach(function (f) {
      var q = (fieldQueries[f] || "").slice(0, MAX_QUERY).trim();
      if (q) tests.push(fieldMatcher(Number(f), q));
    });
    var hits = [];
    for (var i = 0; i < rows.length; i++) {
      var rank = tests.length ? EXACT : SUBSTRING;
      for (var t = 0; t < tests.length && rank !== NONE; t++) { var r = tests[t](rows[i]); if (r > rank) rank = r; }
      if (rank !== NONE) hits.push(rank * 1e8 + i);   // rows are in account order already
    }
    hits.sort(function (a, b) { return a - b; });
    return hits.map(function (h) { return { rank: Math.floor(h / 1e8), row: rows[h % 1e8] }; });
  }

  function render() {
    var text = document.getElementById("q").value;
    var fieldQueries = {};
    document.querySelectorAll("[data-field]").forEach(function (input) {
      fieldQueries[FIELDS.indexOf(input.getAttribute("data-field"))] = input.value;
    });
    var started = performance.now();
    var hits = search(text, fieldQueries);
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
    var status = document.getElementById("status");
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
    readings: function (table) {
      Object.keys(table).forEach(function (ch) {
        readings[ch] = [table[ch][0].split(" "), table[ch][1].split(" ")];
        if (ch.length === 1) initialMask[ch.charCodeAt(0)] = readings[ch][0].reduce(function (m, l) {
          var code = l.charCodeAt(0) - 97;
          return code >= 0 && code < 26 ? m | (1 << code) : m;
        }, 0);
      });
    },
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
