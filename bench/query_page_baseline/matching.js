/* fieldsync's matching rules in the browser (docs/search.md), one file for both pages: the tablet's
 * query page (query.js) and the server's page (server-search.js) load it before their own script.
 * fieldsync/masterdata/matching.py is the same in Python; tests/data/search_vectors.json holds
 * `fieldsync find` and both pages to the same answers.
 *
 * The customers' texts were normalised by fieldsync in Python (whitespace removed, voltage as its
 * level, pinyin of every character); only queries are normalised here.
 */
(function () {
  "use strict";
  var FIELDS = ["account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage"];
  var PINYIN = { 1: true, 4: true, 5: true };            // name, address, line
  var CAPACITY = 3, VOLTAGE = 6;
  var EXACT = 0, PREFIX = 1, SUBSTRING = 2, NONE = 3;
  var LETTERS = /^[a-z]+$/;
  var NUMBER = "([0-9]+(?:\\.[0-9]+)?)", KVA = "(?:kva|千伏安)?";
  var BOUND = new RegExp("^(>=|<=|==|=|>|<|≥|≤)?" + NUMBER + KVA + "$");
  var RANGE = new RegExp("^" + NUMBER + KVA + "[-~]" + NUMBER + KVA + "$");
  var LEVEL = new RegExp("^(?:交流|ac)?" + NUMBER + "(kv|v)$");
  var BARE_NUMBER = new RegExp("^" + NUMBER + "$");
  // Spaces a person types inside one value: "10 kV", ">= 300", "300 - 400" are one word each.
  var JOINS = [[/(>=|<=|==|=|>|<|≥|≤)\s+(?=[0-9])/g, "$1"],
               [/([0-9])\s+(?=(?:kva|kv|v|千伏安|千伏|伏)(?![a-z]))/g, "$1"],
               [/([0-9a-z])\s*([-~])\s*(?=[0-9])/g, "$1$2"]];
  var OPS = {
    ">=": function (v, l) { return v >= l; }, "≥": function (v, l) { return v >= l; },
    "<=": function (v, l) { return v <= l; }, "≤": function (v, l) { return v <= l; },
    ">": function (v, l) { return v > l; }, "<": function (v, l) { return v < l; },
    "=": function (v, l) { return v === l; }, "==": function (v, l) { return v === l; }
  };
  var CAPACITY_FORMS = "N, >=N, <=N, >N, <N 或 A-B（kVA），如 315、>=300、300-400";
  var VOLTAGE_FORMS = "电压等级，如 10kV、10 KV、10千伏、0.4kV、380V";
  var MAX_QUERY = 200;

  var readings = {}, initialMask = new Int32Array(65536);
  for (var letter = 0; letter < 26; letter++) initialMask[97 + letter] = 1 << letter;  // Latin reads as itself

  function normalize(text) { return String(text).normalize("NFKC").toLowerCase(); }
  function squeeze(text) { return normalize(text).replace(/\s+/g, ""); }

  function voltageLevel(text, bareUnit) {
    var value = squeeze(text).replace(/千伏/g, "kv").replace(/伏/g, "v");
    if (bareUnit && BARE_NUMBER.test(value)) value += bareUnit;
    var m = LEVEL.exec(value);
    if (!m) return null;
    var kilovolts = parseFloat(m[1]) / (m[2] === "v" ? 1000 : 1);
    return String(Number(kilovolts.toPrecision(6))) + "kv";   // Python's f"{kilovolts:g}"
  }

  function queryWords(text) {
    var value = normalize(text || "");
    JOINS.forEach(function (join) { value = value.replace(join[0], join[1]); });
    return value.split(/\s+/).filter(Boolean);
  }

  function capacityBounds(word) {
    var value = squeeze(word), m = BOUND.exec(value);
    if (m) return [[OPS[m[1] || "="], parseFloat(m[2])]];
    m = RANGE.exec(value);
    if (!m) return null;
    var low = Math.min(parseFloat(m[1]), parseFloat(m[2])), high = Math.max(parseFloat(m[1]), parseFloat(m[2]));
    return [[OPS[">="], low], [OPS["<="], high]];
  }

  function capacityRank(bounds, value) {
    if (value !== value) return NONE;   // no capacity
    for (var b = 0; b < bounds.length; b++) if (!bounds[b][0](value, bounds[b][1])) return NONE;
    for (b = 0; b < bounds.length; b++) if (value === bounds[b][1]) return EXACT;
    return SUBSTRING;
  }

  // The conditions one field's value makes; a malformed capacity or voltage is an error.
  function fieldConditions(field, value) {
    if (field === VOLTAGE) {
      var level = voltageLevel(value, "kv");
      if (!level) throw new Error("供电电压等级“" + value + "”无法识别；请输入" + VOLTAGE_FORMS);
      return [level];
    }
    var words = queryWords(value);
    if (field === CAPACITY) words.forEach(function (w) {
      if (!capacityBounds(w)) throw new Error("合同容量“" + value + "”无法识别；可用 " + CAPACITY_FORMS);
    });
    return words;
  }

  function plainRank(text, q) {
    var at = text.indexOf(q);
    if (at < 0) return NONE;
    return text === q ? EXACT : at === 0 ? PREFIX : SUBSTRING;
  }

  // Initials: one letter per character, a contiguous run of the text whose letter masks cover the
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

  // Characters where a full-pinyin match of q can begin: some reading has a tail that starts
  // with q or that q starts with. A text without one of them cannot match.
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

  function never() { return NONE; }

  // One word on one field -> function(row, access) giving its rank (NONE when it does not match).
  function wordMatcher(field, word) {
    if (field === CAPACITY) {
      var bounds = capacityBounds(word);
      return bounds ? function (row, access) { return capacityRank(bounds, access.capacity(row)); } : never;
    }
    if (field === VOLTAGE) {
      var level = voltageLevel(word, "");
      return level ? function (row, access) { return access.text(row, VOLTAGE) === level ? EXACT : NONE; } : never;
    }
    var q = squeeze(word);
    if (!q) return never;
    var letters = PINYIN[field] && LETTERS.test(q);
    var bits = letters ? Array.from(q, function (c) { return 1 << (c.charCodeAt(0) - 97); }) : null;
    var memo = letters && q.length > 1 ? fullMemo(q) : null;
    var starts = memo ? fullStarts(q, memo) : null;
    return function (row, access) {
      var text = access.text(row, field);
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

  function anyField(word) {
    var each = FIELDS.map(function (_, f) { return wordMatcher(f, word); });
    return function (row, access) {
      var best = NONE;
      for (var f = 0; f < each.length && best !== EXACT; f++) { var r = each[f](row, access); if (r < best) best = r; }
      return best;
    };
  }

  // The tests of a query: every word of `text` in any field, every condition of `fieldQueries`
  // ({field name or index: value or [values]}) in its field. Throws Error for a malformed value.
  function compile(text, fieldQueries) {
    var tests = queryWords(String(text || "").slice(0, MAX_QUERY)).map(anyField);
    Object.keys(fieldQueries || {}).forEach(function (key) {
      var field = /^[0-9]+$/.test(key) ? Number(key) : FIELDS.indexOf(key);
      var given = fieldQueries[key];
      (Array.isArray(given) ? given : [given]).forEach(function (value) {
        value = String(value == null ? "" : value).slice(0, MAX_QUERY);
        if (!value.trim()) return;
        fieldConditions(field, value).forEach(function (word) { tests.push(wordMatcher(field, word)); });
      });
    });
    return tests;
  }

  // Matches of a query in `rows` (in account order), best rank first then row order:
  // [{rank, row}]. access = {text(row, field): normalised text, capacity(row): number or NaN}.
  function search(rows, text, fieldQueries, access) {
    var tests = compile(text, fieldQueries), hits = [];
    for (var i = 0; i < rows.length; i++) {
      var rank = tests.length ? EXACT : SUBSTRING;
      for (var t = 0; t < tests.length && rank !== NONE; t++) { var r = tests[t](rows[i], access); if (r > rank) rank = r; }
      if (rank !== NONE) hits.push(rank * 1e8 + i);
    }
    hits.sort(function (a, b) { return a - b; });
    return hits.map(function (h) { return { rank: Math.floor(h / 1e8), row: rows[h % 1e8] }; });
  }

  // --- The same rules over columns (the query page): a field of every customer is one string,
  // values ended by "\n", with offsets[i] where customer i starts. Plain words are found with the
  // engine's indexOf and pinyin with one regular expression per word, skipping to the next
  // customer after a hit, so no JavaScript runs per customer for most words; the rank of a hit
  // comes from where it starts. Answers equal search() (tests/data/search_vectors.json).
  // The scans are generators that yield about every SLICE customers, so the page can run a
  // search in slices between frames and drop it when a newer query comes (query.js).
  var classCache = new Map();
  var SLICE = 10000;

  function charClass(key, test) {
    var found = classCache.get(key);
    if (found !== undefined) return found;
    var chars = [];
    Object.keys(readings).forEach(function (ch) { if (test(ch, readings[ch])) chars.push(ch.replace(/[\\\]\[^-]/g, "\\$&")); });
    found = chars.length ? "[" + chars.join("") + "]" : "";
    classCache.set(key, found);
    return found;
  }

  // Initials: a run of characters each with an initial of the query's letter (Latin reads as itself).
  function initialsPattern(q) {
    return new RegExp(Array.from(q, function (letter) {
      var bit = 1 << (letter.charCodeAt(0) - 97);
      var cls = charClass("i" + letter, function (ch) { return ch.length === 1 && (initialMask[ch.charCodeAt(0)] & bit); });
      return cls ? "(?:" + letter + "|" + cls + ")" : letter;
    }).join(""), "gu");
  }

  // Full pinyin over characters with readings: the first character's reading ends with the query's
  // start, whole readings follow, the last one starts with what is left. Latin letters read as
  // themselves everywhere, which would make this pattern explode; customers with Latin letters in
  // the field are checked by fullRank instead. null when the pattern would be too large.
  // `whole`: the first reading is read from its start (a PREFIX match when at the field's start);
  // `exact`: the last reading ends with the query, and the field right after it (an EXACT match).
  function fullPattern(q, whole, exact) {
    var has = function (kind, part) {
      return charClass(kind + part, function (ch, r) {
        return r[1].some(function (reading) {
          return kind === "e" ? reading.startsWith(part) : kind === "m" ? reading === part
               : kind === "f" ? reading.endsWith(part) : reading.indexOf(part) >= 0;
        });
      });
    };
    var memo = {}, budget = 200000;
    function rest(i) {
      if (memo[i] !== undefined) return memo[i];
      var options = [], end = has(exact ? "m" : "e", q.slice(i));
      if (end) options.push(end);
      for (var j = i + 1; j < q.length; j++) {
        var mid = has("m", q.slice(i, j)), tail = mid ? rest(j) : "";
        if (mid && tail) options.push(mid + tail);
      }
      memo[i] = options.length ? "(?:" + options.join("|") + ")" : "";
      budget -= memo[i].length;
      return memo[i];
    }
    var options = [], single = has(exact ? "m" : whole ? "e" : "s", q);
    if (single) options.push(single);
    for (var j = 1; j < q.length && budget > 0; j++) {
      var first = has(whole ? "m" : "f", q.slice(0, j)), tail = first ? rest(j) : "";
      if (first && tail) options.push(first + tail);
    }
    if (budget <= 0) return null;
    if (!options.length) return /(?!)/u;
    // `whole` patterns test one customer's value (a sticky test inside the column's long string
    // was found to cost far more than slicing the value out)
    return whole ? new RegExp("^(?:" + options.join("|") + ")" + (exact ? "$" : ""), "u")
                 : new RegExp(options.join("|"), "gu");
  }

  // Where customer `row` (>= the previous one) holds position `pos`.
  function rowAt(offsets, row, pos) {
    var low = row, high = offsets.length - 2;
    while (low < high) { var mid = (low + high + 1) >> 1; if (offsets[mid] <= pos) low = mid; else high = mid - 1; }
    return low;
  }

  function startRank(offsets, row, pos, length) {
    return pos !== offsets[row] ? SUBSTRING : offsets[row + 1] - 1 - offsets[row] === length ? EXACT : PREFIX;
  }

  function* scanPlain(column, q, rank, exactOnly) {
    var text = column.text, offsets = column.offsets, row = 0, mark = SLICE, pos = text.indexOf(q);
    while (pos >= 0) {
      row = rowAt(offsets, row, pos);
      if (row >= mark) { mark = row + SLICE; yield; }
      var r = startRank(offsets, row, pos, q.length);
      if ((!exactOnly || r === EXACT) && r < rank[row]) rank[row] = r;
      pos = text.indexOf(q, offsets[row + 1]);
    }
  }

  // onHit(row, atStart) -> rank of the leftmost match in that customer
  function* scanPattern(column, pattern, rank, onHit) {
    var text = column.text, offsets = column.offsets, row = 0, mark = SLICE, m;
    pattern.lastIndex = 0;
    while ((m = pattern.exec(text))) {
      row = rowAt(offsets, row, m.index);
      if (row >= mark) { mark = row + SLICE; yield; }
      var r = onHit(row, m.index === offsets[row], m[0].length);
      if (r < rank[row]) rank[row] = r;
      pattern.lastIndex = offsets[row + 1];
    }
  }

  function latinRows(column) {
    if (!column.latin) {
      var rows = [];
      drain(scanPattern(column, /[a-z]/g, new Uint8Array(column.offsets.length), function (row) { rows.push(row); return NONE; }));
      column.latin = rows;
    }
    return column.latin;
  }

  function drain(steps) { var step; while (!(step = steps.next()).done); return step.value; }

  function valueOf(column, row) { return column.text.slice(column.offsets[row], column.offsets[row + 1] - 1); }

  // The rank of one word in one field for every customer, lowered into `rank`.
  function* columnWord(columns, field, word, rank) {
    var n = columns.count, r, i;
    if (field === CAPACITY) {
      var bounds = capacityBounds(word);
      if (bounds) for (i = 0; i < n; i++) {
        r = capacityRank(bounds, columns.capacity[i]); if (r < rank[i]) rank[i] = r;
        if (i % SLICE === SLICE - 1) yield;
      }
      return;
    }
    if (field === VOLTAGE) {
      var level = voltageLevel(word, "");
      if (level) yield* scanPlain(columns.norm[VOLTAGE], level, rank, true);
      return;
    }
    var q = squeeze(word), column = columns.norm[field];
    if (!q) return;
    yield* scanPlain(column, q, rank, false);
    if (!PINYIN[field] || !LETTERS.test(q)) return;
    yield;
    var initials = initialsPattern(q);
    yield;   // building a pattern can take a slice of its own
    yield* scanPattern(column, initials, rank, function (row, atStart, length) {
      return !atStart ? SUBSTRING : column.offsets[row + 1] - 1 - column.offsets[row] === length ? EXACT : PREFIX;
    });
    if (q.length < 2) return;
    var memo = fullMemo(q), pattern = fullPattern(q);
    yield;
    var latin = latinRows(column);
    var exact = function (row) { return fullRank(valueOf(column, row), q, memo); };
    if (pattern) {
      // a match at the field's start: EXACT or PREFIX only if read from a reading's start
      var prefix = fullPattern(q, true, false);
      yield;
      var whole = fullPattern(q, true, true);
      yield;
      yield* scanPattern(column, pattern, rank, function (row, atStart) {
        if (!atStart) return SUBSTRING;
        if (!prefix || !whole) return exact(row);
        var value = valueOf(column, row);
        return whole.test(value) ? EXACT : prefix.test(value) ? PREFIX : SUBSTRING;
      });
      for (i = 0; i < latin.length; i++) {
        r = exact(latin[i]); if (r < rank[latin[i]]) rank[latin[i]] = r;
        if (i % 1000 === 999) yield;
      }
    } else {   // a pathological query: check every customer that has a starting character
      var starts = fullStarts(q, memo);
      for (i = 0; i < n; i++) {
        if (i % 1000 === 999) yield;
        if (rank[i] === EXACT) continue;
        var text = valueOf(column, i);
        if (containsAny(text, starts)) { r = fullRank(text, q, memo); if (r < rank[i]) rank[i] = r; }
      }
    }
  }

  // The query's words and field conditions as [field or -1 for any field, word]; throws Error
  // for a malformed value, like compile().
  function querySpecs(text, fieldQueries) {
    var specs = queryWords(String(text || "").slice(0, MAX_QUERY)).map(function (w) { return [-1, w]; });
    Object.keys(fieldQueries || {}).forEach(function (key) {
      var field = /^[0-9]+$/.test(key) ? Number(key) : FIELDS.indexOf(key);
      var given = fieldQueries[key];
      (Array.isArray(given) ? given : [given]).forEach(function (value) {
        value = String(value == null ? "" : value).slice(0, MAX_QUERY);
        if (!value.trim()) return;
        fieldConditions(field, value).forEach(function (word) { specs.push([field, word]); });
      });
    });
    return specs;
  }

  // search() over columns = {count, norm: [{text, offsets}] per field, capacity: Float64Array}.
  // Returns {total, counts: per rank, ids: the first `limit` matches best first (all if no limit)};
  // only those are ordered: ranks are three buckets, each already in account order.
  function searchColumns(columns, text, fieldQueries, limit) {
    return drain(searchSteps(columns, text, fieldQueries, limit));
  }

  // searchColumns() as steps: a generator that yields between slices and returns its answer.
  // A malformed query throws here, before the first step.
  function searchSteps(columns, text, fieldQueries, limit) {
    return columnSteps(columns, querySpecs(text, fieldQueries), limit);
  }

  function* columnSteps(columns, specs, limit) {
    var n = columns.count, rank = new Uint8Array(n), i, s;
    rank.fill(specs.length ? EXACT : SUBSTRING);
    for (s = 0; s < specs.length; s++) {
      var spec = specs[s], one = new Uint8Array(n).fill(NONE);
      if (spec[0] >= 0) yield* columnWord(columns, spec[0], spec[1], one);
      else for (var f = 0; f < FIELDS.length; f++) { yield* columnWord(columns, f, spec[1], one); yield; }
      for (i = 0; i < n; i++) if (one[i] > rank[i]) rank[i] = one[i];
      yield;
    }
    var counts = [0, 0, 0], want = limit == null ? n : limit, buckets = [[], [], []];
    for (i = 0; i < n; i++) {
      var r = rank[i];
      if (r !== NONE) { if (buckets[r].length < want) buckets[r].push(i); counts[r]++; }
    }
    var ids = buckets[0].concat(buckets[1], buckets[2]).slice(0, want);
    return { total: counts[0] + counts[1] + counts[2], counts: counts, ids: ids, rank: rank };
  }

  // char -> "initials" and "full readings", space-separated, as querydata.py writes them.
  function learnReadings(table) {
    classCache.clear();
    Object.keys(table).forEach(function (ch) {
      readings[ch] = [table[ch][0].split(" "), table[ch][1].split(" ")];
      if (ch.length === 1) initialMask[ch.charCodeAt(0)] = readings[ch][0].reduce(function (m, l) {
        var code = l.charCodeAt(0) - 97;
        return code >= 0 && code < 26 ? m | (1 << code) : m;
      }, 0);
    });
  }

  window.fieldsyncMatch = {
    FIELDS: FIELDS, EXACT: EXACT, PREFIX: PREFIX, SUBSTRING: SUBSTRING, NONE: NONE,
    learnReadings: learnReadings, search: search, searchColumns: searchColumns, searchSteps: searchSteps, queryWords: queryWords
  };
})();
