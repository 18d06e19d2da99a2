// Two headless Chromium pages join the same channel on the room page served by
// `metered serve` (official browser SDK) and must hear each other's fake
// microphone tone. Usage: node room_two_pages.mjs BASE_URL CHANNEL
// Prints one JSON line with what each page measured.
import { chromium } from "../../.local/node/node_modules/playwright-core/index.mjs";

const [base, channel] = process.argv.slice(2);
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
  const ctx = await browser.newContext();
  const pages = [await ctx.newPage(), await ctx.newPage()];
  const names = ["alice", "bob"];
  for (const [i, p] of pages.entries()) {
    await p.goto(`${base}/?autojoin=1&channel=${encodeURIComponent(channel)}&name=${names[i]}`);
  }
  for (const p of pages) await p.waitForFunction(() => window.__room.state === "joined", null, { timeout: 15000 });
  for (const p of pages) await p.waitForFunction(() => Object.keys(window.__room.peers).length === 1, null, { timeout: 15000 });
  // Chromium's fake microphone beeps at ~400 Hz with pauses: wait for a reading
  // that is loud and in band. One side at a time (no offer glare by design).
  const hearing = () =>
    Object.values(window.__room.tracks).find((t) => t.rms > 0.01 && t.dominantHz > 300 && t.dominantHz < 500);
  const heard = [];
  for (const [speaker, listener] of [[0, 1], [1, 0]]) {
    await pages[speaker].click("#mic");
    const handle = await pages[listener].waitForFunction(hearing, null, { timeout: 20000, polling: 50 });
    heard[listener] = await handle.jsonValue();
  }
  const report = [];
  for (const [i, p] of pages.entries()) {
    const r = await p.evaluate(() => window.__room);
    report.push({ peerId: r.peerId, peers: Object.keys(r.peers), rms: heard[i].rms, hz: heard[i].dominantHz, errors: r.errors });
  }
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
