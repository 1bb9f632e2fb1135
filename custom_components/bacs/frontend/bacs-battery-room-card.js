/*
 * BACS battery-room card: every block of every string as a bar around the string's target,
 * coloured by its deviation and state; the alarmed, hot or weak blocks marked; a tap opens the
 * block's history (Home Assistant's more-info dialog of its voltage). Per string a summary
 * (voltage, current, charge state, breaker, trip) and the last discharge with its chart and
 * its report.
 *
 * Shipped and registered by the BACS integration (custom_components/bacs/card.py): one
 * self-contained ES module, no build step, no dependency. It finds its entities itself in the
 * entity and device registries the frontend already holds (hass.entities, hass.devices), by
 * device model, translation key and device class, never by entity id, so renamed entities
 * and any number of strings and blocks work.
 *
 *   type: custom:bacs-battery-room-card
 *   entry: 01J...          # optional: one BACS config entry (default: all of them)
 *   device: 3f2a...        # optional: one BACS manager's or one string's device id
 *   strings: [1, 2]        # optional: which strings (default: all)
 *   title: Battery room    # optional
 *   deviation_limit: 0.3   # optional, V per block (default 0.05 V per cell)
 *   hot_c: 35              # optional: a block this warm is hot (°C)
 *   hot_delta_c: 5         # optional: or this much warmer than its string's median
 *   weak_ratio: 1.3        # optional: resistance against the string's median that is weak
 */

export const CARD_TYPE = "bacs-battery-room-card";
export const CARD_VERSION = "1.0.0";
const DOMAIN = "bacs";
const STRING_MODEL = "Battery string";
const FLOAT_V_PER_CELL = 2.25;

const DEFAULTS = {
  deviation_limit_per_cell: 0.05, // IEEE 1188: cells within ±0.05 V of the string's average
  hot_c: 35,
  hot_delta_c: 5,
  weak_ratio: 1.3,
};

// Marks, worst first; a block shows the first it has.
export const MARKS = ["alarm", "hot", "weak", "out_of_range", "no_data"];
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

// -- reading the registries -------------------------------------------------------------------

function num(state) {
  if (!state || state.state === "unavailable" || state.state === "unknown") return null;
  const value = Number(state.state);
  return Number.isFinite(value) ? value : null;
}

