// The auction dashboard: the open auction (sealed), the reveal at its close, recent slots,
// builder and proposer standings, and charts — kept live by the relay's event stream.
//
// Requests: the recent slots list on every (re)connect (`hello`), one slot's details when its
// `closed` event arrives, and the standings at most once per slot. Nothing polls.

import { api } from "./api.js";
import { RelayStream } from "./stream.js";
import { Charts } from "./charts.js";
import { formatWei, weiToGwei, shortHex, formatCount, formatPercent, formatTime, formatCountdown, addressHue } from "./format.js";

const KEEP_SLOTS = 40;
const CHART_SLOTS = 30;
const RANK = { open: 0, closed: 1, missed: 2, proposed: 2, posted: 3 };

const state = {
  clock: null,          // { genesisMs, slotMs, closeOffsetMs, offsetMs }
  auction: null,        // the open auction: { slot, proposer, closes_at_ms, parent_hash, number }
  slots: new Map(),     // slot number -> slot view (data API shape)
  revealSlot: null,
  expanded: new Set(),
  builders: null,
  proposers: null,
  standingsSlot: -1,
  inflight: new Set(),
  connection: "connecting",
  // Status events (proposed, posted, missed) for slots not in the list yet: kept until the slot
  // arrives (a list read that raced the event would otherwise show it as closed for good).
  pendingStatus: new Map(),
};

const $ = (sel, root = document) => root.querySelector(sel);
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function serverNow() {
  return Date.now() + (state.clock ? state.clock.offsetMs : 0);
}

function addr(a, { full = false } = {}) {
  if (!a) return `<span class="muted">—</span>`;
  const hue = addressHue(a.toLowerCase());
  return `<span class="addr" title="${esc(a)}" data-address="${esc(a.toLowerCase())}"><i class="dot" style="--h:${hue}"></i><span class="mono">${esc(full ? a : shortHex(a))}</span></span>`;
}

function amount(wei, testid) {
  if (wei === null || wei === undefined) return `<span class="muted">—</span>`;
  return `<span class="amount mono"${testid ? ` data-testid="${testid}"` : ""} data-wei="${esc(wei)}" title="${esc(wei)} wei">${esc(formatWei(wei))}</span>`;
}

function statusBadge(status) {
  return `<span class="badge badge-${esc(status)}">${esc(status)}</span>`;
}

// ---------------------------------------------------------------- state updates

function mergeSlot(view) {
  const slot = Number(view.slot);
  const old = state.slots.get(slot);
  if (old && (RANK[old.status] ?? 0) > (RANK[view.status] ?? 0)) {
    // An event told us more than this (older) read: keep the newer status and its facts.
    view = { ...view, status: old.status, l1_tx_hash: old.l1_tx_hash ?? view.l1_tx_hash,
      proposed_header_hash: old.proposed_header_hash ?? view.proposed_header_hash, missed_reason: old.missed_reason ?? view.missed_reason };
  }
  if (old && old.bids && !view.bids && view.status !== "open") view = { ...old, ...view, bids: old.bids };
  const pending = state.pendingStatus.get(slot);
  if (pending) {
    for (const p of pending) {
      if ((RANK[p.status] ?? 0) > (RANK[view.status] ?? 0)) view = { ...view, ...p.extra, status: p.status };
      else view = { ...p.extra, ...view };
    }
    state.pendingStatus.delete(slot);
  }
  state.slots.set(slot, view);
}

function trimSlots() {
  const keys = [...state.slots.keys()].sort((a, b) => b - a);
  for (const k of keys.slice(KEEP_SLOTS)) {
    state.slots.delete(k);
    state.expanded.delete(k);
  }
}

function isRevealed(view) {
  return view && view.status !== "open" && Array.isArray(view.bids);
}

function pickReveal() {
  let best = null;
  for (const [slot, view] of state.slots) if (isRevealed(view) && (best === null || slot > best)) best = slot;
  state.revealSlot = best;
}

// ---------------------------------------------------------------- loading

