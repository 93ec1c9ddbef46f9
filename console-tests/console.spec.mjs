// The web console's browser scenarios (issue: web console), run by
// host/tests/console.rs against a real `roster serve` and the simulators.
// Playwright drives Debian's Chromium (never a downloaded browser); axe-core
// checks each page for serious accessibility violations. Screenshots of
// each page (1280x800) go to $SHOTS; figures are printed as JSON lines.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const base = process.env.ROSTER_URL.replace(/\/$/, "");
const shots = process.env.SHOTS;
const craze = process.env.CRAZE;
const bigRun = process.env.BIG_RUN;
const seen = [];

function check(ok, what) {
  if (!ok) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function keep(page) {
  seen.push(await page.content());
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "best-practice"] }),
  );
  const serious = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  for (const v of serious) {
    console.log(`axe ${name}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join("; ")}`);
  }
  check(serious.length === 0, `${name}: no serious accessibility violation (axe-core ${result.testEngine.version})`);
}

let current = null;

// Every visible control is reached by Tab alone (a radio group counts once:
// arrow keys move within it).
async function keyboard(page, name) {
  const wanted = await page.evaluate(() => {
    const controls = [...document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, summary")].filter((e) => {
      const r = e.getBoundingClientRect();
      return (r.width > 0 && r.height > 0) || e.classList.contains("skip");
    });
    const keys = new Set();
    controls.forEach((e, i) => {
      e.dataset.kb = e.type === "radio" ? `radio:${e.name}` : `c${i}`;
      keys.add(e.dataset.kb);
    });
    document.activeElement?.blur();
    return [...keys];
  });
  const reached = new Set();
  for (let i = 0; i < wanted.length * 2 + 10 && reached.size < wanted.length; i++) {
    await page.keyboard.press("Tab");
    const key = await page.evaluate(() => document.activeElement?.dataset?.kb);
    if (key) reached.add(key);
  }
  const missed = wanted.filter((k) => !reached.has(k));
  check(missed.length === 0, `${name}: all ${wanted.length} controls reached by Tab${missed.length ? ` (missed ${missed.join(", ")})` : ""}`);
}

async function go(page, url) {
  current = page;
  const t0 = Date.now();
  const answer = await page.goto(base + url);
  const ms = Date.now() - t0;
  await keep(page);
  return { answer, ms };
}

async function submit(page, locator) {
  await Promise.all([page.waitForNavigation(), locator.click()]);
  await keep(page);
}

async function signIn(context, credential, first) {
  const page = await context.newPage();
  await go(page, "/console");
  check(page.url().endsWith("/console/login"), "no session: sent to sign in");
  if (first) {
    await shot(page, "login");
    await axe(page, "login");
  await keyboard(page, "login");
  }
  if (credential.token) {
    await page.fill("#token", credential.token);
  } else {
    await page.fill("#name", credential.name);
    await page.fill("#password", credential.password);
  }
  await submit(page, page.getByRole("button", { name: "Sign in" }));
  check(page.url().endsWith("/console"), "signed in: the overview");
  return page;
}

async function until(page, url, what, test, secs = 120) {
  const end = Date.now() + secs * 1000;
  while (Date.now() < end) {
    await go(page, url);
    if (await test()) {
      console.log(`ok: ${what}`);
      return;
    }
    await page.waitForTimeout(500);
  }
  throw new Error(`after ${secs} s: ${what}`);
}

