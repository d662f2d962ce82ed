// The page of `leakscope report --format html` (docs/exports.md, "HTML"). Reads the JSON in
// #leakscope-data (written by report/html_data.cpp) and draws it with d3 and d3-flame-graph,
// both inlined before this script. Every string that came from the capture is data: it reaches
// the page only through textContent (d3's .text()), never as markup.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("leakscope-data").textContent);
  const frames = data.frames;
  const page = d3.select("#page");
  const listeners = [];  // redraws to run when the chosen moments change
  // The moments drawn: indices into data.history.t_s (the end, and growth from the start).
  const state = { at: 0, from: 0, view: "live", shape: "flame", search: "" };
  if (data.history && data.history.t_s.length) state.at = data.history.t_s.length - 1;

  // ---- words and numbers, as `leakscope report` prints them (report/words.h)

  function fmtBytes(b) {
    b = Math.max(0, Math.round(b));
    if (b < 1024) return b + " B";
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = b / 1024;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      ++u;
    }
    return v.toFixed(1) + " " + units[u];
  }
  function fmtTime(s) {
    return s.toFixed(2) + " s";
  }
  function commas(n) {
    return Math.round(n).toLocaleString("en-US");
  }
  function section(id, title) {
    const s = page.append("section").attr("id", id);
    s.append("h2").text(title);
    return s;
  }
  function path(steps) {
    return steps.join(" \u2192 ");
  }

  // ---- what ran, the verdict and its findings (first: the answer before the pictures)

  function header() {
    const c = data.capture;
    page.append("h1").text("leakscope report: " + c.path);
    const py = c.python_version ? "Python " + c.python_version + ", " : "";
    page.append("p").attr("class", "muted").text(c.argv.join(" ") + " (pid " + c.pid + ", " + py +
        fmtTime(c.duration_s) + " tracked, " + commas(c.snapshots) + " snapshots)");
    for (const w of data.warnings) page.append("p").attr("class", "warning").text("warning: " + w);
  }

  function verdict() {
    const s = page.append("section").attr("id", "verdict");
    const known = ["leak", "no-leak", "inconclusive"].includes(data.verdict) ? data.verdict : "inconclusive";
    let v = "Verdict: " + data.verdict.toUpperCase();
    if (data.process_verdict && data.process_verdict !== data.verdict) v += " (" + data.process_verdict + ")";
    s.append("div").attr("class", "verdict verdict-" + known).text(v);
    const ul = s.append("ul").attr("class", "findings");
    for (const f of data.findings) {
      const li = ul.append("li");
      li.append("strong").text(f.kind + (f.layer ? " [" + f.layer + "]" : "") + ": ");
      li.append("span").text(f.text);
      if (f.remedy) li.append("div").attr("class", "remedy").text("remedy: " + f.remedy);
    }
    const t = data.totals;
    s.append("p").attr("class", "totals").text("Live when tracking stopped: " + t.live + " in " + commas(t.live_count) +
        " blocks (peak " + t.peak + " at " + fmtTime(t.peak_time_s) + "). Allocated while tracking: " + t.allocated +
        " in " + commas(t.alloc_count) + " blocks.");
  }

  // ---- the moments: a slider index into data.history.t_s

  function nearest(times, t) {
    let best = 0;
    for (let i = 1; i < times.length; ++i)
      if (Math.abs(times[i] - t) < Math.abs(times[best] - t)) best = i;
    return best;
  }
  function choose(which, index) {
    state[which] = index;
    for (const f of listeners) f();
  }

  // ---- memory by layer over time (the Report's timeline), a click chooses the moment

  function timelineSection() {
    const s = section("memory", "Memory by layer over time");
    const tl = data.timeline;
    if (!tl.t_s.length || !tl.series.length) {
      s.append("p").attr("class", "muted").text("The capture has no snapshots of memory by layer to draw.");
      return;
    }
    const h = data.history;
    if (h && h.t_s.length)
      s.append("p").attr("class", "muted caption")
          .text("Click the chart to draw the flame graph below at that moment; shift-click sets the moment growth is measured from.");
    const W = 1100, H = 280, m = { l: 80, r: 210, t: 12, b: 30 };
    const svg = s.append("div").attr("id", "timeline-chart").append("svg")
        .attr("viewBox", "0 0 " + W + " " + H).attr("width", "100%");
    const x = d3.scaleLinear().domain([0, d3.max(tl.t_s) || 1]).range([m.l, W - m.r]);
    const top = d3.max(tl.series, (sr) => d3.max(sr.bytes)) || 1;
    const y = d3.scaleLinear().domain([0, top]).nice().range([H - m.b, m.t]);
    svg.append("g").attr("transform", "translate(0," + (H - m.b) + ")")
        .call(d3.axisBottom(x).ticks(10).tickFormat((t) => t + " s"));
    svg.append("g").attr("transform", "translate(" + m.l + ",0)").call(d3.axisLeft(y).ticks(6).tickFormat(fmtBytes));
    const color = d3.scaleOrdinal(d3.schemeTableau10);
    tl.series.forEach((sr, i) => {
      const line = d3.line().x((_, j) => x(tl.t_s[j])).y((v) => y(v));
      svg.append("path").attr("fill", "none").attr("stroke", color(i)).attr("stroke-width", 1.5).attr("d", line(sr.bytes));
      svg.append("text").attr("class", "legend").attr("x", W - m.r + 10).attr("y", m.t + 12 + 16 * i)
          .attr("fill", color(i)).text(sr.name + ": " + fmtBytes(sr.bytes[sr.bytes.length - 1]));
    });
    if (tl.points > tl.t_s.length)
      svg.append("text").attr("class", "legend").attr("x", W - m.r + 10).attr("y", H - m.b)
          .attr("fill", "#5d6873").text(commas(tl.points) + " snapshots (max of " + Math.ceil(tl.points / tl.t_s.length) + ")");
    if (!h || !h.t_s.length) return;
    svg.append("g").selectAll("line").data(h.t_s).join("line").attr("class", "hist-tick")
        .attr("x1", (t) => x(t)).attr("x2", (t) => x(t)).attr("y1", H - m.b).attr("y2", H - m.b + 5);
    const from = svg.append("line").attr("class", "marker-from").attr("y1", m.t).attr("y2", H - m.b);
    const at = svg.append("line").attr("class", "marker-at").attr("y1", m.t).attr("y2", H - m.b);
    const place = () => {
      at.attr("x1", x(h.t_s[state.at])).attr("x2", x(h.t_s[state.at]));
      from.attr("x1", x(h.t_s[state.from])).attr("x2", x(h.t_s[state.from])).style("display", state.view === "growth" ? null : "none");
    };
    listeners.push(place);
    svg.on("click", (event) => {
      const t = x.invert(d3.pointer(event)[0]);
      choose(event.shiftKey ? "from" : "at", nearest(h.t_s, t));
    });
    place();
  }

  // ---- the flame graph of live memory (or of growth) at the chosen moment(s)

  // The tree d3-flame-graph draws: all -> layer -> frames (root first; innermost first for the
  // callers view), each site's value on its last node (selfValue).
  function buildTree(h, valueOf, rootName) {
    const root = { name: rootName, value: 0, children: [] };
    const kids = new Map();
    const child = (node, name) => {
      let byName = kids.get(node);
      if (!byName) kids.set(node, (byName = new Map()));
      let c = byName.get(name);
      if (!c) {
        c = { name: name, value: 0, children: [] };
        byName.set(name, c);
        node.children.push(c);
      }
      return c;
    };
    let total = 0;
    const add = (site, names) => {
      const v = valueOf(site);
      if (!(v > 0)) return;
      let node = child(root, site.layer);
      for (const n of names) node = child(node, n);
      node.value += v;
      total += v;
    };
    for (const site of h.sites) {
      const stack = state.shape === "callers" ? site.stack.slice().reverse() : site.stack;
      add(site, stack.map((f) => frames[f]));
    }
    for (const site of h.other) add(site, ["(" + commas(h.other_sites) + " smaller sites, summed)"]);
    if (!total) root.value = 1;  // d3-flame-graph cannot lay out an empty tree
    return { root: root, total: total };
  }

  function flameSection() {
    const s = section("flame-section", "Live memory by stack");
    const h = data.history;
    if (!h || !h.t_s.length) {
      s.append("p").attr("class", "muted").text("The capture has no snapshots: there is no live memory by stack to draw.");
      return;
    }
    const K = h.t_s.length;
    const ctl = s.append("div").attr("class", "controls");
    const select = (id, label, options) => {
      const sel = ctl.append("label").text(label).append("select").attr("id", id);
      for (const [value, text] of options) sel.append("option").attr("value", value).text(text);
      return sel;
    };
    const view = select("view", "show", [["live", "live at a moment"], ["growth", "growth between two moments"]]);
    const shape = select("shape", "as", [["flame", "flame graph (callers below)"], ["icicle", "icicle (top down)"],
      ["callers", "callers (allocating frame first)"]]);
    const slider = (id, label) => {
      const l = ctl.append("label").attr("id", id + "-label").text(label);
      return l.append("input").attr("type", "range").attr("id", id).attr("min", 0).attr("max", K - 1).attr("step", 1);
    };
    const fromSlider = slider("from", "from");
    const atSlider = slider("at", "at");
    const search = ctl.append("label").text("search").append("input").attr("type", "search").attr("id", "search")
        .attr("placeholder", "function or file");
    const reset = ctl.append("button").attr("type", "button").attr("id", "reset-zoom").text("reset zoom");
    const caption = s.append("p").attr("class", "caption").attr("id", "flame-caption");
    const found = s.append("p").attr("class", "caption muted").attr("id", "search-caption");
    const box = s.append("div").attr("id", "flame");
    s.append("p").attr("class", "muted caption").text("Snapshots: " + K + (h.snapshots > K ? ", evenly chosen of " + commas(h.snapshots) : "") +
        "; sites: the " + commas(h.sites.length) + " with the highest peak" +
        (h.other_sites ? ", the other " + commas(h.other_sites) + " summed per layer" : "") + ". Click a frame to zoom.");

    const width = Math.max(600, box.node().clientWidth || 1100);
    const chart = flamegraph.default().width(width).cellHeight(18).transitionDuration(0).minFrameSize(1)
        .selfValue(true).resetHeightOnZoom(true).sort(true);
    let shown = 1;
    chart.label((d) => d.data.name + ": " + fmtBytes(d.value) + " (" + (100 * d.value / shown).toFixed(1) + "%)");
    chart.setSearchMatch((d, term) => !!term && String(d.data.name).toLowerCase().includes(term.toLowerCase()));
    chart.setSearchHandler((results, sum) => {
      const n = results.length === 1 ? "1 frame matches" : results.length + " frames match";
      found.text(state.search ? n + " \u201c" + state.search + "\u201d: " + fmtBytes(sum) : "");
    });

    let drawn = false;
    const draw = () => {
      const growth = state.view === "growth";
      const at = state.at, from = state.from;
      const built = growth
        ? buildTree(h, (site) => site.bytes[at] - site.bytes[from], "growth")
        : buildTree(h, (site) => site.bytes[at], "all");
      shown = built.total || 1;
      chart.inverted(state.shape !== "flame");
      if (!drawn) box.datum(built.root).call(chart);
      else chart.update(built.root);
      drawn = true;
      if (state.search) chart.search(state.search);
      else found.text("");
      atSlider.property("value", at);
      fromSlider.property("value", from);
      d3.select("#from-label").style("display", growth ? null : "none");
      let text;
      if (growth) {
        let shrank = 0;
        for (const site of h.sites.concat(h.other)) shrank += Math.max(0, site.bytes[from] - site.bytes[at]);
        text = "Growth from " + fmtTime(h.t_s[from]) + " to " + fmtTime(h.t_s[at]) + ": +" + fmtBytes(built.total) +
            " in the sites that grew" + (shrank ? " (\u2212" + fmtBytes(shrank) + " in those that shrank, not drawn)" : "");
      } else {
        text = "Live at " + fmtTime(h.t_s[at]) + " (snapshot " + (at + 1) + " of " + K + "): " + fmtBytes(built.total);
      }
      if (!built.total) text += growth ? ": nothing grew" : ": nothing live";
      caption.text(text);
      box.attr("data-at", at).attr("data-from", from).attr("data-view", state.view).attr("data-total", built.total);
    };
    listeners.push(draw);
    atSlider.on("input", function () { choose("at", +this.value); });
    fromSlider.on("input", function () { choose("from", +this.value); });
    view.on("change", function () { choose("view", this.value); });
    shape.on("change", function () { state.shape = this.value; draw(); });
    search.on("input", function () { state.search = this.value.trim(); if (state.search) chart.search(state.search); else chart.clear(); });
    reset.on("click", () => chart.resetZoom());
    document.addEventListener("leakscope-search", (e) => {
      search.property("value", e.detail);
      state.search = e.detail;
      chart.search(state.search);
      s.node().scrollIntoView();
    });
    draw();
  }

  // ---- each leaking site: its growth, its stack, what keeps it alive

  function growthChart(parent, series) {
    const W = 520, H = 130, m = { l: 70, r: 10, t: 8, b: 24 };
    const svg = parent.append("svg").attr("viewBox", "0 0 " + W + " " + H).attr("width", W).attr("height", H);
    if (!series.t_s.length) return;
    const x = d3.scaleLinear().domain(d3.extent(series.t_s)).range([m.l, W - m.r]);
    if (x.domain()[0] === x.domain()[1]) x.domain([x.domain()[0], x.domain()[0] + 1]);
    const y = d3.scaleLinear().domain([0, d3.max(series.bytes) || 1]).nice().range([H - m.b, m.t]);
    svg.append("g").attr("transform", "translate(0," + (H - m.b) + ")").call(d3.axisBottom(x).ticks(6).tickFormat((t) => t + " s"));
    svg.append("g").attr("transform", "translate(" + m.l + ",0)").call(d3.axisLeft(y).ticks(4).tickFormat(fmtBytes));
    const area = d3.area().x((_, j) => x(series.t_s[j])).y0(H - m.b).y1((v) => y(v));
    svg.append("path").attr("fill", "#f4b3b3").attr("stroke", "#c62828").attr("d", area(series.bytes));
  }

  function stackRows(parent, rows) {
    const ol = parent.append("ol").attr("class", "frames");
    for (const r of rows) {
      if (r.fold !== undefined) ol.append("li").attr("class", "fold").text(r.fold);
      else ol.append("li").attr("class", r.own ? "own" : null).text(frames[r.frame]);
    }
  }

  function keptAlive(parent, l) {
    if (!l.kept_alive_by.length) return;
    const d = parent.append("div").attr("class", "kept");
    d.append("div").text("kept alive by" + (l.retained ? " (retains " + l.retained + ")" : "") + ":");
    const ul = d.append("ul");
    for (const k of l.kept_alive_by) {
      const li = ul.append("li");
      li.append("div").text(commas(k.objects) + (k.objects >= 1.5 ? " objects" : " object") + " (" + k.bytes + "): " + path(k.kept_by));
      li.append("div").attr("class", "muted").text("e.g. " + path(k.example));
    }
  }

  function leaksSection() {
    if (!data.leaks.length) return;
    const s = section("leaks", "Leaking sites, fastest first");
    if (data.leaks_total > data.leaks.length)
      s.append("p").attr("class", "muted").text("The first " + data.leaks.length + " of " + data.leaks_total + " (--limit shows more).");
    data.leaks.forEach((l, i) => {
      const d = s.append("div").attr("class", "leak");
      const where = l.stack.length ? frames[l.stack[0]] : "<no stack>";
      d.append("h3").text("#" + (i + 1) + "  " + where + "  [" + l.layer + "]");
      d.append("div").text(l.headline);
      d.append("div").attr("class", "muted").text(l.reason);
      growthChart(d.append("div").attr("class", "growth"), l.series);
      stackRows(d, l.rows);
      keptAlive(d, l);
      if (l.stack.length && data.history)
        d.append("button").attr("type", "button").text("find in the flame graph").on("click", () => {
          document.dispatchEvent(new CustomEvent("leakscope-search", { detail: where }));
        });
    });
  }

  // ---- findleaks' lost blocks, and what keeps memory alive

  function lostTable(parent, title, groups) {
    if (!groups.length) return;
    parent.append("h3").text(title);
    const table = parent.append("table").attr("class", "lost");
    const head = table.append("tr");
    for (const c of ["kind", "layer", "bytes", "blocks", "type", "allocated at", "looks like"]) head.append("th").text(c);
    for (const g of groups) {
      const tr = table.append("tr");
      for (const c of [g.kind, g.layer, g.bytes, commas(g.count), g.python_type]) tr.append("td").text(c);
      stackRows(tr.append("td"), g.rows);
      const ex = tr.append("td").append("ul");
      for (const e of g.examples) ex.append("li").append("code").text(e);
    }
  }

  function findleaksSection() {
    const f = data.findleaks;
    if (!f) return;
    const s = section("findleaks", "Lost blocks (findleaks)");
    s.append("p").text(f.summary);
    for (const n of f.notes) s.append("p").attr("class", "muted").text("note: " + n);
    lostTable(s, "Lost", f.lost);
    lostTable(s, "Cyclic garbage not yet collected (not lost)", f.garbage);
  }

  function retentionSection() {
    const r = data.retention;
    if (!r) return;
    const s = section("retention", "What keeps memory alive");
    s.append("p").text(r.summary);
    const ul = s.append("ul");
    for (const hd of r.holders) ul.append("li").text(hd.retained + "  " + path(hd.path));
  }

  header();
  verdict();
  timelineSection();
  flameSection();
  leaksSection();
  findleaksSection();
  retentionSection();
  document.body.setAttribute("data-ready", "1");
})();
