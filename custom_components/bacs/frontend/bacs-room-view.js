/*
 * The battery room drawn as HTML and CSS (the battery-room card puts it in its shadow root):
 * per string its summary chips, a bar per block around the string's target, the marked
 * blocks with their reasons, and the last discharge with its chart and report button.
 * Pure functions of the room bacs-room.js builds.
 */

// What a block's marks (bacs-room.js MARKS) say and show, worst first.
const MARK_TEXT = {
  alarm: "alarm",
  hot: "hot",
  weak: "weak",
  out_of_range: "out of range",
  no_data: "no reading",
};
const MARK_ICON = {
  alarm: "mdi:alert",
  hot: "mdi:thermometer-alert",
  weak: "mdi:battery-alert-variant-outline",
  out_of_range: "mdi:arrow-expand-vertical",
  no_data: "mdi:help",
};

export function esc(s) {
  return String(s ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]
  );
}

function fixed(v, digits, unit = "") {
  return v === null || v === undefined ? "–" : `${Number(v).toFixed(digits)}${unit}`;
}

function signedMv(v) {
  if (v === null || v === undefined) return "–";
  const mv = Math.round(v * 1000);
  return `${mv > 0 ? "+" : mv < 0 ? "−" : "±"}${Math.abs(mv)} mV`;
}

const NICE_SCALES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5];

/** Full scale of a string's bars: the limit, or the largest deviation when that is larger. */
export function scaleOf(blocks) {
  const limit = blocks.length ? blocks[0].limit : 0.3;
  const largest = Math.max(0, ...blocks.map((b) => Math.abs(b.deviation ?? 0)));
  const need = Math.max(limit, largest);
  return NICE_SCALES.find((s) => s >= need) ?? need;
}

function describe(b) {
  const parts =
    b.voltage === null
      ? [`${b.name}: no reading`]
      : [`${b.name}: ${fixed(b.voltage, 3, " V")}`, `${signedMv(b.deviation)} from the ${b.reference}`];
  if (b.temperature !== null) parts.push(fixed(b.temperature, 1, " °C"));
  if (b.resistance !== null) {
    const ratio = b.resistance_ratio ? ` (${b.resistance_ratio.toFixed(2)}× median)` : "";
    parts.push(`${fixed(b.resistance, 2, " mΩ")}${ratio}`);
  }
  if (b.balancing) parts.push("balancing");
  for (const m of b.marks) if (m !== "no_data") parts.push(MARK_TEXT[m]);
  return parts.join(", ") + (b.reasons.length ? `. ${b.reasons.join("; ")}` : "");
}

function barHtml(b, scale, worst) {
  const dev = b.deviation ?? 0;
  const pct = b.voltage === null ? 0 : Math.min(100, (Math.abs(dev) / scale) * 100);
  const up = dev >= 0;
  const mark = b.marks[0];
  const classes = ["block", `lvl-${b.level}`, ...b.marks.map((m) => `m-${m}`)];
  if (b === worst && (b.marks.length || b.level !== "ok")) classes.push("worst");
  if (b.balancing) classes.push("balancing");
  const icon = mark ? `<ha-icon class="mark" icon="${MARK_ICON[mark]}"></ha-icon>` : "";
  const bar = `<span class="bar ${up ? "up" : "down"}" style="height:${(pct / 2).toFixed(1)}%"></span>`;
  return (
    `<button class="${classes.join(" ")}" data-entity="${esc(b.entities["sensor:voltage"])}"` +
    ` data-position="${b.position}" title="${esc(describe(b))}" aria-label="${esc(describe(b))}">` +
    `<span class="top">${icon}</span><span class="plot">${bar}</span>` +
    `<span class="num">${b.position}</span></button>`
  );
}

function chip(label, val, entity, cls = "") {
  if (val === null || val === undefined) return "";
  const data = entity ? ` data-entity="${esc(entity)}"` : "";
  return `<button class="chip ${cls}"${data}><span class="label">${esc(label)}</span> ${esc(val)}</button>`;
}

function words(s) {
  return s === null || s === undefined ? null : String(s).replace(/_/g, " ");
}