let slotsLoading = null;
async function loadSlots() {
  if (slotsLoading) return slotsLoading;
  slotsLoading = (async () => {
    try {
      const page = await api.slots(KEEP_SLOTS);
      const fresh = new Map();
      for (const v of page.slots) fresh.set(Number(v.slot), v);
      // The list is the truth after a (re)connect; keep only what an event may have added since.
      for (const k of [...state.slots.keys()]) if (!fresh.has(k) && k < Math.min(...fresh.keys())) state.slots.delete(k);
      for (const v of page.slots) mergeSlot(v);
      trimSlots();
      const open = page.slots.filter((v) => v.status === "open").sort((a, b) => Number(b.slot) - Number(a.slot))[0];
      if (open && (!state.auction || Number(open.slot) >= state.auction.slot)) setAuction(open);
      pickReveal();
      banner(null);
      renderAll();
    } catch (e) {
      banner(`Could not load recent slots (${e.message}). Retrying…`);
      setTimeout(() => { if (state.connection === "connected") loadSlots(); }, 3000);
    } finally {
      slotsLoading = null;
    }
  })();
  return slotsLoading;
}

async function loadSlot(slot, attempt = 0) {
  if (state.inflight.has(slot)) return;
  state.inflight.add(slot);
  try {
    const view = await api.slot(slot);
    mergeSlot(view);
    trimSlots();
    if (isRevealed(state.slots.get(slot)) && (state.revealSlot === null || slot >= state.revealSlot)) state.revealSlot = slot;
    renderReveal();
    renderSlots();
    renderCharts();
  } catch (e) {
    if (attempt < 2) setTimeout(() => loadSlot(slot, attempt + 1), 500 * (attempt + 1));
  } finally {
    state.inflight.delete(slot);
  }
}

let standingsTimer = 0;
/** At most once per slot: builders and proposers come from the archive, a moment after the close. */
function scheduleStandings(slot, delayMs = 400) {
  if (slot <= state.standingsSlot) return;
  state.standingsSlot = slot;
  clearTimeout(standingsTimer);
  standingsTimer = setTimeout(loadStandings, delayMs);
}

async function loadStandings() {
  const [b, p] = await Promise.allSettled([api.builders(), api.proposers()]);
  if (b.status === "fulfilled") state.builders = b.value.builders ?? [];
  if (p.status === "fulfilled") state.proposers = p.value;
  renderBuilders();
  renderProposers();
}

// ---------------------------------------------------------------- events

function setAuction(v) {
  state.auction = { slot: Number(v.slot), proposer: v.proposer, closes_at_ms: Number(v.closes_at_ms), parent_hash: v.parent_hash, number: v.number };
  renderAuction();
}

const handlers = {
  hello(d) {
    const now = Number(d.now_ms);
    state.clock = { genesisMs: Number(d.genesis_ms), slotMs: Number(d.slot_ms), closeOffsetMs: Number(d.close_offset_ms), offsetMs: now - Date.now() };
    stream.setSlotMs(state.clock.slotMs);
    // Catch up: whatever happened while we were away (or before we came).
    loadSlots();
    state.standingsSlot = -1;
    scheduleStandings(Number(d.slot), 0);
  },
  opened(d) {
    const slot = Number(d.slot);
    if (!state.slots.has(slot) || state.slots.get(slot).status === "open")
      state.slots.set(slot, { slot: d.slot, proposer: d.proposer, status: "open", parent_hash: d.parent_hash, number: d.number, closes_at_ms: d.closes_at_ms });
    trimSlots();
    if (!state.auction || slot >= state.auction.slot) setAuction(d);
    renderSlots();
    renderProposers();
  },
  closed(d) {
    const slot = Number(d.slot);
    const old = state.slots.get(slot);
    if (old && old.status === "open") state.slots.set(slot, { ...old, status: "closed", bid_count: d.bid_count, price: d.price });
    renderSlots();
    renderAuction();
    loadSlot(slot);
    scheduleStandings(slot);
  },
  proposed(d) {
    patchStatus(d.slot, "proposed", { proposed_header_hash: d.header_hash });
  },
  posted(d) {
    patchStatus(d.slot, "posted", { l1_tx_hash: d.l1_tx_hash });
  },
  missed(d) {
    patchStatus(d.slot, "missed", { missed_reason: d.reason });
  },
};

