// Run by tests/ha/test_frontend_card.py: node card_room.mjs DIR/bacs-battery-room-card.js HASS.json
// (DIR holds the three modules and a package.json of type "module").
// Loads the battery-room card as the browser does (an ES module) and prints what it makes of
// a Home Assistant's registries and states: the room and the HTML it draws.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [cardPath, hassPath] = process.argv.slice(2);
const card = await import(pathToFileURL(cardPath).href);
const hass = JSON.parse(readFileSync(hassPath, "utf8"));
const config = hass.card_config || {};
const { buildRoom, renderRoom } = await card.ready; // the card's two sibling modules
const room = buildRoom(hass, config);
const html = renderRoom(room, config, { language: "en", time_zone: "UTC" });
const out = {
  strings: room.strings.map((s) => ({
    index: s.index,
    name: s.name,
    voltage: s.voltage,
    breaker: s.breaker,
    trip_state: s.trip_state,
    charge_state: s.charge_state,
    worst: s.worst ? s.worst.position : null,
    blocks: s.blocks.map((b) => ({
      position: b.position,
      entity: b.entities["sensor:voltage"],
      voltage: b.voltage,
      deviation: b.deviation,
      marks: b.marks,
      level: b.level,
    })),
    discharge: s.discharge,
  })),
  html,
  bars: (html.match(/<button class="block /g) || []).length,
  element: typeof card.BacsBatteryRoomCard,
  stub: card.BacsBatteryRoomCard.getStubConfig(),
};
process.stdout.write(JSON.stringify(out));
