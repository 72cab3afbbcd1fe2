// The report form (/cases/new): place the case (phone location, drag, tap or address), show its grid by the
// one rule before sending, add photos from the camera or the gallery, and send it all as one multipart request.
// Every text shown comes from the page's config (translated on the server) or the user; nothing is innerHTML.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("report-config").textContent);
  const T = cfg.text;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const form = $("report"), sendButton = $("send"), message = $("message"), gridBox = $("grid-box");
  const placeStatus = $("place-status"), offer = $("photo-offer"), list = $("photo-list"), progress = $("progress");
  const state = { point: null, located: null, photos: [], busy: false };
  window.__report = state;

  function fill(text, values) {
    return String(text).replace(/\{(\w+)\}/g, (_, k) => (values && k in values ? values[k] : "{" + k + "}"));
  }
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v == null ? "" : String(v);
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) if (child != null) node.appendChild(child);
    return node;
  }
  function say(text, bad) {
    message.textContent = text || "";
    message.className = bad ? "bad" : "";
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then((r) =>
      r.json().then((body) => {
        if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
        return body;
      })
    );
  }

  // ---- the map ----------------------------------------------------------------------------------------------
  const map = L.map("report-map", { zoomControl: true, maxZoom: 19, attributionControl: !!cfg.basemap });
  if (cfg.basemap) {
    L.tileLayer(cfg.basemap.url, {
      subdomains: cfg.basemap.subdomains || "abc", maxNativeZoom: cfg.basemap.max_native_zoom,
      maxZoom: 19, attribution: cfg.basemap.attribution,
    }).addTo(map);
  }
  map.setView([39.1, 117.2], 12);
  // Leaflet's own titles are English: the page's language replaces them; the basemap's credit is a name.
  for (const [node, label] of [[map.zoomControl._zoomInButton, T.zoom_in], [map.zoomControl._zoomOutButton, T.zoom_out]]) {
    node.title = label;
    node.setAttribute("aria-label", label);
  }
  if (map.attributionControl) map.attributionControl.getContainer().setAttribute("translate", "no");
  const mine = (p) => cfg.user.all || p.open !== null;
  const grids = L.geoJSON(null, {
    style: (f) => mine(f.properties)
      ? { color: "#b71c1c", weight: 2, fillColor: "#b71c1c", fillOpacity: 0.06 }
      : { color: "#7b8794", weight: 1, fillOpacity: 0.02, dashArray: "3" },
    interactive: false,
  }).addTo(map);
  const marker = L.marker([39.1, 117.2], { draggable: true, autoPan: true, title: "case" });
  state.mapReady = getJSON(cfg.api.grids).then((fc) => {
    grids.addData(fc);
    state.gridCount = grids.getLayers().length;
    const own = L.geoJSON({ type: "FeatureCollection", features: fc.features.filter((f) => mine(f.properties)) });
    const bounds = own.getBounds().isValid() ? own.getBounds() : grids.getBounds();
    if (!state.point && bounds.isValid()) map.fitBounds(bounds, { maxZoom: 17 });
  }).catch((e) => say(e.message, true));
  window.__reportMap = map;

  marker.on("dragend", () => { const p = marker.getLatLng(); place(p.lng, p.lat, "drag"); });
  map.on("click", (e) => place(e.latlng.lng, e.latlng.lat, "tap"));

  // ---- the place and its grid -------------------------------------------------------------------------------
  let asked = 0;
  function place(lon, lat, source) {
    state.point = { lon: +lon.toFixed(7), lat: +lat.toFixed(7), source: source };
    $("lon").value = state.point.lon;
    $("lat").value = state.point.lat;
    marker.setLatLng([lat, lon]);
    if (!map.hasLayer(marker)) marker.addTo(map);
    if (source !== "drag" && source !== "tap") map.setView([lat, lon], Math.max(map.getZoom(), 16), { animate: false }); // a grid and neighbours fit at 16
    const ticket = ++asked;
    state.grid = null;
    sendButton.disabled = true;
    gridBox.className = "";
    gridBox.textContent = "…";
    return getJSON(cfg.api.locate + "?lon=" + state.point.lon + "&lat=" + state.point.lat)
      .then((where) => { if (ticket === asked) showGrid(where); })
      .catch((e) => { if (ticket === asked) { gridBox.className = "bad"; gridBox.textContent = e.message; } });
  }
  function yours(where) {
    if (cfg.user.all) return true;
    return [where.grid_code, where.community_code, where.street_code].some((c) => c && cfg.user.areas.includes(c));
  }
  function showGrid(where) {
    state.grid = where;
    gridBox.replaceChildren();
    if (!where.grid_code) {
      gridBox.className = "bad";
      gridBox.appendChild(el("div", { text: T.outside }));
      if (where.nearest_code) {
        gridBox.appendChild(el("div", { text: fill(T.nearest, { grid: where.nearest_code, metres: Math.round(where.nearest_distance_m) }) }));
      }
      sendButton.disabled = true;
      return;
    }
    if (!yours(where)) {
      gridBox.className = "bad";
      gridBox.dataset.grid = where.grid_code;
      gridBox.appendChild(el("div", { text: fill(T.not_yours, { grid: (where.grid_name || "") + " " + where.grid_code }) }));
      sendButton.disabled = true;
      return;
    }
    gridBox.className = "ok";
    gridBox.dataset.grid = where.grid_code;
    gridBox.appendChild(el("div", {}, [el("strong", { text: T.grid + ": " }), el("span", { id: "grid-name", text: where.grid_name || "" }),
      el("span", { text: " " + where.grid_code })]));
    if (where.ambiguous) gridBox.appendChild(el("div", { class: "hint", text: T.on_edge }));
    sendButton.disabled = false;
  }

  function locateMe() {
    if (!navigator.geolocation) { placeStatus.textContent = T.no_location; return; }
    placeStatus.textContent = T.locating;
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        state.located = { lon: pos.coords.longitude, lat: pos.coords.latitude, accuracy: pos.coords.accuracy };
        placeStatus.textContent = fill(T.located, { metres: Math.round(pos.coords.accuracy) });
        place(pos.coords.longitude, pos.coords.latitude, "phone");
      },
      () => { placeStatus.textContent = T.no_location; },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
    );
  }
  $("locate-me").addEventListener("click", locateMe);

  function findAddress() {
    const text = $("address").value.trim();
    if (!text) return;
    getJSON(cfg.api.geocode + "?address=" + encodeURIComponent(text)).then((found) => {
      if (!found.found) {
        say(T.address_not_found + (found.suggestions.length ? " (" + found.suggestions.join(", ") + ")" : ""), true);
        return;
      }
      say("");
      place(found.lon, found.lat, "address");
    }).catch((e) => say(e.message, true));
  }
  $("find-address").addEventListener("click", findAddress);
  $("address").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); findAddress(); } });

  // ---- the category search ----------------------------------------------------------------------------------
  const select = $("category");
  $("category-search").addEventListener("input", (e) => {
    const words = e.target.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let first = null;
    for (const option of select.options) {
      const hay = option.dataset.search.toLowerCase();
      const hit = words.every((w) => hay.includes(w));
      option.hidden = !hit;
      if (hit && !first) first = option;
    }
    for (const group of select.querySelectorAll("optgroup")) group.hidden = ![...group.children].some((o) => !o.hidden);
    if (first && (select.selectedIndex < 0 || select.options[select.selectedIndex].hidden)) first.selected = true;
  });

  // ---- photos -----------------------------------------------------------------------------------------------
  const isImage = (file) => /^image\//.test(file.type) || /\.(heic|heif)$/i.test(file.name);
  function addFiles(files) {
    for (const file of files) {
      if (state.photos.length >= cfg.limits.per_upload) { say(fill(T.too_many, { count: cfg.limits.per_upload }), true); break; }
      if (!isImage(file)) { say(fill(T.not_image, { name: file.name }), true); continue; }
      if (file.size > cfg.limits.max_bytes) { say(fill(T.too_big, { name: file.name, mb: cfg.limits.max_bytes / 1e6 }), true); continue; }
      const entry = { file: file, url: URL.createObjectURL(file), gps: null, taken: null };
      state.photos.push(entry);
      readExif(entry);
    }
    drawPhotos();
  }
  function readExif(entry) {
    if (!window.exifr) return;
    Promise.all([window.exifr.gps(entry.file), window.exifr.parse(entry.file, ["DateTimeOriginal"])])
      .then(([gps, tags]) => {
        if (tags && tags.DateTimeOriginal instanceof Date) entry.taken = tags.DateTimeOriginal;
        if (gps && Number.isFinite(gps.latitude) && Number.isFinite(gps.longitude) && (gps.latitude || gps.longitude)) {
          entry.gps = { lon: gps.longitude, lat: gps.latitude };
        }
        drawPhotos();
      })
      .catch(() => {}); // no EXIF is normal (screenshots, privacy settings)
  }
  function drawPhotos() {
    list.replaceChildren();
    state.photos.forEach((entry, i) => {
      const img = el("img", { src: entry.url, alt: entry.file.name });
      // HEIC: most browsers cannot draw it (the server converts it); show its kind instead of a broken image.
      img.addEventListener("error", () => img.replaceWith(el("div", { class: "placeholder", text: (entry.file.name.split(".").pop() || "").toUpperCase() })));
      const remove = el("button", { type: "button", text: "✕", "aria-label": T.remove });
      remove.addEventListener("click", () => { URL.revokeObjectURL(entry.url); state.photos.splice(i, 1); drawPhotos(); });
      const caption = entry.taken ? T.taken + " " + entry.taken.toLocaleString() : entry.file.name;
      list.appendChild(el("div", { class: "photo" }, [img, el("div", { class: "name", text: caption }), remove]));
    });
    const placed = state.photos.find((p) => p.gps);
    offer.replaceChildren();
    offer.hidden = !placed || (state.point && state.point.source === "photo");
    if (placed && !offer.hidden) {
      const use = el("button", { type: "button", id: "use-photo-place", text: T.use_photo_place });
      use.addEventListener("click", () => place(placed.gps.lon, placed.gps.lat, "photo"));
      offer.append(el("div", { text: T.photo_gps }), use);
      // The phone gave no place: the photo's is the best there is, so take it (it can still be moved).
      if (!state.point) place(placed.gps.lon, placed.gps.lat, "photo");
    }
  }
  for (const id of ["photo-camera", "photo-gallery"]) {
    $(id).addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  }

  // ---- sending ----------------------------------------------------------------------------------------------
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (state.busy) return;
    if (!state.point) return say(T.pick_point, true);
    if (!select.value) return say(T.need_category, true);
    if (!$("title").value.trim()) return say(T.need_title, true);
    if (!state.grid || sendButton.disabled) return say(gridBox.textContent, true);
    const data = new FormData();
    for (const name of ["title", "description", "category", "source", "reporter_name", "reporter_phone", "address"]) {
      const value = form.elements[name].value.trim();
      if (value) data.append(name, value);
    }
    data.append("lon", state.point.lon);
    data.append("lat", state.point.lat);
    for (const entry of state.photos) data.append("photos", entry.file, entry.file.name);
    const xhr = new XMLHttpRequest(); // fetch() cannot report upload progress, which matters on mobile data
    xhr.open("POST", cfg.api.report);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.addEventListener("progress", (p) => {
      if (!p.lengthComputable) return;
      progress.value = Math.round((100 * p.loaded) / p.total);
      sendButton.textContent = fill(T.sending, { percent: progress.value });
    });
    const label = sendButton.textContent;
    const done = () => { state.busy = false; sendButton.disabled = false; progress.hidden = true; sendButton.textContent = label; };
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if (xhr.status === 201 && body) {
        window.location.assign("/cases/" + body.id);
        return;
      }
      done();
      say(T.failed + " " + ((body && body.error) || "HTTP " + xhr.status), true);
    });
    xhr.addEventListener("error", () => { done(); say(T.network, true); });
    state.busy = true;
    sendButton.disabled = true;
    progress.hidden = false;
    say("");
    xhr.send(data);
  });

  // A point typed back by the server (the form shown again after a refusal) is placed again.
  if ($("lon").value && $("lat").value) place(parseFloat($("lon").value), parseFloat($("lat").value), "form");
  locateMe();
})();
