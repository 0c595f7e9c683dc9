// Formatting helpers. Amounts arrive as decimal strings of wei and stay BigInt until display.

const GWEI = 10n ** 9n;
const ETH = 10n ** 18n;

function group(intStr) {
  return intStr.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Fixed-point division of a BigInt, rounded half up, trailing zeros trimmed. */
function decimal(wei, unit, places) {
  const neg = wei < 0n;
  if (neg) wei = -wei;
  const scale = 10n ** BigInt(places);
  let scaled = (wei * scale * 2n + unit) / (unit * 2n); // round half up
  const int = scaled / scale;
  let frac = (scaled % scale).toString().padStart(places, "0").replace(/0+$/, "");
  return (neg ? "-" : "") + group(int.toString()) + (frac ? "." + frac : "");
}

/** "0", "950 wei", "12.3457 gwei", "0.012346 ETH". */
export function formatWei(value) {
  if (value === null || value === undefined || value === "") return "—";
  let wei;
  try { wei = BigInt(value); } catch { return String(value); }
  const abs = wei < 0n ? -wei : wei;
  if (abs === 0n) return "0";
  if (abs < 1_000_000n) return `${group(wei.toString())} wei`;
  if (abs < ETH / 1000n) return `${decimal(wei, GWEI, 4)} gwei`;
  return `${decimal(wei, ETH, 6)} ETH`;
}

/** Wei as a float number of gwei, for charts. */
export function weiToGwei(value) {
  if (value === null || value === undefined) return null;
  const wei = BigInt(value);
  return Number(wei / 1000n) / 1e6;
}

export function shortHex(hex, head = 6, tail = 4) {
  if (!hex) return "—";
  return hex.length <= head + tail + 2 ? hex : `${hex.slice(0, head)}…${hex.slice(-tail)}`;
}

export function formatCount(n) {
  if (n === null || n === undefined) return "—";
  return group(String(n));
}

export function formatPercent(ratio) {
  const r = Number(ratio);
  if (!Number.isFinite(r)) return "—";
  return `${(r * 100).toFixed(r === 0 || r === 1 ? 0 : 1)}%`;
}

function pad(n, w = 2) { return String(n).padStart(w, "0"); }

/** Local wall-clock time with milliseconds: 14:03:07.412 */
export function formatTime(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(Number(ms));
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Countdown text: "1.23 s", or "12 s" when long. */
export function formatCountdown(ms) {
  if (ms <= 0) return "0.00 s";
  if (ms >= 10_000) return `${Math.ceil(ms / 1000)} s`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A stable colour per address, so a builder looks the same everywhere. */
export function addressHue(address) {
  if (!address) return 0;
  let h = 0;
  for (let i = 2; i < address.length; i++) h = (h * 31 + address.charCodeAt(i)) >>> 0;
  return h % 360;
}