function stringHtml(s, locale) {
  const e = s.entities;
  const amps =
    s.current === null ? null : `${s.current > 0 ? "+" : s.current < 0 ? "−" : ""}${Math.abs(s.current).toFixed(1)} A`;
  const alarms = (s.alarms.alarm_count || 0) + (s.alarms.warning_count || 0);
  const tripBad = s.trip_state && !["armed", "disabled"].includes(s.trip_state);
  const chips = [
    chip("Voltage", fixed(s.voltage, 1, " V"), e["sensor:voltage"]),
    chip("Current", amps, e["sensor:current"]),
    chip("", words(s.charge_state), e["sensor:charge_state"], `state-${s.charge_state}`),
    chip("SoC", s.soc === null ? null : fixed(s.soc, 0, " %"), e["sensor:state_of_charge"]),
    chip("Spread", s.spread === null ? null : fixed(s.spread, 2, " V"), e["sensor:spread"]),
    chip("Breaker", words(s.breaker), s.breaker_entity, s.breaker === "closed" ? "" : "bad"),
    chip("Trip", words(s.trip_state), s.trip_entity, tripBad ? "bad" : ""),
    chip("Alarms", alarms ? String(alarms) : null, e["sensor:alarms"], "bad"),
    s.balancing_active ? chip("", "balancing", e["binary_sensor:balancing"], "info") : "",
  ].join("");
  const scale = scaleOf(s.blocks);
  const bars = s.blocks.map((b) => barHtml(b, scale, s.worst)).join("");
  const marked = s.blocks.filter((b) => b.marks.length);
  const list = (marked.length ? marked : s.worst ? [s.worst] : [])
    .slice(0, 6)
    .map((b) => {
      const why = b.reasons.length ? b.reasons.join("; ") : describe(b);
      const what = b.marks.length ? b.marks.map((m) => MARK_TEXT[m]).join(", ") : "largest deviation";
      return (
        `<li><button class="link lvl-${b.level}" data-entity="${esc(b.entities["sensor:voltage"])}">` +
        `Block ${b.position}</button> <span class="what">${esc(what)}</span>` +
        ` <span class="why">${esc(why)}</span></li>`
      );
    })
    .join("");
  const cols = Math.max(1, Math.min(s.blocks.length, 48));
  return (
    `<section class="string" data-string="${s.index}">` +
    `<div class="head"><span class="name">${esc(s.name)}</span>${chips}</div>` +
    `<div class="chart" style="--cols:${cols}" role="group" aria-label="${esc(s.name)} blocks">` +
    `<span class="scale">±${Math.round(scale * 1000)} mV</span>${bars}</div>` +
    (list ? `<ul class="marked">${list}</ul>` : "") +
    dischargeHtml(s, locale) +
    `</section>`
  );
}

function duration(minutes) {
  if (minutes < 1) return `${Math.round(minutes * 60)} s`;
  if (minutes < 60) return `${minutes.toFixed(1)} min`;
  return `${Math.floor(minutes / 60)} h ${String(Math.round(minutes % 60)).padStart(2, "0")} min`;
}

export function reportLink(report) {
  return `<a href="${esc(report.url)}" target="_blank" rel="noopener">${esc(report.name)}</a>`;
}

function dischargeHtml(s, locale) {
  const d = s.discharge;
  if (d.minutes === null && !d.image_url) return "";
  const when = d.start ? new Date(d.start) : null;
  const date =
    when && !Number.isNaN(when.getTime())
      ? when.toLocaleString(locale?.language, {
          dateStyle: "medium",
          timeStyle: "short",
          ...(locale?.time_zone ? { timeZone: locale.time_zone } : {}),
        })
      : "";
  const head = d.in_progress ? "Discharge running" : "Last discharge";
  const weakest =
    d.weakest && d.weakest !== "none" && d.weakest !== "unknown"
      ? `weakest ${esc(d.weakest)}`
      : "no block fell early";
  const facts = [
    date,
    d.minutes === null ? "" : duration(d.minutes),
    d.ah === null ? "" : `${d.ah.toFixed(2)} Ah`,
    d.capacity_pct === null || d.capacity_pct === undefined
      ? ""
      : `${Number(d.capacity_pct).toFixed(0)} % of rating`,
    d.in_progress ? "" : weakest,
  ]
    .filter(Boolean)
    .join(" · ");
  const img = d.image_url
    ? `<button class="chart-img" data-entity="${esc(d.image_entity)}">` +
      `<img src="${esc(d.image_url)}" alt="${esc(s.name)}: end-of-discharge block voltages"></button>`
    : "";
  const report = d.in_progress
    ? ""
    : `<button class="report" data-report="${s.index}" data-entry="${esc(s.entry)}" data-start="${esc(d.start)}">Open the discharge report</button>`;
  return (
    `<div class="discharge"><div class="dhead"><button class="link" data-entity="${esc(d.duration_entity)}">` +
    `${head}</button> <span class="facts">${facts}</span>${report}</div>${img}` +
    `<div class="report-note"${d.report ? "" : " hidden"}>${d.report ? reportLink(d.report) : ""}</div></div>`
  );
}

export function renderRoom(room, config = {}, locale = undefined) {
  const title = config.title ?? "Battery room";
  const body = room.strings.length
    ? room.strings.map((s) => stringHtml(s, locale)).join("")
    : `<p class="empty">No BACS battery strings found${config.entry ? " for this entry" : ""}.</p>`;
  const legend =
    `<div class="legend"><span class="lvl-ok">within ½ limit</span><span class="lvl-near">within limit</span>` +
    `<span class="lvl-far">beyond limit</span><span class="lvl-alarm">alarm</span>` +
    `<span class="lvl-hot">hot</span><span class="lvl-weak">weak</span>` +
    `<span class="lvl-balancing">balancing</span>` +
    `<span class="lvl-no_data">no reading</span></div>`;
  return `${title ? `<h1 class="title">${esc(title)}</h1>` : ""}<div class="body">${body}</div>${legend}`;
}

