// An independent client of the hwd gRPC contract, on @grpc/grpc-js (pure JavaScript HTTP/2).
//
// Usage: node client.mjs SOCKET_DIR PROTO_ROOT
//
// Speaks to ui.sock and tech.sock in SOCKET_DIR with the .proto files under PROTO_ROOT and prints
// one JSON object with what it saw on stdout. uint64 values are kept as decimal strings, as
// proto-loader returns them. Exits 0 when every step ran (an expected error is a result, not a
// failure); on anything unexpected prints the error to stderr and exits 1.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const DEADLINE_MS = 5000;
const NOTE_ID = "js-1";
const NOTE_TEXT = "from grpc-js";
const KIOSK = "hwd.v1.Kiosk";

const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

function deadline() {
  return new Date(Date.now() + DEADLINE_MS);
}

function load(socketDir, protoRoot) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const kiosk = protoLoader.loadSync("hwd/v1/kiosk.proto", { ...LOADER_OPTIONS, includeDirs: [protoRoot] });
  const health = protoLoader.loadSync("health.proto", { ...LOADER_OPTIONS, includeDirs: [here] });
  const Kiosk = grpc.loadPackageDefinition(kiosk).hwd.v1.Kiosk;
  const Health = grpc.loadPackageDefinition(health).grpc.health.v1.Health;
  const credentials = grpc.credentials.createInsecure();
  const clients = {};
  for (const role of ["ui", "tech"]) {
    const target = `unix:${path.join(socketDir, `${role}.sock`)}`;
    clients[role] = { kiosk: new Kiosk(target, credentials), health: new Health(target, credentials) };
  }
  return clients;
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline() }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function codeName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) ?? String(code);
}

// A call that must fail: its status code, details and rich status details (base64), as received.
async function failure(client, method, request) {
  try {
    const response = await unary(client, method, request);
    throw new Error(`${method} succeeded where an error was expected: ${JSON.stringify(response)}`);
  } catch (err) {
    if (typeof err.code !== "number" || !(err.metadata instanceof grpc.Metadata)) {
      throw err;
    }
    const details = err.metadata.get("grpc-status-details-bin");
    return {
      code: err.code,
      code_name: codeName(err.code),
      details: err.details,
      has_status_details_bin: details.length > 0,
      status_details_bin_base64: details.length > 0 ? Buffer.from(details[0]).toString("base64") : null,
    };
  }
}

// A call's response, or its status when the server ended it with one (reported, not thrown).
async function outcome(promise) {
  try {
    return { ok: true, response: await promise };
  } catch (err) {
    if (typeof err.code !== "number" || !(err.metadata instanceof grpc.Metadata)) {
      throw err;
    }
    return { ok: false, code: err.code, code_name: codeName(err.code), details: err.details };
  }
}

// The first message of a server stream, then cancels it.
function firstMessage(client, method, request) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const call = client[method](request, { deadline: deadline() });
    call.on("data", (message) => {
      if (!settled) {
        settled = true;
        resolve(message);
        call.cancel();
      }
    });
    call.on("error", (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      } else if (err.code !== grpc.status.CANCELLED) {
        process.stderr.write(`${method} failed after its first message: ${err.message}\n`);
      }
    });
    call.on("end", () => {
      if (!settled) {
        settled = true;
        reject(new Error(`${method} ended without a message`));
      }
    });
  });
}

// WatchEvents from the start of the journal until the event `sequence` arrives, then cancels.
function watchUntil(client, sequence) {
  return new Promise((resolve, reject) => {
    const events = [];
    let settled = false;
    const call = client.WatchEvents({ after_sequence: "0" }, { deadline: deadline() });
    call.on("data", (event) => {
      if (settled) {
        return;
      }
      events.push({ sequence: event.sequence, source: event.source, payload: event.payload ?? null });
      if (event.sequence === sequence) {
        settled = true;
        call.cancel();
        const body = event.payload ? event[event.payload] : null;
        resolve({
          sequences: events.map((e) => e.sequence),
          events,
          note: {
            sequence: event.sequence,
            payload: event.payload ?? null,
            text: body?.text ?? null,
            author: body?.author ?? null,
          },
        });
      }
    });
    call.on("error", (err) => {
      if (!settled) {
        settled = true;
        err.message = `WatchEvents failed after ${events.length} events: ${err.message}`;
        reject(err);
      } else if (err.code !== grpc.status.CANCELLED) {
        process.stderr.write(`WatchEvents failed after the cancel: ${err.message}\n`);
      }
    });
    call.on("end", () => {
      if (!settled) {
        settled = true;
        reject(new Error(`WatchEvents ended before sequence ${sequence}: saw ${JSON.stringify(events)}`));
      }
    });
  });
}

async function run(socketDir, protoRoot) {
  const clients = load(socketDir, protoRoot);
  try {
    const result = { client: "@grpc/grpc-js", grpc_js_version: grpcJsVersion() };

    result.health = {};
    for (const role of ["ui", "tech"]) {
      result.health[role] = {};
      for (const service of ["", KIOSK]) {
        const response = await unary(clients[role].health, "Check", { service });
        result.health[role][service] = response.status;
      }
    }
    result.health_watch = {};
    for (const role of ["ui", "tech"]) {
      result.health_watch[role] = await outcome(firstMessage(clients[role].health, "Watch", { service: KIOSK }));
    }

    const status = await unary(clients.ui.kiosk, "GetStatus", {});
    result.status = {
      daemon_state: status.daemon?.state ?? null,
      daemon_reason: status.daemon?.reason ?? null,
      version: status.version,
      last_sequence: status.last_sequence,
      devices: status.devices.length,
      simulated: status.simulated,
    };

    const note = { request_id: NOTE_ID, text: NOTE_TEXT, author: "grpc-js" };
    const first = await unary(clients.tech.kiosk, "AddNote", note);
    const again = await unary(clients.tech.kiosk, "AddNote", note);
    result.add_note = { sequence: first.sequence, repeated_sequence: again.sequence };

    result.add_note_on_ui = await failure(clients.ui.kiosk, "AddNote", {
      request_id: "js-ui-1",
      text: "must be refused",
    });

    result.watch = await watchUntil(clients.ui.kiosk, first.sequence);
    return result;
  } finally {
    for (const role of Object.values(clients)) {
      role.kiosk.close();
      role.health.close();
    }
  }
}

function grpcJsVersion() {
  try {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const manifest = path.join(here, "node_modules", "@grpc", "grpc-js", "package.json");
    return JSON.parse(readFileSync(manifest, "utf8")).version;
  } catch {
    return null;
  }
}

const [socketDir, protoRoot] = process.argv.slice(2);
if (!socketDir || !protoRoot) {
  process.stderr.write("usage: node client.mjs SOCKET_DIR PROTO_ROOT\n");
  process.exit(2);
}
try {
  const result = await run(socketDir, protoRoot);
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
} catch (err) {
  const code = typeof err?.code === "number" ? ` (gRPC ${codeName(err.code)})` : "";
  process.stderr.write(`grpc-js client failed${code}: ${err?.stack ?? err}\n`);
  process.exit(1);
}
