/*
 * BACS battery-room card: every block of every string as a bar around the string's target,
 * coloured by its deviation and state; the alarmed, hot or weak blocks marked; a tap opens the
 * block's history (Home Assistant's more-info dialog of its voltage). Per string a summary
 * (voltage, current, charge state, breaker, trip) and the last discharge with its chart and
 * its report.
 *
 * Shipped and registered by the BACS integration (custom_components/bacs/card.py): plain ES
 * modules, no build step, no dependency. bacs-room.js reads the room from the registries,
 * bacs-room-view.js draws it; both are loaded with this module's own version (its ?v=), so
 * a new release of any of the three is fetched at once.
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
const DOMAIN = "bacs";

// The reading and the drawing of the room, loaded with this module's own version (an upgraded
// card never meets a cached old half). The elements are defined at once, so a dashboard never
// waits for them or shows "custom element doesn't exist"; a card draws once both are here.
const VERSION = new URL(import.meta.url).search;
export const ready = Promise.all([
  import(`./bacs-room.js${VERSION}`),
  import(`./bacs-room-view.js${VERSION}`),
]).then(([room, view]) => ({ ...room, ...view }));
let parts = null;
ready.then((loaded) => {
  parts = loaded;
});

function stringNumbers(config) {
  const s = config.strings ?? config.string;
  if (s === undefined || s === null || s === "") return [];
  return (Array.isArray(s) ? s : String(s).split(",")).map(Number);
}

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
    if (stringNumbers(config).some((n) => !Number.isInteger(n) || n < 1)) {
      throw new Error("strings: string numbers (1, 2, …)");
    }
    this._config = { ...config };
    this._signature = null;
    this._html = null;
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
    if (!parts) {
      ready.then(() => this._render());
      return;
    }
    const signature = this._signatureOf(this._hass);
    if (signature === this._signature) return;
    this._signature = signature;
    const { buildRoom, renderRoom, STYLE } = parts;
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
    const html = renderRoom(this._room, this._config, {
      language: this._hass.locale?.language,
      // Home Assistant's own zone unless the user chose the browser's.
      time_zone: this._hass.locale?.time_zone === "local" ? undefined : this._hass.config?.time_zone,
    });
    if (html === this._html) return; // nothing the card shows has changed
    this._html = html;
    // Keyboard focus survives the redraw: the same bar or button has it again.
    const focused = this.shadowRoot.activeElement?.dataset?.entity;
    this.shadowRoot.querySelector("ha-card").innerHTML = html;
    if (focused) this.shadowRoot.querySelector(`[data-entity="${CSS.escape(focused)}"]`)?.focus();
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
    const { entry, report: string, start } = button.dataset;
    // The card draws itself again with new readings: always the note on the card now.
    const note = () =>
      this.shadowRoot
        .querySelector(`.report[data-entry="${CSS.escape(entry)}"][data-report="${string}"]`)
        ?.closest(".discharge")
        ?.querySelector(".report-note") ?? { hidden: false };
    const tab = window.open("", "_blank");
    button.disabled = true;
    Object.assign(note(), { hidden: false, textContent: "Writing the report…" });
    try {
      const answer = await this._hass.callWS({
        type: "call_service",
        domain: DOMAIN,
        service: "generate_report",
        service_data: { config_entry_id: entry, discharge: "last", string: Number(string) },
        return_response: true,
      });
      const report = answer.response || answer;
      const url = this._hass.hassUrl ? this._hass.hassUrl(report.signed_url) : report.signed_url;
      this._reports = { ...(this._reports || {}), [`${entry}/${string}`]: { url, name: report.name, start } };
      if (tab) tab.location.href = url;
      this._signature = null; // draw the link (kept until the next discharge)
      this._render();
    } catch (err) {
      if (tab) tab.close();
      Object.assign(note(), { hidden: false, textContent: `No report: ${err?.message ?? err}` });
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
