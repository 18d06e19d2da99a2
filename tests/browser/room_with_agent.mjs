// One headless Chromium page on the room page served by `metered serve`
// (official browser SDK) in a channel with a Rust MeteredPeer agent. The page
// turns its fake microphone on, waits until it hears the agent's tone (WebAudio
// analyser), then prints one JSON line: what it heard, the agent's track
// metadata and the label the page shows. It keeps the call up (so the agent can
// measure the browser's tone) until a line arrives on stdin: `more MIN MAX
// STREAM` waits for a further track of stream STREAM with its tone in MIN..MAX
// Hz (the agent added it mid-call: a renegotiation) and reports it, `done`
// ends.
// Usage: node room_with_agent.mjs BASE_URL CHANNEL MIN_HZ MAX_HZ
import { createInterface } from "node:readline";
import { chromium } from "../../.local/node/node_modules/playwright-core/index.mjs";

const [base, channel, minHz, maxHz] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/?autojoin=1&channel=${encodeURIComponent(channel)}&name=browser`);
  await page.waitForFunction(() => window.__room.state === "joined", null, { timeout: 15000 });
  await page.waitForFunction(() => Object.keys(window.__room.peers).length === 1, null, { timeout: 15000 });
  await page.click("#mic");
  const handle = await page.waitForFunction(
    ([lo, hi]) => Object.values(window.__room.tracks).find((t) => t.rms > 0.01 && t.dominantHz > lo && t.dominantHz < hi),
    [Number(minHz), Number(maxHz)],
    { timeout: 20000, polling: 50 },
  );
  const heard = await handle.jsonValue();
  const room = await page.evaluate(() => window.__room);
  const shown = await page.evaluate(() => document.body.innerText);
  console.log(JSON.stringify({ peerId: room.peerId, peers: Object.keys(room.peers), heard, shown, errors: room.errors }));
  // Hold the call until the Rust side has measured us.
  const rl = createInterface({ input: process.stdin });
  const lines = rl[Symbol.asyncIterator]();
  for (;;) {
    const { value, done } = await lines.next();
    if (done || !value.startsWith("more ")) break;
    const [, lo, hi, stream] = value.split(" ");
    const more = await page.waitForFunction(
      ([lo, hi, stream]) => Object.values(window.__room.tracks).find(
        (t) => t.streamId === stream && t.rms > 0.01 && t.dominantHz > lo && t.dominantHz < hi),
      [Number(lo), Number(hi), stream],
      { timeout: 20000, polling: 50 },
    );
    console.log(JSON.stringify({ more: await more.jsonValue() }));
  }
  rl.close();
  const after = await page.evaluate(() => window.__room.errors);
  console.log(JSON.stringify({ errorsAtEnd: after }));
} finally {
  await browser.close();
}
