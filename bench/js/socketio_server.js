// Peer: Socket.IO on Node with @socket.io/redis-adapter, written the way its docs show.
//
// A client joins a room named after its channel by emitting `subscribe` with the channel name,
// and is acknowledged once it is in the room. Publishers emit to the room from outside the
// server with @socket.io/redis-emitter (`emitter.to(channel).emit("pub", data)`), which the
// adapter receives over Redis pub/sub. Everything else is Socket.IO's defaults.
//
// GET /stats answers what the adapter received from Redis ({"adapter_messages", "no_room"}):
// every message on its pattern, and those for a room nobody here is in (the scale workload's
// "publications reaching servers with no subscriber for them"). Counting wraps the adapter's own
// message handler, so it adds no Redis traffic.
//
// Usage: node socketio_server.js --port P --redis-url redis://127.0.0.1:N/0 [--deflate]
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter, RedisAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const received = { adapter_messages: 0, no_room: 0 };

// The adapter's pattern listener calls `this.onmessage(pattern, channel, msg)` for every
// message on `socket.io#<nsp>#*`; count there, then let the adapter do what it always does.
const onmessage = RedisAdapter.prototype.onmessage;
RedisAdapter.prototype.onmessage = function counted(pattern, channel, msg) {
  const name = channel.toString();
  if (name.startsWith(this.channel)) {
    received.adapter_messages++;
    const room = name.slice(this.channel.length, -1);
    if (room !== "" && !this.hasRoom(room)) received.no_room++;
  }
  return onmessage.call(this, pattern, channel, msg);
};

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

async function main() {
  const port = Number(option("--port", "3000"));
  const redisUrl = option("--redis-url", "redis://127.0.0.1:6379/0");
  const deflate = process.argv.includes("--deflate");

  const pubClient = createClient({ url: redisUrl });
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient]) {
    client.on("error", (err) => console.error("redis:", err.message));
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const httpServer = http.createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    } else if (req.url === "/stats") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(received));
    } else {
      res.writeHead(404).end();
    }
  });
  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient),
    perMessageDeflate: deflate,
  });
  io.on("connection", (socket) => {
    socket.on("subscribe", async (channel, ack) => {
      await socket.join(String(channel));
      if (typeof ack === "function") ack({ subscribed: channel });
    });
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pubClient.quit(), subClient.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  httpServer.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