function patchStatus(slotStr, status, extra) {
  const slot = Number(slotStr);
  const old = state.slots.get(slot);
  if (!old) {
    // Not listed yet (the list is loading, or the event came before `opened`): apply it when it is.
    const list = state.pendingStatus.get(slot) ?? [];
    list.push({ status, extra });
    state.pendingStatus.set(slot, list);
    for (const k of [...state.pendingStatus.keys()]) if (k < slot - KEEP_SLOTS) state.pendingStatus.delete(k);
    return;
  }
  const keep = (RANK[old.status] ?? 0) > (RANK[status] ?? 0);
  state.slots.set(slot, { ...old, ...extra, status: keep ? old.status : status });
  renderSlots();
  if (slot === state.revealSlot) renderReveal();
}

function onConnection(conn, detail) {
  state.connection = conn;
  const el = byTestId("connection-status");
  el.dataset.state = conn;
  const text = {
    connecting: "connecting…",
    connected: "live",
    reconnecting: "disconnected · reconnecting…",
    disconnected: `disconnected${detail ? ` · ${detail}` : ""}`,
  }[conn] ?? conn;
  $(".conn-text", el).textContent = text;
  document.body.classList.toggle("offline", conn !== "connected");
  renderAuction();
}

function banner(text) {
  const el = byTestId("banner");
  el.hidden = !text;
  el.textContent = text ?? "";
}

// ---------------------------------------------------------------- rendering

function renderAll() {
  renderAuction();
  renderReveal();
  renderSlots();
  renderCharts();
  renderBuilders();
  renderProposers();
}

let lastAuctionKey = "";
function renderAuction() {
  const a = state.auction;
  const key = a ? `${a.slot}|${a.proposer}` : "";
  if (key !== lastAuctionKey) {
    lastAuctionKey = key;
    byTestId("current-slot").textContent = a ? String(a.slot) : "—";
    byTestId("current-proposer").innerHTML = a ? addr(a.proposer) : "—";
    byTestId("current-number").textContent = a?.number ?? "—";
    byTestId("current-parent").innerHTML = a?.parent_hash ? `<span title="${esc(a.parent_hash)}">${esc(shortHex(a.parent_hash, 10, 6))}</span>` : "—";
    byTestId("current-closes").textContent = a ? formatTime(a.closes_at_ms) : "—";
  }
  tick();
}

function tick() {
  const now = serverNow();
  const c = state.clock;
  if (c) byTestId("chain-slot").textContent = String(Math.floor((now - c.genesisMs) / c.slotMs));
  const a = state.auction;
  const badge = byTestId("sealed-badge");
  const countdown = byTestId("countdown");
  const fill = $(".bar-fill");
  let badgeState, badgeText, label, text, left = null;
  if (!a) {
    badgeState = "idle"; badgeText = "waiting"; label = "next auction"; text = "—";
  } else {
    left = a.closes_at_ms - now;
    if (left > 0) {
      badgeState = "sealed"; badgeText = "Sealed"; label = "closes in"; text = formatCountdown(left);
    } else {
      const revealed = isRevealed(state.slots.get(a.slot));
      badgeState = revealed ? "revealed" : "closed";
      badgeText = revealed ? "Revealed" : state.connection === "connected" ? "Closed · revealing…" : "Closed";
      label = state.connection === "connected" ? "next auction opens shortly" : "waiting for the relay";
      text = formatCountdown(0);
    }
  }
  if (badge.dataset.state !== badgeState) badge.dataset.state = badgeState;
  $(".seal-text", badge).textContent = badgeText;
  byTestId("countdown-label").textContent = label;
  countdown.textContent = text;
  countdown.dataset.msLeft = left === null ? "" : String(Math.max(0, Math.round(left)));
  const span = c ? c.slotMs - c.closeOffsetMs : 1;
  fill.style.width = left === null ? "0%" : `${Math.max(0, Math.min(1, left / span)) * 100}%`;
}

