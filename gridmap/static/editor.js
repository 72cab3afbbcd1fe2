// The planner's editor: every change goes through the draft-plan JSON API, and the map redraws what the
// server answers, so the page never holds a geometry the database does not have.
(() => {
  "use strict";
  const root = document.getElementById("editor");
  const edition = root.dataset.edition;
  const canEdit = root.dataset.canEdit === "yes";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const base = `/api/editions/${encodeURIComponent(edition)}`;
  const messageBox = document.getElementById("message");
  const map = L.map("map", { zoomSnap: 0.25, maxZoom: 22, preferCanvas: false });
  const grids = L.featureGroup().addTo(map);
  const layers = new Map(); // grid code -> Leaflet layer
  const undoStack = [];
  const redoStack = [];
  let selected = [];
  let dragFrom = null;
  window.__editorReady = false;
  window.__editorMap = map; // a seam for browser tests: pixels of a vertex come from the map
  window.__editorBusy = 0;
  // The page's language: msgids are English; the page hands their translations to the script.
  const TEXT = JSON.parse((document.getElementById("editor-text") || { textContent: "{}" }).textContent);
  const LANG = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
  function t(msgid, values) {
    let out = TEXT[msgid] || msgid;
    for (const [k, v] of Object.entries(values || {})) out = out.split("{" + k + "}").join(String(v));
    return out;
  }
  const KIND_LABELS = { gaps: "Gaps", overlaps: "Overlaps", outside_parent: "Outside the parent", invalid: "Invalid shapes", slivers: "Slivers", codes: "Code problems" };

  // Shared vertices must move together and a vertex added mid-edge would exist in one grid only, so the
  // middle markers are hidden and every drag is sent to the server as "move this vertex everywhere".
  map.pm.setGlobalOptions({ snappable: true, snapDistance: 12, allowSelfIntersection: false, hideMiddleMarkers: true });
  if (map.pm.setLang) map.pm.setLang(LANG);
  if (map.attributionControl) map.attributionControl.getContainer().setAttribute("translate", "no");
  for (const [node, label] of [[map.zoomControl && map.zoomControl._zoomInButton, t("Zoom in")], [map.zoomControl && map.zoomControl._zoomOutButton, t("Zoom out")]]) {
    if (node) { node.title = label; node.setAttribute("aria-label", label); }
  }

  function say(text, bad = false) {
    messageBox.textContent = text;
    messageBox.className = bad ? "bad" : "";
  }

  async function call(method, path, body) {
    window.__editorBusy += 1;
    try {
      const response = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "Accept-Language": LANG, "X-CSRFToken": csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const data = response.status === 204 ? null : await response.json();
      if (!response.ok) {
        const error = new Error(data && data.error ? data.error : `HTTP ${response.status}`);
        error.status = response.status;
        error.data = data;
        throw error;
      }
      return data;
    } finally {
      window.__editorBusy -= 1;
    }
  }

  function styleFor(code) {
    const on = selected.includes(code);
    return { color: on ? "#b71c1c" : "#37474f", weight: on ? 3 : 1, fillColor: "#90a4ae", fillOpacity: on ? 0.35 : 0.2 };
  }

  function text(value) {
    const span = document.createElement("span");
    span.textContent = value;
    return span;
  }

  function removeGrid(code) {
    const old = layers.get(code);
    if (old) {
      old.closeTooltip().unbindTooltip();
      grids.removeLayer(old);
      layers.delete(code);
    }
  }

  function showGrid(feature) {
    const code = feature.properties.code;
    removeGrid(code);
    const layer = L.geoJSON(feature, { style: () => styleFor(code) }).getLayers()[0];
    layer.feature = feature;
    layer.bindTooltip(text(`${feature.properties.name} ${code}`), { sticky: true });
    layer.on("click", (event) => select(code, event.originalEvent.shiftKey));
    layer.on("pm:markerdragstart", (event) => {
      dragFrom = event.markerEvent.target.getLatLng();
    });
    layer.on("pm:markerdragend", (event) => {
      const to = event.markerEvent.target.getLatLng();
      if (dragFrom) moveVertex([dragFrom.lng, dragFrom.lat], [to.lng, to.lat], true);
      dragFrom = null;
    });
    grids.addLayer(layer);
    layers.set(code, layer);
    return layer;
  }

  function showAll(features) {
    features.forEach(showGrid);
    if (selected.length === 1 && layers.has(selected[0]) && vertexMode()) layers.get(selected[0]).pm.enable();
  }

  function select(code, add) {
    if (!layers.has(code)) return;
    selected.forEach((c) => layers.get(c) && layers.get(c).pm.disable());
    selected = add && selected.length === 1 && selected[0] !== code ? [selected[0], code] : [code];
    layers.forEach((layer, c) => layer.setStyle(styleFor(c)));
    const props = layers.get(selected[selected.length - 1]).feature.properties;
    document.getElementById("selected").textContent =
      selected.length === 2 ? `${selected[0]} + ${selected[1]}` : `${props.code} · ${props.name} (v${props.version})`;
    const form = document.getElementById("attributes");
    for (const name of ["name", "kind", "households", "population", "staff"]) {
      form.elements[name].value = props[name] === null || props[name] === undefined ? "" : props[name];
    }
    if (vertexMode() && selected.length === 1) layers.get(code).pm.enable();
  }

  function vertexMode() {
    const button = document.getElementById("tool-vertices");
    return button && button.classList.contains("active");
  }

  function record(step) {
    undoStack.push(step);
    redoStack.length = 0;
    updateUndo();
  }

  function updateUndo() {
    const undo = document.getElementById("undo");
    const redo = document.getElementById("redo");
    if (undo) undo.disabled = undoStack.length === 0;
    if (redo) redo.disabled = redoStack.length === 0;
  }

  async function afterEdit(text) {
    say(text);
    await refreshAudit();
    await refreshComparison();
  }

  async function failed(error) {
    say(error.message, true);
    if (error.status === 409 && error.data && error.data.current) showGrid(error.data.current);
    if (error.status === 409 || error.status === 400) await reload();
  }

  // ---- edits --------------------------------------------------------------------------------------------
  async function moveVertex(from, to, remember) {
    try {
      const changed = await call("POST", `${base}/move-vertex`, { from, to });
      showAll(changed.features);
      if (remember) record({ label: "move vertex", undo: () => moveVertex(to, from, false), redo: () => moveVertex(from, to, false) });
      await afterEdit(t("moved a vertex of {n} grid(s)", { n: changed.features.length }));
    } catch (error) {
      await failed(error);
    }
  }

  async function saveAttributes(code, values, remember) {
    const layer = layers.get(code);
    const before = {};
    for (const key of Object.keys(values)) before[key] = layer.feature.properties[key];
    try {
      const saved = await call("PUT", `${base}/grids/${code}`, { ...values, version: layer.feature.properties.version });
      showGrid(saved);
      select(code, false);
      if (remember) record({ label: "attributes", undo: () => saveAttributes(code, before, false), redo: () => saveAttributes(code, values, false) });
      await afterEdit(t("saved {code} (version {version})", { code: code, version: saved.properties.version }));
    } catch (error) {
      await failed(error);
    }
  }

  async function split(code, line, remember) {
    try {
      const halves = await call("POST", `${base}/grids/${code}/split`, { line });
      removeGrid(code);
      showAll(halves.features);
      const codes = halves.features.map((f) => f.properties.code);
      if (remember) {
        let merged = null;
        record({
          label: "split",
          undo: async () => {
            merged = await mergeCodes(codes, false);
          },
          redo: async () => merged && split(merged, line, false),
        });
      }
      await afterEdit(t("split {code} into {codes}", { code: code, codes: codes.join(", ") }));
      return codes;
    } catch (error) {
      await failed(error);
      return null;
    }
  }

  async function mergeCodes(codes, remember) {
    try {
      const merged = await call("POST", `${base}/merge`, { codes });
      codes.forEach(removeGrid);
      showGrid(merged);
      selected = [];
      if (remember) record({ label: "merge", undo: async () => say(t("a merge cannot be undone: split the grid again"), true), redo: async () => {} });
      await afterEdit(t("merged into {code}", { code: merged.properties.code }));
      return merged.properties.code;
    } catch (error) {
      await failed(error);
      return null;
    }
  }

  async function addGrid(geometry, remember) {
    try {
      const added = await call("POST", `${base}/grids`, { geometry });
      showGrid(added);
      const code = added.properties.code;
      if (remember) record({ label: "new grid", undo: () => deleteGrid(code, false), redo: () => addGrid(geometry, false) });
      await afterEdit(t("added {code}", { code: code }));
    } catch (error) {
      await failed(error);
    }
  }

  async function deleteGrid(code, remember) {
    const layer = layers.get(code);
    if (!layer) return;
    const feature = layer.feature;
    try {
      await call("DELETE", `${base}/grids/${code}?version=${feature.properties.version}`);
      removeGrid(code);
      selected = [];
      if (remember) record({ label: "delete", undo: () => addGrid(feature.geometry, false), redo: async () => {} });
      await afterEdit(t("deleted {code}", { code: code }));
    } catch (error) {
      await failed(error);
    }
  }

  // ---- audit and activation --------------------------------------------------------------------------
  async function refreshAudit() {
    const box = document.getElementById("audit");
    document.getElementById("audit-state").textContent = "…";
    try {
      const report = await call("GET", `/api/audit?edition=${encodeURIComponent(edition)}`);
      box.replaceChildren();
      for (const kind of ["gaps", "overlaps", "outside_parent", "invalid", "slivers", "codes"]) {
        const list = report[kind] || [];
        const line = document.createElement("div");
        line.className = `finding count-${list.length}`;
        line.dataset.kind = kind;
        line.dataset.count = String(list.length);
        line.textContent = `${t(KIND_LABELS[kind])}: ${list.length}`;
        box.appendChild(line);
        for (const finding of list.slice(0, 10)) {
          const item = document.createElement("div");
          item.className = "finding muted";
          const area = typeof finding.area_m2 === "number" ? ` ${finding.area_m2.toFixed(1)} m²` : "";
          item.textContent = `  ${(finding.codes || []).join(", ")}${area}`;
          if (finding.point) item.addEventListener("click", () => map.setView([finding.point[1], finding.point[0]], 18));
          box.appendChild(item);
        }
      }
      const balance = report.balance || {};
      if (balance.outside_range) {
        const line = document.createElement("div");
        line.className = "finding";
        line.textContent = t("households outside the range: {n}", { n: balance.outside_range.length });
        box.appendChild(line);
      }
      document.getElementById("audit-state").textContent = "";
    } catch (error) {
      document.getElementById("audit-state").textContent = `(${error.message})`;
    }
    window.__auditFresh = (window.__auditFresh || 0) + 1;
  }

  async function refreshComparison() {
    const box = document.getElementById("compare");
    const current = root.dataset.current;
    if (!box || !current || current === edition) return;
    try {
      const report = await call("GET", `/api/compare?a=${encodeURIComponent(current)}&b=${encodeURIComponent(edition)}`);
      const s = report.summary;
      const a = report.balance.a.totals;
      const b = report.balance.b.totals;
      const lines = [
        t("grids: {a} → {b} (new {new}, changed {changed}, retired {retired}, unchanged {unchanged})", { a: s.grids.a, b: s.grids.b, new: s.new, changed: s.changed, retired: s.retired, unchanged: s.unchanged }),
        t("households changing grid: {n}", { n: s.households_moving }),
        t("open cases changing grid: {n}", { n: s.open_cases_moving }),
        t("households per grid CV: {a} → {b}; max/min: {c} → {d}", { a: a.cv, b: b.cv, c: a.max_min_ratio, d: b.max_min_ratio }),
        t("grids outside the households range: {a} → {b}", { a: report.balance.a.outside_range, b: report.balance.b.outside_range }),
      ];
      box.replaceChildren(...lines.map((line) => {
        const div = document.createElement("div");
        div.textContent = line;
        return div;
      }));
      box.className = "";
      box.dataset.newGrids = String(s.new);
    } catch (error) {
      box.textContent = error.message;
    }
  }

  // ---- proposals ----------------------------------------------------------------------------------------
  // An exception's `detail` is an English sentence; the page says it in its own language from the fields.
  const EXCEPTION_TEXT = {
    out_of_range: "grid {grid} has {households} households and could not be brought into {min}–{max} with its neighbours",
    building_above_max: "building {building} alone has {households} households (> {max}): a grid of its own",
    no_buildings: "no building of the register stands in {codes}: left as it is",
  };
  function exceptionText(exception, options) {
    const msgid = EXCEPTION_TEXT[exception.kind];
    if (!msgid) return exception.detail;
    return t(msgid, { ...exception, codes: (exception.codes || []).join(", "), min: options.min, max: options.max });
  }

  // The server redraws the community (or street) of the selected grid in this draft; the page then shows the
  // draft as it now is, and the audit and the comparison as after any edit.
  async function propose(event) {
    event.preventDefault();
    const form = document.getElementById("propose");
    if (selected.length < 1) return say(document.getElementById("propose-scope").textContent, true);
    const community = layers.get(selected[selected.length - 1]).feature.properties.parent_code;
    const streets = JSON.parse(form.dataset.streets || "{}");
    const scope = event.submitter ? event.submitter.value : "community";
    const body = { keep_good: form.elements.keep_good.checked, rounding: form.elements.rounding.checked };
    for (const key of ["min", "max"]) if (form.elements[key].value !== "") body[key] = Number(form.elements[key].value);
    if (scope === "street") body.street = streets[community];
    else body.community = community;
    form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      const report = await call("POST", `${base}/propose`, body);
      selected = [];
      await reload();
      const f = report.figures || {};
      const redrawn = report.communities.reduce((n, c) => n + c.redrawn.length, 0);
      const fresh = report.communities.reduce((n, c) => n + c.new.length, 0);
      const drawn = fresh + report.communities.reduce((n, c) => n + c.continued.length, 0);
      const values = { redrawn, drawn, new: fresh, before: (f.out_of_range || {}).before, after: (f.out_of_range || {}).after, moving: f.households_moving };
      const box = document.getElementById("propose-result");
      const lines = [form.dataset.done.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? "—"))];
      if (report.exceptions.length) lines.push(form.dataset.exceptions);
      for (const exception of report.exceptions) lines.push(`  ${exception.community}: ${exceptionText(exception, report.options || {})}`);
      box.replaceChildren(...lines.map((line) => {
        const div = document.createElement("div");
        div.textContent = line;
        return div;
      }));
      box.dataset.redrawn = String(redrawn);
      await afterEdit(lines[0]);
    } catch (error) {
      await failed(error);
    } finally {
      form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    }
  }

  async function activate(event) {
    event.preventDefault();
    const form = event.target;
    const waive = [];
    form.querySelectorAll("input[data-finding]").forEach((input) => {
      if (input.value.trim()) waive.push({ finding: input.dataset.finding, reason: input.value.trim() });
    });
    try {
      const body = { waive };
      if (form.elements.valid_from.value) body.valid_from = form.elements.valid_from.value;
      const result = await call("POST", `${base}/activate`, body);
      say(t("{name} is now current; {n} incident(s) changed grid", { name: result.edition.name, n: result.incidents.moved }));
      root.dataset.status = "current";
    } catch (error) {
      say(error.message, true);
      const box = document.getElementById("waivers");
      box.replaceChildren();
      for (const finding of (error.data && error.data.findings) || []) {
        const label = document.createElement("label");
        label.textContent = t("{kind} {codes} ({area} m²) — waive because: ", { kind: t(finding.kind), codes: finding.codes.join(", "), area: finding.area_m2.toFixed(1) });
        const input = document.createElement("input");
        input.dataset.finding = finding.id;
        label.appendChild(input);
        box.appendChild(label);
      }
    }
  }

  // ---- tools --------------------------------------------------------------------------------------------
  function setMode(button) {
    document.querySelectorAll(".tools button.active").forEach((b) => b !== button && b.classList.remove("active"));
    button.classList.toggle("active");
    map.pm.disableDraw();
    layers.forEach((layer) => layer.pm.disable());
    if (vertexMode() && selected.length === 1) layers.get(selected[0]).pm.enable();
  }

  function wireTools() {
    document.getElementById("tool-vertices").addEventListener("click", (event) => {
      setMode(event.target);
      say(vertexMode() ? t("drag a vertex; grids sharing it move with it") : "");
    });
    document.getElementById("tool-split").addEventListener("click", () => {
      if (selected.length !== 1) return say(t("select one grid to split"), true);
      map.pm.enableDraw("Line", { snappable: true });
      say(t("draw a line across the grid, from outside to outside; double-click to finish"));
    });
    document.getElementById("tool-merge").addEventListener("click", () => {
      if (selected.length !== 2) return say(t("shift-click a second, neighbouring grid first"), true);
      mergeCodes([...selected], true);
    });
    document.getElementById("tool-draw").addEventListener("click", () => {
      map.pm.enableDraw("Polygon", { snappable: true });
      say(t("draw the new grid; snap to its neighbours' vertices"));
    });
    document.getElementById("tool-delete").addEventListener("click", () => {
      if (selected.length !== 1) return say(t("select one grid to delete"), true);
      if (window.confirm(t("delete {code}?", { code: selected[0] }))) deleteGrid(selected[0], true);
    });
    document.getElementById("undo").addEventListener("click", async () => {
      const step = undoStack.pop();
      if (!step) return;
      await step.undo();
      redoStack.push(step);
      updateUndo();
    });
    document.getElementById("redo").addEventListener("click", async () => {
      const step = redoStack.pop();
      if (!step) return;
      await step.redo();
      undoStack.push(step);
      updateUndo();
    });
    map.on("pm:create", (event) => {
      const geometry = event.layer.toGeoJSON().geometry;
      map.removeLayer(event.layer);
      map.pm.disableDraw();
      if (geometry.type === "LineString" && selected.length === 1) split(selected[0], geometry, true);
      else if (geometry.type === "Polygon") addGrid(geometry, true);
    });
    document.getElementById("attributes").addEventListener("submit", (event) => {
      event.preventDefault();
      if (selected.length !== 1) return say(t("select one grid"), true);
      const form = event.target;
      const values = { name: form.elements.name.value, kind: form.elements.kind.value };
      for (const key of ["households", "population", "staff"]) {
        values[key] = form.elements[key].value === "" ? null : Number(form.elements[key].value);
      }
      saveAttributes(selected[0], values, true);
    });
    document.getElementById("activate").addEventListener("submit", activate);
    document.getElementById("propose").addEventListener("submit", propose);
  }

  async function reload() {
    const collection = await call("GET", `${base}/grids`);
    layers.forEach((_, code) => removeGrid(code));
    showAll(collection.features);
    return collection;
  }

  async function start() {
    const collection = await reload();
    if (collection.features.length) map.fitBounds(grids.getBounds());
    else map.setView([39.1, 117.15], 13);
    if (canEdit) wireTools();
    const refresh = document.getElementById("compare-refresh");
    if (refresh) refresh.addEventListener("click", refreshComparison);
    await refreshAudit();
    await refreshComparison();
    window.__editorReady = true;
  }

  start().catch((error) => say(error.message, true));
})();
