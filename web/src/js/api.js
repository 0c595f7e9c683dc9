// The relay's public data API (same origin as the page).

const BASE = "/relay/v1/data";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code || ""} ${detail || ""}`.trim());
    this.status = status;
    this.code = code;
  }
}

async function getJson(path, signal) {
  let res;
  try {
    res = await fetch(BASE + path, { headers: { Accept: "application/json" }, cache: "no-store", signal });
  } catch (e) {
    throw new ApiError(0, "network", e && e.message);
  }
  if (!res.ok) {
    let code = "", detail = "";
    try { const p = await res.json(); code = p.code || ""; detail = p.detail || p.title || ""; } catch { /* not json */ }
    throw new ApiError(res.status, code, detail);
  }
  return res.json();
}

export const api = {
  slots: (limit = 40, cursor) => getJson(`/slots?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`),
  slot: (slot) => getJson(`/slots/${encodeURIComponent(slot)}`),
  builders: () => getJson("/builders"),
  proposers: () => getJson("/proposers"),
  streamUrl: `${BASE}/stream`,
};
