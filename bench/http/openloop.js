// The open-loop HTTP load of `manage.py httpbench --open-loop` (bench/httpbench.py): orders of many
// traders sent on a fixed schedule whatever the answers, each request signed with its trader's API key
// the way a bot signs it (docs/API.md, "Authentication"; the same scheme as spot/client.py).
//
//   node bench/http/openloop.js CONFIG.json RESULTS.jsonl
//
// CONFIG: {url, rate (requests/s), duration (s), connections (keep-alive sockets at most), keys:
// [{key, secret}], market: {currency, coin, tick, lot, mid, decimals}, batch (0: one order per POST
// to /api/v1/orders; N: N orders per POST to /api/v1/orders/batch), seed, prefix}.
//
// Request i is due at start + i / rate. A timer wakes every millisecond and sends every request that
// is due, signed at that moment; a request waits in the agent's queue while every socket is busy, and
// that wait counts: latencies are measured from the due time, not from when a socket was free (no
// coordinated omission). One line per request in RESULTS: [due us, answered us, status, [order ids]]
// with times in microseconds since the epoch (this machine's clock, the matcher's too), status 0 for
// a request that failed without an answer. The last line is {"summary": ...}.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const { performance } = require("node:perf_hooks");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = fs.createWriteStream(process.argv[3]);
const { currency, coin, tick, lot, mid, decimals } = config.market;
const target = new URL(config.url);
const path = config.batch ? "/api/v1/orders/batch" : "/api/v1/orders";
const agent = new http.Agent({ keepAlive: true, maxSockets: config.connections });

// A small deterministic generator (mulberry32): the same seed gives the same orders.
let state = config.seed >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// Microseconds since the epoch, with the monotonic clock's resolution.
function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

// Prices within 20 ticks of the mid on both sides, so about half the orders cross and trade. Amounts
// are decimal strings computed in whole ticks and lots (never a float sum). Each order has a client
// order id of its own, so every request's body, and so its signature, is unique.
let orderCount = 0;
function order() {
  const ticks = Math.round(mid / tick) + Math.floor(random() * 41) - 20;
  const lots = 1 + Math.floor(random() * 20);
  return {
    trade_type: random() < 0.5 ? "buy" : "sell",
    type: "limit",
    quantity: (lots * lot).toFixed(decimals.lot),
    price: (ticks * tick).toFixed(decimals.tick),
    client_order_id: `${config.prefix}-${orderCount++}`,
  };
}

function body() {
  if (!config.batch) return JSON.stringify({ currency, coin, ...order() });
  const orders = [];
  for (let i = 0; i < config.batch; i++) orders.push(order());
  return JSON.stringify({ currency, coin, orders });
}

function ids(payload) {
  try {
    const data = JSON.parse(payload).data;
    if (Array.isArray(data)) return data.map((o) => o.id);
    return data && data.id !== undefined ? [data.id] : [];
  } catch {
    return [];
  }
}

const total = Math.max(1, Math.round(config.rate * config.duration));
let pending = 0;
let sent = 0;
let finished = false;

function send(index, dueUs) {
  const { key, secret } = config.keys[index % config.keys.length];
  const payload = body();
  const timestamp = String(Date.now());
  const signature = crypto
    .createHmac("sha256", secret)
    .update(`${timestamp}\nPOST\n${path}\n\n${payload}`)
    .digest("hex");
  pending++;
  const request = http.request(
    {
      host: target.hostname,
      port: target.port,
      path,
      method: "POST",
      agent,
      headers: {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(payload),
        "X-API-Key": key,
        "X-API-Timestamp": timestamp,
        "X-API-Signature": signature,
      },
    },
    (response) => {
      const chunks = [];
      response.on("data", (chunk) => chunks.push(chunk));
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        done(dueUs, response.statusCode, response.statusCode < 300 ? ids(text) : []);
      });
    },
  );
  request.on("error", () => done(dueUs, 0, []));
  request.end(payload);
}

function done(dueUs, status, orderIds) {
  out.write(JSON.stringify([dueUs, nowUs(), status, orderIds]) + "\n");
  pending--;
  if (finished && pending === 0) end();
}

function end() {
  out.end(JSON.stringify({ summary: { sent, rate: config.rate, duration: config.duration } }) + "\n", () => {
    agent.destroy();
    process.exit(0);
  });
}

const startUs = nowUs() + 50_000; // the first request 50 ms from now
const intervalUs = 1e6 / config.rate;
const timer = setInterval(() => {
  const now = nowUs();
  while (sent < total && startUs + sent * intervalUs <= now) {
    send(sent, Math.round(startUs + sent * intervalUs));
    sent++;
  }
  if (sent >= total) {
    clearInterval(timer);
    finished = true;
    if (pending === 0) end();
  }
}, 1);