function receivedCell(bid, closesAt) {
  const t = formatTime(bid.received_at_ms);
  if (!closesAt) return `<span class="mono">${t}</span>`;
  const before = Number(closesAt) - Number(bid.received_at_ms);
  const rel = before >= 0 ? `${formatCount(before)} ms before close` : `${formatCount(-before)} ms after close`;
  const short = before >= 0 ? `−${formatCount(before)} ms` : `+${formatCount(-before)} ms`;
  return `<span class="mono hide-sm">${t}</span><span class="sub muted hide-sm">${rel}</span><span class="mono show-sm" title="${esc(t)}, ${esc(rel)}">${short}</span>`;
}

function sortedBids(view) {
  return [...(view.bids ?? [])].sort((x, y) => {
    const dv = BigInt(y.value) - BigInt(x.value);
    if (dv !== 0n) return dv > 0n ? 1 : -1;
    return Number(x.received_at_ms) - Number(y.received_at_ms);
  });
}

function bidsRows(view) {
  const bids = sortedBids(view);
  if (bids.length === 0) return `<tr><td colspan="7" class="empty">No bids: no winner, nothing paid.</td></tr>`;
  const max = BigInt(bids[0].value) || 1n;
  const winner = view.winner?.header_hash;
  return bids.map((b, i) => {
    const isWinner = b.header_hash === winner;
    // A block that failed the relay's simulation took no part in the auction (docs/l2.md, optimistic simulation).
    const failed = b.simulation && b.simulation !== "valid" ? b.simulation : null;
    const pct = Number((BigInt(b.value) * 1000n) / max) / 10;
    return `<tr class="${isWinner ? "winner-row" : failed ? "failed-row" : ""}" data-testid="bid-row" data-header-hash="${esc(b.header_hash)}">
      <td class="muted hide-sm">${i + 1}</td>
      <td>${addr(b.builder)}${isWinner ? ` <span class="tag" title="winner"><span class="hide-sm">winner</span><span class="show-sm">★</span></span>` : ""}${failed ? ` <span class="tag tag-failed" data-testid="bid-failed" title="its block failed execution (${esc(failed)}): it took no part in the auction">${esc(failed)}</span>` : ""}</td>
      <td class="num"><div class="valbar" style="--w:${pct}%">${amount(b.value)}</div></td>
      <td class="num">${receivedCell(b, view.closes_at_ms)}</td>
      <td class="num hide-sm" data-testid="bid-fees">${amount(b.fees)}</td>
      <td class="num mono hide-sm">${formatCount(b.gas_used)}</td>
      <td class="num mono">${formatCount(b.tx_count)}</td>
    </tr>`;
  }).join("");
}

function renderReveal() {
  const view = state.revealSlot === null ? null : state.slots.get(state.revealSlot);
  const tbody = $("tbody", byTestId("reveal-bids"));
  if (!view) {
    byTestId("reveal-slot").textContent = "—";
    return;
  }
  byTestId("reveal-slot").textContent = String(view.slot);
  byTestId("reveal-status").innerHTML = statusBadge(view.status);
  const w = byTestId("winner");
  w.innerHTML = view.winner ? addr(view.winner.builder) : `<span class="muted">no winner</span>`;
  w.dataset.address = view.winner ? view.winner.builder.toLowerCase() : "";
  w.dataset.headerHash = view.winner ? view.winner.header_hash : "";
  const p = byTestId("price");
  p.innerHTML = `<span class="mono">${esc(formatWei(view.price ?? "0"))}</span>`;
  p.dataset.wei = view.price ?? "0";
  p.title = `${view.price ?? "0"} wei`;
  byTestId("winning-bid").innerHTML = view.winner ? `<span class="mono">${esc(formatWei(view.winner.value))}</span>` : "—";
  byTestId("bid-count").textContent = formatCount(view.bid_count ?? view.bids?.length ?? 0);
  byTestId("bids-root").textContent = view.bids_root ?? "—";
  tbody.innerHTML = bidsRows(view);
}