function median(values) {
  const v = values.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** The role of one of our entities on its device: what it measures, not what it is called. */
export function entityRole(entity, state) {
  const domain = entity.entity_id.split(".", 1)[0];
  const key = entity.translation_key || null;
  const deviceClass = state && state.attributes ? state.attributes.device_class : undefined;
  if (key) return `${domain}:${key}`;
  if (deviceClass) return `${domain}:${deviceClass}`;
  return null;
}

function positionOf(device) {
  const match = /block\s*0*(\d+)\s*$/i.exec(device.name || "");
  return match ? Number(match[1]) : null;
}

function stringIndexOf(device) {
  for (const [domain, id] of device.identifiers || []) {
    const match = domain === DOMAIN && /-string-(\d+)$/.exec(id);
    if (match) return Number(match[1]);
  }
  const match = /(\d+)\s*$/.exec(device.name || "");
  return match ? Number(match[1]) : null;
}

function byDevice(hass) {
  const out = new Map();
  for (const entity of Object.values(hass.entities || {})) {
    // Hidden entities count: hiding declutters other dashboards, it does not remove a block.
    if (entity.platform !== DOMAIN || !entity.device_id) continue;
    const role = entityRole(entity, hass.states[entity.entity_id]);
    if (!role) continue;
    if (!out.has(entity.device_id)) out.set(entity.device_id, {});
    const roles = out.get(entity.device_id);
    if (!(role in roles)) roles[role] = entity.entity_id;
  }
  return out;
}

function wanted(config) {
  const s = config.strings ?? config.string;
  if (s === undefined || s === null || s === "") return null;
  return new Set((Array.isArray(s) ? s : String(s).split(",")).map((x) => Number(x)));
}

/**
 * The room as the card draws it: per string its summary, its blocks with their deviation and
 * marks, the worst block, and the last discharge. Pure: the same hass gives the same room.
 */
export function buildRoom(hass, config = {}) {
  const devices = hass.devices || {};
  const roles = byDevice(hass);
  const only = wanted(config);
  const children = new Map(); // device id -> the devices connected through it
  for (const d of Object.values(devices)) {
    if (!d.via_device_id || !roles.has(d.id)) continue;
    if (!children.has(d.via_device_id)) children.set(d.via_device_id, []);
    children.get(d.via_device_id).push(d);
  }
  const strings = [];
  for (const device of Object.values(devices)) {
    if (device.model !== STRING_MODEL || !roles.has(device.id)) continue;
    if (config.entry && !(device.config_entries || []).includes(config.entry)) continue;
    if (config.device && config.device !== device.id && config.device !== device.via_device_id)
      continue;
    const index = stringIndexOf(device);
    if (only && !only.has(index)) continue;
    strings.push(buildString(hass, config, device, index, children.get(device.id) || [], roles));
  }
  strings.sort((a, b) => a.entry.localeCompare(b.entry) || a.index - b.index);
  return { strings };
}

function value(hass, id) {
  return id ? num(hass.states[id]) : null;
}

function text(hass, id) {
  const state = id ? hass.states[id] : undefined;
  return state ? state.state : null;
}

function buildString(hass, config, device, index, members, roles) {
  const e = roles.get(device.id);
  const hub = device.via_device_id ? roles.get(device.via_device_id) || {} : {};
  const blocks = [];
  for (const d of members) {
    const r = roles.get(d.id);
    if (!r["sensor:voltage"]) continue;
    blocks.push({
      device_id: d.id,
      position: positionOf(d) ?? blocks.length + 1,
      name: d.name_by_user || d.name,
      entities: r,
      voltage: value(hass, r["sensor:voltage"]),
      temperature: value(hass, r["sensor:temperature"]),
      resistance: value(hass, r["sensor:internal_resistance"]),
      deviation_sensor: value(hass, r["sensor:deviation"]),
      problem: text(hass, r["binary_sensor:problem"]) === "on",
      reasons: (hass.states[r["binary_sensor:problem"]]?.attributes?.reasons || []).slice(),
    });
  }
  blocks.sort((a, b) => a.position - b.position);
  const alarms = hass.states[e["sensor:alarms"]]?.attributes?.alarms || [];
  for (const b of blocks) {
    // A module that stops answering has no Problem sensor to say so (it is unavailable with
    // its module): the string's alarms that name the block speak for it.
    const named = new RegExp(`\\bblock 0*${b.position}\\b`, "i");
    const own = alarms.filter((a) => a.string === index && a.key !== "safety" && named.test(a.message));
    if (!b.reasons.length) b.reasons = own.map((a) => a.message);
    if (own.some((a) => a.active)) b.problem = true; // as its Problem sensor would say
  }
  const balancing = hass.states[e["binary_sensor:balancing"]]?.attributes || {};
  const lastDischarge = hass.states[e["sensor:last_discharge_duration"]];
  const weakest = dischargeWeakBlocks(hass, e, lastDischarge);
  judge(blocks, config, balancing, weakest);
  const trip = e["sensor:trip_state"] || hub["sensor:trip_state"];
  const breaker = e["sensor:breaker"] || hub["sensor:breaker"];
  return {
    entry: device.primary_config_entry || (device.config_entries || [])[0] || "",
    index,
    name: device.name_by_user || device.name,
    device_id: device.id,
    entities: e,
    voltage: value(hass, e["sensor:voltage"]),
    current: value(hass, e["sensor:current"]),
    soc: value(hass, e["sensor:state_of_charge"]),
    spread: value(hass, e["sensor:spread"]),
    charge_state: text(hass, e["sensor:charge_state"]),
    breaker: text(hass, breaker),
    breaker_entity: breaker,
    trip_state: text(hass, trip),
    trip_entity: trip,
    alarms: hass.states[e["sensor:alarms"]]?.attributes || {},
    balancing_active: text(hass, e["binary_sensor:balancing"]) === "on",
    blocks,
    worst: worstBlock(blocks),
    discharge: discharge(hass, e, lastDischarge),
  };
}

function dischargeWeakBlocks(hass, e, last) {
  // The blocks a discharge found weak: those the last one's record says fell early, and in a
  // running discharge those of the manager's ranking (the blocks falling furthest beyond the
  // string's mean drop, always a few) that fell beyond the limit. Position -> fall (V).
  const fell = last?.attributes?.in_progress ? [] : last?.attributes?.fell_early || [];
  const ranking = hass.states[e["sensor:discharge_weakest_block"]]?.attributes?.ranking || [];
  return {
    early: new Set(fell.map(Number)),
    falling: new Map(ranking.map((item) => [Number(item.block), Number(item.extra_drop_v)])),
  };
}

function judge(blocks, config, balancing, discharged) {
  const volts = blocks.map((b) => b.voltage).filter((v) => v !== null);
  const mean = volts.length ? volts.reduce((a, b) => a + b, 0) / volts.length : null;
  const cells = mean ? Math.max(1, Math.round(mean / FLOAT_V_PER_CELL)) : 6;
  const limit = Number(config.deviation_limit) || DEFAULTS.deviation_limit_per_cell * cells;
  const hotC = config.hot_c ?? DEFAULTS.hot_c;
  const hotDelta = config.hot_delta_c ?? DEFAULTS.hot_delta_c;
  const weakRatio = config.weak_ratio ?? DEFAULTS.weak_ratio;
  const tMedian = median(blocks.map((b) => b.temperature));
  const rMedian = median(blocks.map((b) => b.resistance));
  const outOfRange = new Set((balancing.out_of_range_blocks || []).map(Number));
  const active = new Set((balancing.balancing_blocks || []).map(Number));
  for (const b of blocks) {
    b.mean = mean;
    b.limit = limit;
    // The manager's own deviation from its balancing target where that sensor is enabled,
    // else the deviation from the string's mean (what the target follows on float).
    b.reference = b.deviation_sensor !== null ? "target" : "string mean";
    b.deviation =
      b.deviation_sensor ?? (b.voltage !== null && mean !== null ? b.voltage - mean : null);
    b.balancing = active.has(b.position);
    b.resistance_ratio = b.resistance !== null && rMedian ? b.resistance / rMedian : null;
    const marks = [];
    if (b.problem) marks.push("alarm");
    if (
      b.temperature !== null &&
      (b.temperature >= hotC || (tMedian !== null && b.temperature - tMedian >= hotDelta))
    )
      marks.push("hot");
    const fall = discharged.falling.get(b.position);
    if (
      (b.resistance_ratio !== null && b.resistance_ratio >= weakRatio) ||
      discharged.early.has(b.position) ||
      (fall !== undefined && fall >= limit)
    )
      marks.push("weak");
    if (outOfRange.has(b.position)) marks.push("out_of_range");
    if (b.voltage === null) marks.push("no_data");
    b.marks = marks;
    b.level = level(b);
  }
}

/** ok | near | far (deviation against the limit) or the first mark. */
function level(b) {
  if (b.marks.length) return b.marks[0];
  const d = Math.abs(b.deviation ?? 0);
  if (d > b.limit) return "far";
  if (d > b.limit / 2) return "near";
  return "ok";
}

function worstBlock(blocks) {
  let worst = null;
  let worstKey = null;
  for (const b of blocks) {
    const rank = b.marks.length ? MARKS.indexOf(b.marks[0]) : MARKS.length;
    const key = [rank, -Math.abs(b.deviation ?? 0)];
    if (!worstKey || key[0] < worstKey[0] || (key[0] === worstKey[0] && key[1] < worstKey[1])) {
      worst = b;
      worstKey = key;
    }
  }
  return worst;
}

function discharge(hass, e, last) {
  const image = hass.states[e["image:last_discharge_chart"]];
  const haveLast = last && last.state !== "unknown" && last.state !== "unavailable";
  return {
    minutes: haveLast ? num(last) : null,
    start: haveLast ? last.attributes.start : null,
    in_progress: haveLast ? Boolean(last.attributes.in_progress) : false,
    recovered: haveLast ? Boolean(last.attributes.recovered) : false,
    fell_early: haveLast ? last.attributes.fell_early || [] : [],
    capacity_pct: haveLast ? last.attributes.capacity_delivered_pct : null,
    ah: value(hass, e["sensor:last_discharge_charge"]),
    weakest: text(hass, e["sensor:last_discharge_weakest_block"]),
    duration_entity: e["sensor:last_discharge_duration"],
    image_entity: e["image:last_discharge_chart"],
    image_url:
      image && image.state !== "unknown" && image.state !== "unavailable"
        ? image.attributes.entity_picture
        : null,
  };
}

// -- drawing -----------------------------------------------------------------------------------

function esc(s) {
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

function reportLink(report) {
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

// -- the element ---------------------------------------------------------------------------------

const STYLE = `
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

const Base = typeof HTMLElement === "undefined" ? class {} : HTMLElement;

export class BacsBatteryRoomCard extends Base {
  static getStubConfig() {
    return {};
  }

  static getConfigElement() {
    return document.createElement(`${CARD_TYPE}-editor`);
  }

  setConfig(config) {
    if (!config || typeof config !== "object") throw new Error("Invalid configuration");
    const only = wanted(config);
    if (only && [...only].some((n) => !Number.isInteger(n) || n < 1)) {
      throw new Error("strings: string numbers (1, 2, …)");
    }
    this._config = { ...config };
    this._signature = null;
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    this._render();
  }

  get hass() {
    return this._hass;
  }

  getCardSize() {
    const strings = this._room ? this._room.strings.length : 1;
    return 1 + strings * 4;
  }

  getGridOptions() {
    return { columns: "full", min_columns: 6 };
  }

  connectedCallback() {
    if (!this._observer && typeof ResizeObserver !== "undefined") {
      this._observer = new ResizeObserver((entries) => {
        const width = entries[0].contentRect.width;
        this.toggleAttribute("narrow", width < 560);
        this._sparseLabels();
      });
      this._observer.observe(this);
    }
  }

  disconnectedCallback() {
    if (this._observer) this._observer.disconnect();
    this._observer = null;
  }

  /** Only the states the card shows decide whether it draws again. */
  _signatureOf(hass) {
    const parts = [];
    for (const entity of Object.values(hass.entities || {})) {
      if (entity.platform !== DOMAIN) continue;
      const s = hass.states[entity.entity_id];
      parts.push(s ? s.last_updated + s.state : "-");
    }
    return `${parts.join("|")}#${Object.keys(hass.devices || {}).length}`;
  }

  _render() {
    if (!this._config || !this._hass) return;
    const signature = this._signatureOf(this._hass);
    if (signature === this._signature) return;
    this._signature = signature;
    this._room = buildRoom(this._hass, this._config);
    for (const s of this._room.strings) {
      const made = (this._reports || {})[`${s.entry}/${s.index}`];
      if (made && made.start === s.discharge.start) s.discharge.report = made;
    }
    if (!this.shadowRoot) {
      this.attachShadow({ mode: "open" });
      this.shadowRoot.innerHTML = `<style>${STYLE}</style><ha-card></ha-card>`;
      this.shadowRoot.addEventListener("click", (ev) => this._click(ev));
    }
    const card = this.shadowRoot.querySelector("ha-card");
    card.innerHTML = renderRoom(this._room, this._config, {
      language: this._hass.locale?.language,
      // Home Assistant's own zone unless the user chose the browser's.
      time_zone: this._hass.locale?.time_zone === "local" ? undefined : this._hass.config?.time_zone,
    });
    this._sparseLabels();
  }

  _sparseLabels() {
    if (!this.shadowRoot) return;
    for (const section of this.shadowRoot.querySelectorAll(".string")) {
      const blocks = section.querySelectorAll(".block");
      const chart = section.querySelector(".chart");
      const width = chart ? chart.clientWidth : 0;
      const every = width && width / blocks.length < 16 ? 4 : 1;
      blocks.forEach((el, i) => {
        const n = el.querySelector(".num");
        const show = every === 1 || i % every === 0 || i === blocks.length - 1;
        n.style.visibility = show || el.classList.contains("worst") ? "" : "hidden";
      });
    }
  }

  _click(ev) {
    const path = ev.composedPath();
    const report = path.find((el) => el.dataset && el.dataset.report);
    if (report) {
      this._openReport(report);
      return;
    }
    const target = path.find((el) => el.dataset && el.dataset.entity);
    if (!target || !target.dataset.entity) return;
    this.dispatchEvent(
      new CustomEvent("hass-more-info", {
        detail: { entityId: target.dataset.entity },
        bubbles: true,
        composed: true,
      })
    );
  }

  /** bacs.generate_report for that string's last discharge, then open it (a signed link, so
   * the new tab needs no login of its own). */
  async _openReport(button) {
    const note = button.closest(".discharge").querySelector(".report-note");
    const tab = window.open("", "_blank");
    button.disabled = true;
    note.hidden = false;
    note.textContent = "Writing the report…";
    try {
      const answer = await this._hass.callWS({
        type: "call_service",
        domain: DOMAIN,
        service: "generate_report",
        service_data: {
          config_entry_id: button.dataset.entry,
          discharge: "last",
          string: Number(button.dataset.report),
        },
        return_response: true,
      });
      const report = answer.response || answer;
      const url = this._hass.hassUrl ? this._hass.hassUrl(report.signed_url) : report.signed_url;
      const made = { url, name: report.name, start: button.dataset.start };
      this._reports = { ...(this._reports || {}), [`${button.dataset.entry}/${button.dataset.report}`]: made };
      note.innerHTML = reportLink(made);
      if (tab) tab.location.href = url;
    } catch (err) {
      if (tab) tab.close();
      note.textContent = `No report: ${err && err.message ? err.message : err}`;
    } finally {
      button.disabled = false;
    }
  }
}

// -- the editor: which entry and which strings --------------------------------------------------

export class BacsBatteryRoomCardEditor extends Base {
  setConfig(config) {
    this._config = { ...config };
    this._render();
  }

  set hass(hass) {
    this._hass = hass;
    this._render();
  }

  _render() {
    if (!this._hass || !this._config) return;
    if (!this._form) {
      this._form = document.createElement("ha-form");
      this._form.computeLabel = (s) =>
        ({
          entry: "BACS entry (empty: all)",
          device: "A BACS manager or string (empty: all)",
          strings: "Strings, e.g. 1,2 (empty: all)",
          title: "Title",
          hot_c: "Hot above (°C)",
          weak_ratio: "Weak at resistance × string median",
        })[s.name] || s.name;
      this._form.addEventListener("value-changed", (ev) => {
        const config = { ...this._config, ...ev.detail.value };
        for (const [k, v] of Object.entries(config)) if (v === "" || v === undefined) delete config[k];
        this._config = config;
        this.dispatchEvent(new CustomEvent("config-changed", { detail: { config }, bubbles: true, composed: true }));
      });
      this.appendChild(this._form);
    }
    this._form.hass = this._hass;
    this._form.schema = [
      { name: "title", selector: { text: {} } },
      { name: "entry", selector: { config_entry: { integration: DOMAIN } } },
      { name: "device", selector: { device: { integration: DOMAIN } } },
      { name: "strings", selector: { text: {} } },
      { name: "hot_c", selector: { number: { min: 20, max: 80, step: 1, mode: "box" } } },
      { name: "weak_ratio", selector: { number: { min: 1.05, max: 3, step: 0.05, mode: "box" } } },
    ];
    const data = { ...this._config };
    if (Array.isArray(data.strings)) data.strings = data.strings.join(",");
    this._form.data = data;
  }
}

if (typeof customElements !== "undefined") {
  if (!customElements.get(CARD_TYPE)) customElements.define(CARD_TYPE, BacsBatteryRoomCard);
  if (!customElements.get(`${CARD_TYPE}-editor`)) {
    customElements.define(`${CARD_TYPE}-editor`, BacsBatteryRoomCardEditor);
  }
  window.customCards = window.customCards || [];
  if (!window.customCards.some((c) => c.type === CARD_TYPE)) {
    window.customCards.push({
      type: CARD_TYPE,
      name: "BACS battery room",
      description:
        "Every block as a bar coloured by its deviation and state; alarmed, hot and weak blocks marked; tap for its history.",
      preview: true,
      documentationURL: "https://github.com/bacs-ha/bacs-ha#readme",
    });
  }
}
