import { test } from "node:test";
import * as assert from "node:assert/strict";

import { candidates, compatible, installCommand, parseVersion, reportLines } from "../binary";

test("the setting wins; else PATH, then cargo's bin folder", () => {
  assert.deepEqual(candidates("/opt/tether", "/usr/bin/tether", { HOME: "/home/me" }), ["/opt/tether"]);
  assert.deepEqual(candidates("", "/usr/bin/tether", { HOME: "/home/me" }), [
    "/usr/bin/tether",
    "/home/me/.cargo/bin/tether",
  ]);
  assert.deepEqual(candidates(undefined, undefined, { HOME: "/home/me", CARGO_HOME: "/c" }), ["/c/bin/tether"]);
  assert.deepEqual(candidates(undefined, undefined, {}), []);
});

test("versions: parsed from --version, compatible on major and minor", () => {
  assert.equal(parseVersion("tether 0.1.0\n"), "0.1.0");
  assert.equal(parseVersion("tether 1.2.3-beta.1"), "1.2.3-beta.1");
  assert.equal(parseVersion("rust-analyzer 1.0.0"), undefined);
  assert.equal(parseVersion(""), undefined);
  assert.ok(compatible("0.1.0", "0.1.7"));
  assert.ok(!compatible("0.1.0", "0.2.0"));
  assert.ok(!compatible("0.1.0", "1.1.0"));
});

test("the install command is exact", () => {
  assert.equal(
    installCommand("https://example.invalid/tether.git"),
    "cargo install --locked --git https://example.invalid/tether.git tether",
  );
  assert.match(installCommand(undefined), /^cargo install --locked --path server/);
});

test("the doctor's report reads one line per check, with the fix under what fails", () => {
  const lines = reportLines({
    version: "0.1.0",
    ok: false,
    checks: [
      { name: "git", status: "ok", detail: "git version 2.47.3" },
      { name: "provider x", status: "fail", detail: "cannot be reached", fix: "start it" },
    ],
  });
  assert.deepEqual(lines, [
    "tether doctor (0.1.0): something needs fixing",
    "✓ ok   git         git version 2.47.3",
    "✗ fail provider x  cannot be reached",
    "                   fix: start it",
  ]);
});