export const STYLE = `
:host { display: block; }
ha-card { padding: 12px 12px 8px; overflow: hidden; }
.title { font-size: 20px; font-weight: 400; margin: 0 0 8px; color: var(--ha-card-header-color, var(--primary-text-color)); }
.string { margin-bottom: 14px; }
.head { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 6px; margin-bottom: 6px; }
.name { font-weight: 500; margin-right: 4px; }
button { font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer; }
.chip { font-size: 12px; border-radius: 12px; padding: 2px 8px; background: var(--secondary-background-color, #eee); }
.chip .label { color: var(--secondary-text-color); }
.chip.bad { background: var(--error-color, #db4437); color: #fff; }
.chip.bad .label { color: #fff; }
.chip.info, .chip.state-discharge { background: var(--info-color, #039be5); color: #fff; }
.chart { position: relative; display: grid; grid-template-columns: repeat(auto-fit, minmax(9px, 1fr));
  gap: 2px 1px; padding-left: 0; }
@supports (grid-template-columns: repeat(var(--cols), 1fr)) {
  .chart { grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); }
}
.scale { position: absolute; right: 0; top: -2px; font-size: 10px; color: var(--secondary-text-color); pointer-events: none; }
.block { display: flex; flex-direction: column; align-items: stretch; min-width: 0; border-radius: 3px; outline-offset: 1px; }
.block:focus-visible { outline: 2px solid var(--primary-color, #03a9f4); }
.top { height: 18px; display: flex; justify-content: center; align-items: flex-end; }
.mark { --mdc-icon-size: 16px; width: 16px; height: 16px; color: var(--bar-color); }
.plot { position: relative; height: 84px; background: var(--secondary-background-color, #f2f2f2); border-radius: 2px; }
.plot::after { content: ""; position: absolute; left: 0; right: 0; top: 50%; border-top: 1px solid var(--divider-color, #bbb); }
.bar { position: absolute; left: 12%; right: 12%; background: var(--bar-color); min-height: 2px; border-radius: 1px; }
.bar.up { bottom: 50%; }
.bar.down { top: 50%; }
.num { font-size: 10px; text-align: center; color: var(--secondary-text-color); line-height: 14px; overflow: hidden; white-space: nowrap; }
.block.worst .plot { box-shadow: 0 0 0 2px var(--bar-color); }
.block.worst .num { color: var(--primary-text-color); font-weight: 700; }
.block.balancing .plot::before { content: ""; position: absolute; left: 0; right: 0; bottom: 0; height: 3px; background: var(--info-color, #039be5); border-radius: 0 0 2px 2px; }
.lvl-ok { --bar-color: var(--success-color, #43a047); }
.lvl-near { --bar-color: var(--warning-color, #ffa600); }
.lvl-far, .lvl-alarm { --bar-color: var(--error-color, #db4437); }
.lvl-hot { --bar-color: #e65100; }
.lvl-weak { --bar-color: #8e24aa; }
.lvl-out_of_range { --bar-color: var(--warning-color, #ffa600); }
.lvl-balancing { --bar-color: var(--info-color, #039be5); }
.lvl-no_data { --bar-color: var(--disabled-text-color, #9e9e9e); }
.block.m-no_data .plot { background: repeating-linear-gradient(45deg, var(--secondary-background-color, #eee) 0 3px, var(--divider-color, #ccc) 3px 5px); }
.marked { list-style: none; margin: 6px 0 0; padding: 0; font-size: 13px; }
.marked li { margin: 2px 0; }
.link { color: var(--bar-color, var(--primary-color)); font-weight: 500; text-decoration: underline; }
.what { font-weight: 500; }
.why { color: var(--secondary-text-color); }
.discharge { margin-top: 8px; border-top: 1px solid var(--divider-color, #ddd); padding-top: 6px; font-size: 13px; }
.dhead { display: flex; flex-wrap: wrap; gap: 4px 8px; align-items: center; }
.facts { color: var(--secondary-text-color); }
.report { margin-left: auto; background: var(--primary-color, #03a9f4); color: var(--text-primary-color, #fff); border-radius: 14px; padding: 4px 10px; font-size: 13px; }
.chart-img { display: block; width: 100%; margin-top: 6px; }
.chart-img img { display: block; width: 100%; max-height: 260px; object-fit: contain; background: #fff; border-radius: 4px; }
.report-note { font-size: 12px; margin-top: 4px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 10px; font-size: 11px; color: var(--secondary-text-color); }
.legend span::before { content: ""; display: inline-block; width: 9px; height: 9px; margin-right: 3px; border-radius: 2px; background: var(--bar-color); vertical-align: -1px; }
.empty { color: var(--secondary-text-color); }
:host([narrow]) .num { font-size: 9px; }
:host([narrow]) .block:not(.worst):not([data-position="1"]) .num.sparse { visibility: hidden; }
:host([narrow]) .plot { height: 70px; }
`;
