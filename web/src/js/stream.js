// The relay's server-sent event stream, with its connection state made visible.
// EventSource retries by itself after a network error (the relay sends `retry: 2000`); when the
// browser gives up (readyState CLOSED, e.g. after a 503) we start a new one with a backoff. A
// watchdog reconnects when the stream goes quiet for several slots although it looks open.

const EVENTS = ["hello", "opened", "closed", "proposed", "posted", "missed"];

export class RelayStream {
  /**
   * @param {string} url
   * @param {{onEvent:(type:string,data:any)=>void, onState:(state:string, detail?:string)=>void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.es = null;
    this.retryTimer = 0;
    this.backoffMs = 1000;
    this.lastMessageAt = 0;
    this.quietLimitMs = 20_000;
    this.state = "connecting";
    this.watchdog = setInterval(() => this.checkQuiet(), 1000);
  }

  start() {
    this.connect();
  }

  setState(state, detail) {
    if (this.state === state && !detail) return;
    this.state = state;
    this.handlers.onState(state, detail);
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.es) this.es.close();
    this.setState(this.everConnected ? "reconnecting" : "connecting");
    const es = new EventSource(this.url);
    this.es = es;
    this.lastMessageAt = Date.now();
    for (const type of EVENTS) {
      es.addEventListener(type, (e) => {
        if (this.es !== es) return;
        this.lastMessageAt = Date.now();
        let data;
        try { data = JSON.parse(e.data); } catch { return; }
        if (type === "hello") {
          this.everConnected = true;
          this.backoffMs = 1000;
          this.setState("connected");
        }
        this.handlers.onEvent(type, data);
      });
    }
    es.onerror = () => {
      if (this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser will not retry this one: do it ourselves.
        this.setState("disconnected", `retrying in ${Math.round(this.backoffMs / 1000)} s`);
        this.retryTimer = setTimeout(() => this.connect(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
      } else {
        this.setState(this.everConnected ? "reconnecting" : "connecting");
      }
    };
  }

  /** Slots open every slot_ms, so a stream that says nothing for long is dead. */
  checkQuiet() {
    if (this.state !== "connected" || !this.es) return;
    if (Date.now() - this.lastMessageAt > this.quietLimitMs) {
      this.setState("reconnecting", "stream went quiet");
      this.connect();
    }
  }

  setSlotMs(slotMs) {
    this.quietLimitMs = Math.max(5 * slotMs, 10_000);
  }
}
