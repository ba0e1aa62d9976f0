// The API client's pure parts (src/api.ts), without a browser.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { retryAfterSeconds } from "../unit-build/api.js";

describe("Retry-After", () => {
  it("reads seconds or an HTTP date, and nothing from a missing or broken header", () => {
    assert.equal(retryAfterSeconds("5"), 5);
    assert.equal(retryAfterSeconds(" 120 "), 120);
    const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
    const seconds = retryAfterSeconds(inTenSeconds);
    assert.ok(seconds >= 8 && seconds <= 10, String(seconds));
    assert.equal(retryAfterSeconds("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    assert.equal(retryAfterSeconds(null), undefined);
    assert.equal(retryAfterSeconds(""), undefined);
    assert.equal(retryAfterSeconds("soon"), undefined);
  });
});
