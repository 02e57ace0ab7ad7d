/* fieldsync customer map: Leaflet with the configured tiles, and a no-tile mode offline.
   Reads its settings from <script type="application/json" id="fieldsync-map-data">, written
   by fieldsync/mapview.py when the page was generated. The panel beside the map (coordinates,
   distance, app links) is plain HTML and works without this script. */
(function () {
  "use strict";
  var data = document.getElementById("fieldsync-map-data");
  var box = document.getElementById("fieldsync-map");
  if (!data || !box) { return; }
  var notice = document.getElementById("fieldsync-map-offline");
  var d = JSON.parse(data.textContent);
  if (typeof L === "undefined") {          // Leaflet files missing: the panel is enough
    box.setAttribute("data-state", "no-leaflet");
    return;
  }
  box.hidden = false;
  var target = L.latLng(d.lat, d.lon);
  var map = L.map(box, { zoomControl: true, attributionControl: true });
  var loaded = 0;

  function offline(reason) {
    if (loaded) { return; }                 // some tiles came: a few failures are not "offline"
    box.classList.add("no-tiles");
    box.setAttribute("data-state", "offline");
    if (notice) { notice.hidden = false; notice.setAttribute("data-reason", reason); }
  }

  if (d.tile_url) {
    var layer = L.tileLayer(d.tile_url, {
      maxZoom: d.max_zoom, attribution: d.attribution || "", subdomains: d.subdomains
    });
    layer.on("tileload", function () {
      loaded += 1;
      box.classList.remove("no-tiles");
      box.setAttribute("data-state", "tiles");
      if (notice) { notice.hidden = true; }
    });
    layer.on("tileerror", function () { offline("tile-error"); });
    layer.addTo(map);
  } else {
    offline("no-tile-url");
  }

  // Leaflet inserts a string tooltip as HTML: the name comes from data, so it goes in as a
  // text node (a DOM element is used as is).
  var label = document.createElement("span");
  label.textContent = d.name || "";
  L.marker(target, { title: d.name || "" }).addTo(map)
    .bindTooltip(label, { permanent: !!d.name, direction: "top", offset: [0, -36] });
  if (d.accuracy_m) {
    L.circle(target, { radius: d.accuracy_m, weight: 1, fillOpacity: 0.12 }).addTo(map);
  }
  if (d.last_fix) {
    var me = L.latLng(d.last_fix.lat, d.last_fix.lon);
    L.circleMarker(me, { radius: 7, color: "#c0392b", fillOpacity: 0.9 })
      .bindTooltip("上次定位", { direction: "bottom" }).addTo(map);
    L.polyline([me, target], { color: "#c0392b", dashArray: "6 6", weight: 2 }).addTo(map);
    map.fitBounds(L.latLngBounds([me, target]).pad(0.25), { maxZoom: d.zoom });
  } else {
    map.setView(target, d.zoom);
  }
  L.control.scale({ imperial: false }).addTo(map);
  if (!box.getAttribute("data-state")) { box.setAttribute("data-state", "loading"); }
}());
