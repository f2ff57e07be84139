// diffuse serve's web page in headless Chromium (Debian chromium, driven by playwright-core): the
// page loads with nothing from elsewhere, a prompt is submitted with the built-in model, step
// previews appear while it runs, and the image lands in the gallery with its parameters; then the
// turbo preset fills the form and draws a one-step image. Saves a screenshot. Usage: node page_test.mjs DIFFUSE_BINARY SCREENSHOT.png
import { spawn } from "node:child_process";
import { chromium } from "playwright-core";

const [binary, screenshot] = process.argv.slice(2);
const fail = (message) => { console.error("FAIL: " + message); process.exitCode = 1; };

const server = spawn(binary, ["serve", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve, reject) => {
  let seen = "";
  server.stdout.on("data", (chunk) => {
    seen += chunk;
    const match = seen.match(/http:\/\/[0-9.]+:\d+/);
    if (match) resolve(match[0]);
  });
  server.on("exit", (code) => reject(new Error("diffuse serve exited with " + code)));
  setTimeout(() => reject(new Error("diffuse serve did not start in 60 s")), 60000);
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const elsewhere = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(url) && !request.url().startsWith("data:")) elsewhere.push(request.url());
  });
  await page.goto(url + "/");
  await page.waitForFunction(() => document.querySelectorAll("#sampler option").length >= 16);

  // Count the distinct previews the page shows while the image is made.
  await page.evaluate(() => {
    window.previews = new Set();
    new MutationObserver(() => window.previews.add(document.getElementById("preview").src))
      .observe(document.getElementById("preview"), { attributes: true, attributeFilter: ["src"] });
  });
  await page.fill("#prompt", "a red circle on a blue background");
  await page.fill("#steps", "150");  // the built-in model is fast: enough steps for several polls
  await page.fill("#seed", "3");
  await page.click("#generate");
  await page.waitForSelector("img.result", { timeout: 180000 });
  await page.screenshot({ path: screenshot, fullPage: true });

  const previews = await page.evaluate(() => window.previews.size);
  const result = await page.evaluate(() => {
    const image = document.querySelector("img.result");
    return { width: image.naturalWidth, caption: image.nextElementSibling.textContent,
             status: document.getElementById("status").textContent, error: document.getElementById("error").textContent };
  });
  console.log(`previews seen: ${previews}; image ${result.width} px wide; status "${result.status}"`);
  console.log(`parameters: ${JSON.stringify(result.caption)}`);
  if (previews < 2) fail(`only ${previews} step previews were shown`);
  if (result.width < 16) fail("the result image did not decode");
  if (!result.caption.includes("a red circle on a blue background") || !result.caption.includes("Steps: 150") ||
      !result.caption.includes("Seed: 3")) fail("the gallery caption lacks the parameters: " + result.caption);
  if (result.status !== "done") fail("status reads " + result.status);
  if (result.error) fail("the page shows an error: " + result.error);

  // The turbo preset fills the form's fields and sends its trailing spacing, which the form has no field for.
  await page.waitForFunction(() => document.querySelectorAll("#preset option").length >= 3);
  await page.selectOption("#preset", "turbo");
  const form = await page.evaluate(() => ["steps", "cfg_scale", "sampler"].map((id) => document.getElementById(id).value));
  console.log(`turbo preset fills steps, CFG scale, sampler: ${JSON.stringify(form)}`);
  if (JSON.stringify(form) !== JSON.stringify(["1", "0", "Euler a"])) fail("the turbo preset filled " + JSON.stringify(form));
  await page.click("#generate");
  await page.waitForFunction(() => document.querySelectorAll("img.result").length >= 2, null, { timeout: 180000 });
  const turbo = await page.evaluate(() => document.querySelector("img.result").nextElementSibling.textContent);
  console.log(`turbo parameters: ${JSON.stringify(turbo)}`);
  for (const part of ["Steps: 1, Sampler: Euler a, CFG scale: 0", "Guidance: none", "Timestep spacing: trailing"]) {
    if (!turbo.includes(part)) fail("the turbo image's caption lacks " + part + ": " + turbo);
  }
  if (elsewhere.length) fail("the page loaded from elsewhere: " + elsewhere.join(", "));
  console.log("screenshot: " + screenshot);
} catch (error) {
  fail(error.stack || String(error));
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
