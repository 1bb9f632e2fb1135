/*
 * The BACS battery room as the battery-room card sees it (bacs-battery-room-card.js draws it):
 * read from the entity and device registries and the states the frontend already holds
 * (hass.entities, hass.devices, hass.states), by device model, translation key and device
 * class, never by entity id, so renamed entities and any number of strings and blocks work.
 * Pure functions: no DOM, so node tests them on a real Home Assistant's registries.
 */

export const DOMAIN = "bacs";
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

export function wanted(config) {
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
