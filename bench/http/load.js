// The HTTP load of `manage.py httpbench` (bench/httpbench.py): autocannon against the web, each
// request an order of one of many traders, signed with the trader's API key the way a bot signs it
// (docs/API.md, "Authentication"; the same scheme as spot/client.py).
//
//   node bench/http/load.js CONFIG.json > RESULT.json
//
// CONFIG: {url, path, connections, duration (s), rate (requests/s over all connections; 0 = as fast
// as the server answers), keys: [{key, secret}], market: {currency, coin, tick, lot, mid, decimals}, batch
// (0: one order per POST to `path`; N: N orders per POST), seed}.
// With a rate, autocannon corrects latencies for coordinated omission: a request that had to wait
// for its connection counts from when it should have been sent (an open-loop offered rate).
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const autocannon = require("autocannon");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { currency, coin, tick, lot, mid, decimals } = config.market;

// A small deterministic generator (mulberry32): the same seed gives the same orders.
let state = config.seed >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// Prices within 20 ticks of the mid on both sides, so about half the orders cross and trade.
// Amounts are sent as decimal strings, computed in integer ticks and lots (never a float sum).
function order() {
  const side = random() < 0.5 ? "buy" : "sell";
  const ticks = Math.round(mid / tick) + Math.floor(random() * 41) - 20;
  const lots = 1 + Math.floor(random() * 20);
  return {
    trade_type: side,
    type: "limit",
    quantity: (lots * lot).toFixed(decimals.lot),
    price: (ticks * tick).toFixed(decimals.tick),
  };
}

function body() {
  if (!config.batch) return JSON.stringify({ currency, coin, ...order() });
  const orders = [];
  for (let i = 0; i < config.batch; i++) orders.push(order());
  return JSON.stringify({ currency, coin, orders });
}

let next = 0;
function setupRequest(request) {
  const { key, secret } = config.keys[next++ % config.keys.length];
  const payload = body();
  const timestamp = String(Date.now());
  const message = `${timestamp}\nPOST\n${config.path}\n\n${payload}`;
  request.method = "POST";
  request.path = config.path;
  request.body = payload;
  request.headers = {
    "Content-Type": "application/json",
    "X-API-Key": key,
    "X-API-Timestamp": timestamp,
    "X-API-Signature": crypto.createHmac("sha256", secret).update(message).digest("hex"),
  };
  return request;
}

const options = {
  url: config.url,
  connections: config.connections,
  duration: config.duration,
  requests: [{ setupRequest }],
};
if (config.rate > 0) options.overallRate = config.rate;

autocannon(options, (error, result) => {
  if (error) {
    console.error(error);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify(result));
});
