// The command dashboard: draws /api/dashboard with Apache ECharts (SVG renderer: crisp on the wall screen and
// on paper, and its text stays in the page's language). Filters live in the URL; changing one refetches the
// JSON without reloading the page. `window.__dashboardReady` is set once every chart (and the map) is drawn.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("dashboard-config").textContent);
  const T = cfg.text || {};
  const t = (s) => T[s] || s;
  const COLOURS = { received: "#1f78b4", closed: "#2e7d32", open: "#f9a825", overdue: "#c62828", resolution: "#1f78b4", ontime: "#2e7d32" };
  const LIGHT_COLOURS = { green: "#2e7d32", yellow: "#f9a825", red: "#c62828", none: "#90a4ae" };
  const screen = document.body.classList.contains("screen");
  const textColour = screen ? "#e3ecf7" : "#1f2933";
  const charts = {};
  const state = { data: null, geometry: null, loading: null };
  window.__dashboardReady = false;

  // The wall screen is dark: its grid lines and axes are dimmed so the figures stand out.
  const lines = { lineStyle: { color: "#23405f" } };
  if (screen) {
    echarts.registerTheme("gridmap-screen", {
      valueAxis: { splitLine: lines, axisLine: lines, axisLabel: { color: "#9fb3c8" } },
      categoryAxis: { splitLine: lines, axisLine: lines, axisLabel: { color: "#9fb3c8" } },
    });
  }
  function chart(id) {
    if (!charts[id]) charts[id] = echarts.init(document.getElementById(id), screen ? "gridmap-screen" : null, { renderer: "svg" });
    return charts[id];
  }
  function base() {
    return {
      backgroundColor: "transparent",
      textStyle: { color: textColour, fontFamily: "Noto Sans CJK SC, PingFang SC, Microsoft YaHei, sans-serif" },
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", confine: true },
      animation: false,
    };
  }
  function fetchJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json", "Accept-Language": cfg.language } })
      .then((r) => r.json().then((body) => {
        if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
        return body;
      }));
  }
  function filters() {
    const q = new URLSearchParams();
    const form = document.getElementById("filters");
    for (const [k, v] of new FormData(form).entries()) {
      if (!v) continue;
      if ((k === "from" || k === "to") && form.elements.period.value !== "range") continue;
      q.set(k, v);
    }
    return q;
  }
  // The period is [from, to) in Shanghai time (+08:00): its last day is the day before `to`'s date, counted on
  // the date alone so the browser's own time zone cannot move it.
  function lastDay(to) {
    return new Date(Date.parse(to.slice(0, 10)) - 86400000).toISOString().slice(0, 10);
  }

  function number(v, digits) {
    if (v == null) return "—";
    return digits == null ? String(v) : Number(v).toFixed(digits);
  }

  // ---- headline ----------------------------------------------------------------------------------------------
  function drawTiles(h) {
    const shown = {
      received: number(h.received),
      closed: number(h.closed),
      resolution_rate: h.resolution_rate == null ? "—" : number(h.resolution_rate, 1) + "%",
      on_time_rate: h.on_time_rate == null ? "—" : number(h.on_time_rate, 1) + "%",
      overdue: number(h.overdue),
      median_hours_to_close: h.median_hours_to_close == null ? "—" : number(h.median_hours_to_close, 1) + " " + t("h"),
    };
    for (const tile of document.querySelectorAll("#tiles .tile")) {
      const key = tile.dataset.key;
      const value = tile.querySelector(".value");
      value.textContent = shown[key];
      value.dataset.value = h[key] == null ? "" : String(h[key]);
      tile.classList.toggle("bad", key === "overdue" && h.overdue > 0);
    }
  }

  // ---- charts --------------------------------------------------------------------------------------------------
  function drawDaily(d) {
    chart("chart-daily").setOption(Object.assign(base(), {
      legend: { top: 0, textStyle: { color: textColour } },
      xAxis: { type: "category", data: d.days.map((x) => x.slice(5)) },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: t("Received per day"), type: "bar", data: d.received, itemStyle: { color: COLOURS.received } },
        { name: t("Closed per day"), type: "line", data: d.closed, itemStyle: { color: COLOURS.closed }, symbolSize: 5 },
      ],
    }), true);
  }
  function drawWeekly(w) {
    chart("chart-weekly").setOption(Object.assign(base(), {
      legend: { top: 0, textStyle: { color: textColour } },
      xAxis: { type: "category", data: w.weeks },
      yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
      series: [
        { name: t("Resolution rate"), type: "line", data: w.resolution_rate, itemStyle: { color: COLOURS.resolution }, connectNulls: true },
        { name: t("On-time rate"), type: "line", data: w.on_time_rate, itemStyle: { color: COLOURS.ontime }, connectNulls: true },
      ],
    }), true);
  }
  function drawLights(l) {
    const names = { green: t("On time"), yellow: t("Due soon"), red: t("Overdue"), none: t("No deadline") };
    chart("chart-lights").setOption(Object.assign(base(), {
      tooltip: { trigger: "item" },
      legend: { bottom: 0, textStyle: { color: textColour } },
      series: [{
        type: "pie", radius: ["40%", "68%"], center: ["50%", "45%"],
        label: { formatter: "{c}", color: textColour },
        data: Object.keys(names).map((k) => ({ name: names[k], value: l[k], itemStyle: { color: LIGHT_COLOURS[k] } })),
      }],
    }), true);
  }
  function drawRanked(id, rows) {
    // Ranked bars, worst first; a scroll bar when there are more than fit.
    const shown = rows.slice().reverse();
    const many = shown.length > 15;
    chart(id).setOption(Object.assign(base(), {
      legend: { top: 0, textStyle: { color: textColour } },
      grid: { left: 8, right: many ? 36 : 16, top: 36, bottom: 8, containLabel: true },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: shown.map((r) => r.name || r.code), axisLabel: { width: 110, overflow: "truncate" } },
      dataZoom: many ? [{ type: "slider", yAxisIndex: 0, right: 4, width: 14, startValue: shown.length - 15, endValue: shown.length - 1 }, { type: "inside", yAxisIndex: 0 }] : [],
      series: [
        { name: t("Open cases"), type: "bar", barMaxWidth: 18, data: shown.map((r) => r.open), itemStyle: { color: COLOURS.open } },
        { name: t("Overdue cases"), type: "bar", barMaxWidth: 18, data: shown.map((r) => r.overdue), itemStyle: { color: COLOURS.overdue } },
      ],
    }), true);
  }
  function drawCategories(rows) {
    const shown = rows.slice().reverse();
    chart("chart-categories").setOption(Object.assign(base(), {
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: shown.map((r) => r.name), axisLabel: { width: 120, overflow: "truncate" } },
      series: [{ name: t("Received"), type: "bar", data: shown.map((r) => r.received), itemStyle: { color: COLOURS.received }, label: { show: true, position: "right", color: textColour } }],
    }), true);
  }
  function hoursLabel(h) {
    return h >= 24 && h % 24 === 0 ? h / 24 + t("d") : h + t("h");
  }
  function drawHours(c) {
    const labels = c.edges.map((edge, i) => (i + 1 < c.edges.length ? hoursLabel(edge) + "–" + hoursLabel(c.edges[i + 1]) : t("more than") + " " + hoursLabel(edge)));
    chart("chart-hours").setOption(Object.assign(base(), {
      xAxis: { type: "category", data: labels, axisLabel: { interval: 0, rotate: labels.length > 5 ? 30 : 0 } },
      yAxis: { type: "value", minInterval: 1, name: t("cases") },
      series: [{ name: t("Closed"), type: "bar", data: c.counts, itemStyle: { color: COLOURS.closed } }],
    }), true);
  }
  function drawMap(grids) {
    if (!state.geometry) return;
    const values = Object.values(grids);
    const top = values.length ? Math.max(...values) : 1;
    const data = state.geometry.features.map((f) => ({ name: f.properties.code, value: grids[f.properties.code] || 0, label: f.properties.name }));
    chart("chart-map").setOption({
      backgroundColor: "transparent",
      animation: false,
      tooltip: { trigger: "item", formatter: (p) => (p.data ? p.data.label + " " + p.name + ": " + p.value + " " + t("cases") : p.name) },
      visualMap: { min: 0, max: Math.max(top, 1), calculable: true, left: 8, bottom: 8, inRange: { color: ["#fff5eb", "#fd8d3c", "#7f2704"] }, textStyle: { color: textColour } },
      series: [{
        type: "map", map: "gridmap-grids", nameProperty: "code", roam: true, aspectScale: 0.85,
        label: { show: false }, emphasis: { label: { show: false } }, selectedMode: false,
        itemStyle: { borderColor: "#6b6b6b", borderWidth: 0.3 },
        data: data,
      }],
    }, true);
  }

  // ---- load and draw -------------------------------------------------------------------------------------------
  const stateBox = document.getElementById("dash-state");
  function setState(text, bad) {
    stateBox.textContent = text;
    stateBox.classList.toggle("bad", !!bad);
  }
  function draw(d) {
    performance.mark("dashboard-data");
    state.data = d;
    drawTiles(d.headline);
    document.getElementById("dash-period").textContent = d.from.slice(0, 10) + " – " + lastDay(d.to);
    drawDaily(d.daily);
    drawWeekly(d.weekly);
    drawLights(d.lights);
    drawRanked("chart-streets", d.streets);
    drawRanked("chart-communities", d.communities);
    drawCategories(d.categories);
    drawHours(d.close_hours);
    performance.mark("dashboard-charts");
    if (state.mapDrawn) drawMap(d.grids);
    setState(d.headline.received ? t("Updated") + " " + d.as_of.slice(0, 19).replace("T", " ") : t("No cases in this period."));
  }
  function updateLinks(q) {
    for (const id of ["export-xlsx", "export-csv"]) {
      const link = document.getElementById(id);
      const e = new URLSearchParams(q);
      e.delete("period");
      if (state.data) { e.set("from", state.data.from.slice(0, 10)); e.set("to", lastDay(state.data.to)); }
      e.set("format", id === "export-xlsx" ? "xlsx" : "csv");
      e.set("by", link.dataset.by);
      link.href = "/stats/export?" + e.toString();
    }
    const screenQuery = new URLSearchParams(q);
    screenQuery.set("screen", "1");
    document.getElementById("screen-link").href = "/dashboard?" + screenQuery.toString();
  }
  function load() {
    const q = filters();
    const loading = fetchJSON(cfg.api + "?" + q.toString()).then((d) => {
      if (state.loading !== loading) return;
      draw(d);
      updateLinks(q);
    });
    state.loading = loading;
    return loading;
  }
  function fail(e) {
    setState(t("The dashboard could not be loaded") + ": " + (e && e.message), true);
    window.__dashboardError = String(e && e.message);
  }

  // ---- filters in the URL ------------------------------------------------------------------------------------
  const form = document.getElementById("filters");
  const street = form.elements.street, community = form.elements.community;
  function limitCommunities() {
    for (const option of community.options) {
      if (!option.value) continue;
      option.hidden = !!street.value && option.dataset.street !== street.value;
    }
    if (community.selectedOptions[0] && community.selectedOptions[0].hidden) community.value = "";
  }
  form.addEventListener("change", (event) => {
    if (event.target.name === "period") {
      for (const label of form.querySelectorAll(".range")) label.hidden = form.elements.period.value !== "range";
      if (form.elements.period.value === "range" && !(form.elements.from.value && form.elements.to.value)) return;
    }
    if (event.target === street) limitCommunities();
    const q = filters();
    if (screen) q.set("screen", "1");
    history.replaceState(null, "", "/dashboard?" + q.toString());
    window.__dashboardReady = false;
    load().then(() => { window.__dashboardReady = true; }, fail);
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); form.dispatchEvent(new Event("change")); });
  limitCommunities();

  // ---- print and the wall screen --------------------------------------------------------------------------------
  document.getElementById("print-button").addEventListener("click", () => window.print());
  const resizeAll = () => Object.values(charts).forEach((c) => c.resize());
  window.addEventListener("resize", resizeAll);
  window.addEventListener("beforeprint", resizeAll);
  window.addEventListener("afterprint", resizeAll);
  if (screen) {
    const clock = document.getElementById("clock");
    const tick = () => { if (clock) clock.textContent = new Date().toLocaleString(cfg.language === "zh" ? "zh-CN" : "en-GB"); };
    tick();
    setInterval(tick, 1000);
    if (cfg.refresh_s) setInterval(() => load().catch(fail), cfg.refresh_s * 1000);
    // Full screen needs a gesture: the first click or key anywhere asks for it.
    const full = () => { if (!document.fullscreenElement && document.documentElement.requestFullscreen) document.documentElement.requestFullscreen().catch(() => {}); };
    document.addEventListener("click", full, { once: true });
    document.addEventListener("keydown", full, { once: true });
  }

  const geometry = cfg.grids_api
    ? fetchJSON(cfg.grids_api).then((g) => {
      performance.mark("dashboard-geometry");
      // The map layer names every grid; counts are null outside the user's area, which the dashboard leaves out.
      const mine = g.features.filter((f) => f.properties.open !== null);
      if (mine.length) g.features = mine;
      echarts.registerMap("gridmap-grids", g);
      state.geometry = g;
    })
    : Promise.resolve();
  Promise.all([load(), geometry]).then(() => {
    // The map is drawn once both the figures and the grid shapes are in; later loads redraw it with the rest.
    if (state.data) drawMap(state.data.grids);
    state.mapDrawn = true;
    performance.mark("dashboard-map");
    requestAnimationFrame(() => { performance.mark("dashboard-ready"); window.__dashboardReady = true; });
  }, fail);
  window.__dashboard = { charts: charts, state: state, reload: load };
})();