function figure(name, ms) {
  console.log(JSON.stringify({ figure: name, ms }));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
});
const viewport = { width: 1280, height: 800 };
try {
  const admin = await browser.newContext({ viewport });
  const page = await signIn(admin, { token: process.env.ADMIN_TOKEN }, true);

  // Keyboard: the first Tab reaches the skip link.
  await page.keyboard.press("Tab");
  check((await page.evaluate(() => document.activeElement.textContent)) === "Skip to content", "the first Tab stop is 'Skip to content'");
  for (const name of ["mail", "crm", "big", "many"]) {
    check((await page.locator("tr", { has: page.locator("strong", { hasText: new RegExp(`^${name}$`) }) }).count()) === 1, `overview lists ${name}`);
  }
  await axe(page, "overview");
  await keyboard(page, "overview");

  // Mail (manual approval): its scheduled run's plan waits; refuse forged
  // and CSRF-less posts, then approve.
  const row = (name) => page.locator("tr", { has: page.locator("strong", { hasText: new RegExp(`^${name}$`) }) });
  const waiting = async (name) => {
    await until(page, "/console", `the ${name} plan waits for approval`, async () => (await row(name).getByRole("link", { name: /Review plan of run/ }).count()) === 1);
    return await row(name).getByRole("link", { name: /Review plan of run/ }).getAttribute("href");
  };
  const review = await waiting("mail");
  const run = review.match(/runs\/(\d+)\/plan/)[1];

  const viewerContext = await browser.newContext({ viewport });
  // The viewer signs in with a name and password (a viewer token would do the same).
  const viewer = await signIn(viewerContext, { name: "vera", password: process.env.VIEWER_PASSWORD }, false);
  await go(viewer, review);
  check((await viewer.getByRole("button", { name: "Approve" }).count()) === 0, "a viewer sees no Approve button");
  check((await viewer.getByText("Waiting for an operator").count()) === 1, "a viewer is told the plan waits for an operator");
  await go(viewer, "/console");
  check((await viewer.getByRole("button", { name: /^Run .* now$/ }).count()) === 0, "a viewer sees no Run now button");
  await go(viewer, review);
  const viewerCsrf = await viewer.inputValue("form.signout input[name=csrf]");
  const forged = await viewer.request.post(`${base}/console/runs/${run}/decide`, { form: { csrf: viewerCsrf, decision: "approve" } });
  check(forged.status() === 403, `a viewer's forged approval is refused (${forged.status()})`);
  const noCsrf = await page.request.post(`${base}/console/runs/${run}/decide`, { form: { decision: "approve" } });
  check(noCsrf.status() === 403, `a form without its CSRF token is refused (${noCsrf.status()})`);
  const wrongCsrf = await page.request.post(`${base}/console/runs/${run}/decide`, { form: { csrf: viewerCsrf, decision: "approve" } });
  check(wrongCsrf.status() === 403, `another session's CSRF token is refused (${wrongCsrf.status()})`);
  await viewerContext.close();

  await go(page, review);
  check((await page.getByRole("button", { name: "Approve" }).count()) === 1, "an admin sees Approve");
  check((await page.locator("main table tbody tr").count()) > 0, "the plan lists its changes");
  await shot(page, "plan-review");
  await axe(page, "plan review");
  await keyboard(page, "plan review");
  await page.fill("#comment", "reviewed in the console");
  await submit(page, page.getByRole("button", { name: "Approve" }));
  check(page.url().endsWith(`/console/runs/${run}`), "approved: the run's page");
  await until(page, "/console/runs?pipeline=mail", "the approved plan is applied", async () =>
    (await page.locator("tr", { hasText: "approval" }).filter({ has: page.locator(".badge", { hasText: /^applied$/ }) }).count()) === 1,
  );
  await go(page, "/console/pipelines/mail/plan");
  await submit(page, page.getByRole("button", { name: "Plan again" }));
  check((await page.getByText("Nothing to change").count()) === 1, "after the apply the mail plan is empty");

  // CRM (the InfoBridge panel): load, auto-link, link by hand with Diary off and rank 2, save.
  await go(page, "/console/pipelines/crm/links");
  await submit(page, page.getByRole("button", { name: "Load external users" }));
  check((await page.getByText("External users not linked").count()) === 1, "external users are loaded");
  await submit(page, page.getByRole("link", { name: "Auto link users" }));
  const pairs = await page.locator("input[name=pair]").count();
  check(pairs > 0, `auto-link proposes ${pairs} pairs`);
  await shot(page, "auto-link");
  await axe(page, "auto link");
  await submit(page, page.getByRole("button", { name: "Stage selected pairs" }));
  check((await page.getByText(/Not saved yet/).count()) === 1, "the proposed pairs are staged, not saved");
  await page.locator(`input[name=source][value="${craze}"]`).check();
  await page.locator('input[name=target][value="953"]').check();
  await page.selectOption("#link-opt-diary", "false");
  await page.fill("#link-opt-rank", "2");
  await submit(page, page.getByRole("button", { name: "Link user" }));
  const draft = page.locator("section.staged tr", { hasText: craze });
  check((await draft.textContent()).includes("link to 953 (diary=false, rank=2)"), "Craze is drafted to 953 with Diary off and rank 2");
  await shot(page, "links");
  await axe(page, "links");
  await keyboard(page, "links");
  await submit(page, page.getByRole("button", { name: /^Save \d+ changes$/ }));
  check((await page.getByText(/^Saved: \d+ link change/).count()) === 1, "saved: staged for the next apply");

  await go(page, "/console/pipelines/crm/plan");
  await submit(page, page.getByRole("button", { name: "Plan again" }));
  await go(page, `/console/pipelines/crm/plan?q=${encodeURIComponent(craze)}`);
  const crazeRow = page.locator("main table tbody tr", { hasText: craze }).first();
  const crazeText = await crazeRow.textContent();
  check(crazeText.includes("diary=false") && crazeText.includes("rank=2"), "the next plan carries Craze's link with its options");

  await go(page, "/console");
  await submit(page, page.getByRole("button", { name: "Run crm now" }));
  await until(page, "/console/runs?pipeline=crm", "the crm run asked for waits for approval", async () =>
    (await page.locator("tr", { hasText: "manual" }).filter({ has: page.locator(".badge", { hasText: /^awaiting-approval$/ }) }).count()) === 1,
  );
  await go(page, await waiting("crm"));
  await submit(page, page.getByRole("button", { name: "Approve" }));
  await until(page, "/console/runs?pipeline=crm", "the crm run ends", async () =>
    (await page.locator(".badge", { hasText: /^(applied|partial)$/ }).count()) >= 1,
  );
  const crmRun = await page.locator("main table tbody tr a").first().getAttribute("href");

  // Options for a selected link, remove another, balance ranks: drafts
  // until saved; Discard drops them and nothing is staged.
  await go(page, "/console/pipelines/crm/links");
  const other = page.locator(`input[name=select]:not([value="${craze}"])`).first();
  const otherAddress = await other.getAttribute("value");
  await other.check();
  await page.selectOption("#sel-opt-task", "false");
  await submit(page, page.getByRole("button", { name: "Set options" }));
  const otherDraft = await page.locator("section.staged tr", { hasText: otherAddress }).textContent();
  check(otherDraft.includes("options:") && otherDraft.includes("task=false"), `new options for ${otherAddress} are drafted`);
  await page.locator(`input[name=select][value="${craze}"]`).check();
  await submit(page, page.getByRole("button", { name: "Remove selected users" }));
  check((await page.locator("section.staged tr", { hasText: craze }).textContent()).includes("unlink"), "removing Craze is drafted");
  await submit(page, page.getByRole("button", { name: "Discard" }));
  check((await page.getByText(/Not saved yet/).count()) === 0, "Discard drops the drafts");
  await page.fill("#ranks", "2");
  await submit(page, page.getByRole("button", { name: "Balance ranks" }));
  const balanced = await page.locator("section.staged tbody tr").count();
  check(balanced > 0 && (await page.locator("section.staged tr", { hasText: craze }).count()) === 0, `balance drafts ${balanced} links to a rank and leaves Craze's rank 2`);
  await submit(page, page.getByRole("button", { name: "Discard" }));
  check((await page.getByText(/Saved for the next apply/).count()) === 0, "the discarded drafts staged nothing");

  // Explain an account the filter drops; test its connection.
  await go(page, "/console/pipelines/crm/plan?kind=skipped");
  const filtered = (await page.locator("main table tbody tr", { hasText: "filtered" }).first().locator("td").first().textContent()).trim();
  await go(page, `/console/pipelines/crm/account?address=${encodeURIComponent(filtered)}`);
  const steps = await page.locator("table", { has: page.locator("caption", { hasText: "Each stage's decision" }) }).textContent();
  check(steps.includes("dropped"), `explain ${filtered}: the filter's decision is shown`);
  await go(page, `/console/pipelines/crm/account?address=${encodeURIComponent(craze)}`);
  check((await page.locator("p", { hasText: "Linked to 953 (manual)" }).count()) === 1, "Craze's account shows its link by hand");
  await submit(page, page.getByRole("button", { name: /^Test connection for / }));
  check((await page.getByText(/^Tested at /).count()) === 1, "the account's connection test is shown");
  check((await page.locator("td .badge", { hasText: /^ok$/ }).count()) === 2, "both connectors pass the test for Craze");
  await shot(page, "account");
  await axe(page, "account");
  await keyboard(page, "account");

  // Runs, a run's outcomes, the exports; connectors.
  await go(page, "/console/runs");
  await shot(page, "runs");
  await axe(page, "runs");
  await go(page, crmRun);
  check((await page.getByRole("heading", { name: /^Outcomes/ }).count()) === 1, "the run lists its outcomes");
  await shot(page, "run");
  await axe(page, "run");
  const csv = await page.request.get(`${base}${crmRun}/outcomes.csv`);
  const csvText = await csv.text();
  check(csv.status() === 200 && csvText.startsWith("account,outcome,target_id,error_kind,error"), "outcomes export as CSV");
  const exported = await page.request.get(`${base}${crmRun}/outcomes.json`);
  check(exported.status() === 200 && (await exported.json()).outcomes.length > 0, "outcomes export as JSON");
  await go(page, "/console/pipelines/crm/connectors");
  check((await page.getByText("Declared hosts").count()) >= 2, "each connector's declared hosts are shown");
  await shot(page, "connectors");
  await axe(page, "connectors");
  await keyboard(page, "connectors");

  // A 100,000-change plan, paged on the server; 10,000 links searched.
  const open = await go(page, `/console/runs/${bigRun}/plan`);
  check((await page.getByText("Page 1 of 1000").count()) === 1, "the large plan has 1000 pages of 100");
  figure("plan-100k-first-open", open.ms);
  await shot(page, "plan-large");
  await axe(page, "large plan");
  figure("plan-100k-again", (await go(page, `/console/runs/${bigRun}/plan`)).ms);
  // Another node (sessions are in the shared database) pages it from the
  // plan's rows in the database, not from a plan it parsed.
  const otherNode = process.env.OTHER_URL.replace(/\/$/, "");
  let t = Date.now();
  await page.goto(`${otherNode}/console/runs/${bigRun}/plan`);
  figure("plan-100k-other-node-first-open", Date.now() - t);
  await keep(page);
  check((await page.getByText("Page 1 of 1000").count()) === 1, "another node pages the large plan too");
  t = Date.now();
  await page.goto(`${otherNode}/console/runs/${bigRun}/plan?page=700`);
  figure("plan-100k-other-node-page-700", Date.now() - t);
  check((await page.getByText("Page 701 of 1000").count()) === 1, "another node opens page 701");
  t = Date.now();
  await page.goto(`${otherNode}/console/runs/${bigRun}/plan?q=big99998`);
  figure("plan-100k-other-node-search", Date.now() - t);
  check((await page.locator("main table tbody tr").count()) === 1, "another node finds one account among 100,000");
  figure("plan-100k-page-500", (await go(page, `/console/runs/${bigRun}/plan?page=500`)).ms);
  const search = await go(page, `/console/runs/${bigRun}/plan?q=big99999`);
  check((await page.locator("main table tbody tr").count()) === 1, "searching the large plan finds the one account");
  figure("plan-100k-search", search.ms);
  const links = await go(page, "/console/pipelines/many/links");
  check((await page.getByRole("heading", { name: "Linked users (10000)" }).count()) === 1, "10,000 links listed");
  figure("links-10k-open", links.ms);
  await page.fill("#q", "many9999@");
  const t0 = Date.now();
  await submit(page, page.getByRole("button", { name: "Search" }));
  figure("links-10k-search", Date.now() - t0);
  check((await page.locator("main form table tbody tr").count()) === 1, "searching 10,000 links finds the one");

  // The overview after all this (its screenshot shows the runs' chart).
  await go(page, "/console");
  await shot(page, "overview");

  // Sign out: the session is gone.
  await submit(page, page.getByRole("button", { name: "Sign out" }));
  await go(page, "/console");
  check(page.url().endsWith("/console/login"), "signed out: sent to sign in again");
} catch (e) {
  if (current) {
    fs.writeFileSync(path.join(shots, "failure.html"), await current.content());
    await current.screenshot({ path: path.join(shots, "failure.png") });
  }
  throw e;
} finally {
  fs.writeFileSync(path.join(shots, "pages.txt"), seen.join("\n"));
  await browser.close();
}