function slotDetails(view) {
  if (view.status === "open") {
    return `<div class="details-grid"><div><span class="label">Sealed</span> bids are revealed when the auction closes at <span class="mono">${esc(formatTime(view.closes_at_ms))}</span>.</div></div>`;
  }
  const l1 = view.l1_tx_hash
    ? `<code data-testid="l1-tx" class="wrap">${esc(view.l1_tx_hash)}</code>`
    : `<span class="muted" data-testid="l1-tx">${view.status === "missed" ? "none (missed)" : "not posted yet"}</span>`;
  const facts = [
    ["L1 transaction", l1],
    ["Proposed header", view.proposed_header_hash ? `<code class="wrap">${esc(view.proposed_header_hash)}</code>` : `<span class="muted">—</span>`],
    ["Bids root", `<code class="wrap">${esc(view.bids_root ?? "—")}</code>`],
    ["Block", `<span class="mono">${esc(view.number ?? "—")}</span>`],
    ["Closed at", `<span class="mono">${esc(formatTime(view.closed_at_ms ?? view.closes_at_ms))}</span>`],
  ];
  if (view.missed_reason) facts.push(["Missed", esc(view.missed_reason)]);
  const bids = Array.isArray(view.bids)
    ? `<div class="table-wrap"><table class="bids compact"><thead><tr><th class="hide-sm">#</th><th>Builder</th><th class="num">Value</th><th class="num">Received</th><th class="num hide-sm" title="what the block's fees pay its builder, measured by the relay's simulation">Fees</th><th class="num hide-sm">Gas used</th><th class="num">Txs</th></tr></thead><tbody>${bidsRows(view)}</tbody></table></div>`
    : `<p class="muted">Loading bids…</p>`;
  return `<dl class="details-grid">${facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join("")}</dl>${bids}`;
}

function renderSlots() {
  const tbody = $("tbody", byTestId("slots"));
  const list = [...state.slots.values()].sort((a, b) => Number(b.slot) - Number(a.slot));
  if (list.length === 0) {
    tbody.innerHTML = `<tr><td colspan="7" class="empty">${state.connection === "connected" ? "No slots yet." : "Loading…"}</td></tr>`;
    return;
  }
  tbody.innerHTML = list.map((v) => {
    const slot = Number(v.slot);
    const open = v.status === "open";
    const expanded = state.expanded.has(slot);
    const bidCount = open ? `<span class="muted" title="sealed">sealed</span>` : formatCount(v.bid_count ?? v.bids?.length ?? "—");
    const winner = open ? `<span class="muted">—</span>` : v.winner ? addr(v.winner.builder) : `<span class="muted">${Array.isArray(v.bids) ? "none" : "…"}</span>`;
    const price = open ? `<span class="muted">—</span>` : amount(v.price ?? null);
    const row = `<tr class="slot-row${expanded ? " expanded" : ""}" data-testid="slot-row" data-slot="${slot}" data-status="${esc(v.status)}" tabindex="0" aria-expanded="${expanded}">
      <td class="mono">${slot}</td>
      <td>${statusBadge(v.status)}</td>
      <td class="hide-sm">${addr(v.proposer)}</td>
      <td class="num mono hide-sm">${bidCount}</td>
      <td>${winner}</td>
      <td class="num">${price}</td>
      <td class="chev" aria-hidden="true">${expanded ? "▾" : "▸"}</td>
    </tr>`;
    const details = expanded ? `<tr class="details-row" data-testid="slot-details" data-slot="${slot}"><td colspan="7">${slotDetails(v)}</td></tr>` : "";
    return row + details;
  }).join("");
}

function toggleSlot(slot) {
  if (state.expanded.has(slot)) state.expanded.delete(slot);
  else state.expanded.add(slot);
  renderSlots();
}

function renderCharts() {
  const points = [...state.slots.values()]
    .filter((v) => v.status !== "open" && Array.isArray(v.bids))
    .sort((a, b) => Number(a.slot) - Number(b.slot))
    .slice(-CHART_SLOTS)
    .map((v) => {
      const values = v.bids.map((b) => weiToGwei(b.value));
      return {
        slot: Number(v.slot),
        price: v.winner ? weiToGwei(v.price ?? "0") : null,
        min: values.length ? Math.min(...values) : null,
        max: values.length ? Math.max(...values) : null,
        winner: v.winner ? weiToGwei(v.winner.value) : null,
      };
    });
  charts?.update(points);
}

