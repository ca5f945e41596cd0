// The local origin of the jobs workload: serves one HTML file for every GET, on 127.0.0.1.
//
// Usage: node origin.js --port P --page path/to/page.html
"use strict";

const fs = require("node:fs");
const http = require("node:http");

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const port = Number(option("--port", "8080"));
const body = fs.readFileSync(option("--page", "page.html"));
const server = http.createServer((req, res) => {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405).end();
    return;
  }
  res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": body.length });
  res.end(req.method === "HEAD" ? undefined : body);
});
server.keepAliveTimeout = 30_000;
process.on("SIGTERM", () => server.close(() => process.exit(0)));
server.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