function renderBuilders() {
  const tbody = $("tbody", byTestId("builders"));
  if (state.builders === null) return;
  if (state.builders.length === 0) {
    tbody.innerHTML = `<tr><td colspan="6" class="empty">No bids archived yet.</td></tr>`;
    return;
  }
  tbody.innerHTML = state.builders.map((b) => `<tr data-testid="builder-row" data-address="${esc(String(b.builder).toLowerCase())}">
      <td>${addr(b.builder)}</td>
      <td class="num mono">${formatCount(b.wins)}</td>
      <td class="num mono" title="wins / slots bid (${esc(b.slots_bid)})">${formatPercent(b.win_rate)}</td>
      <td class="num mono hide-sm">${formatCount(b.bids)}</td>
      <td class="num">${amount(b.total_paid)}</td>
      <td class="num hide-sm">${amount(b.average_bid)}</td>
    </tr>`).join("");
}

function renderProposers() {
  const p = state.proposers;
  if (!p) return;
  byTestId("epoch").textContent = p.epoch !== undefined ? `· epoch ${p.epoch}` : "";
  const from = state.auction ? state.auction.slot - 1 : -Infinity;
  const rotation = (p.rotation ?? []).filter((r) => Number(r.slot) >= from).slice(0, 12);
  byTestId("rotation").innerHTML = rotation.map((r) => {
    const slot = Number(r.slot);
    const cls = state.auction && slot === state.auction.slot ? " current" : state.auction && slot < state.auction.slot ? " building" : "";
    return `<li class="rot${cls}" data-testid="rotation-slot" data-slot="${slot}"><span class="rot-slot mono">${slot}</span>${addr(r.proposer)}</li>`;
  }).join("");
  const tbody = $("tbody", byTestId("proposers"));
  const rows = (p.proposers ?? []);
  tbody.innerHTML = rows.length === 0 ? `<tr><td colspan="6" class="empty">No proposers.</td></tr>` : rows.map(({ proposer, record }) => `<tr data-testid="proposer-row" data-address="${esc(String(proposer).toLowerCase())}">
      <td>${addr(proposer)}</td>
      <td class="num mono hide-sm">${formatCount(record?.slots_led ?? 0)}</td>
      <td class="num mono">${formatCount(record?.proposed ?? 0)}</td>
      <td class="num mono hide-sm">${formatCount(record?.posted ?? 0)}</td>
      <td class="num mono">${formatCount(record?.missed ?? 0)}</td>
      <td class="num">${amount(record?.earned ?? "0")}</td>
    </tr>`).join("");
}

// ---------------------------------------------------------------- start

let charts = null;
const stream = new RelayStream(api.streamUrl, {
  onEvent: (type, data) => handlers[type]?.(data),
  onState: onConnection,
});

function start() {
  try {
    charts = new Charts(byTestId("price-chart"), byTestId("spread-chart"));
  } catch {
    charts = null;
  }
  const slotsBody = $("tbody", byTestId("slots"));
  // The table is re-rendered as slots move on (several times a second). A "click" needs the press and
  // the release on the same element, so a re-render between them would swallow it: toggle on the
  // press instead (primary button only; links and hashes keep their own behaviour).
  slotsBody.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    const row = e.target.closest("tr.slot-row");
    if (row && !e.target.closest("a, code")) toggleSlot(Number(row.dataset.slot));
  });
  slotsBody.addEventListener("keydown", (e) => {
    const row = e.target.closest("tr.slot-row");
    if (row && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); toggleSlot(Number(row.dataset.slot)); }
  });
  setInterval(tick, 100);
  stream.start();
  // If the stream is slow to say hello, show what the data API knows meanwhile.
  setTimeout(() => { if (state.slots.size === 0) loadSlots(); }, 3000);
}

// For tests and the curious: the formatter the page uses, and its state.
window.pbsDashboard = { formatWei, state };

if (document.readyState === "complete") start();
else window.addEventListener("load", start, { once: true });
