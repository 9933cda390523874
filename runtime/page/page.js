// The page of `modmt serve`: LibreTranslate's API from the browser, plus modmt's merge-weight slider.
const $ = (id) => document.getElementById(id);
let languages = [], timer = null, asked = 0;

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function fillTargets() {
  const source = $("source").value, keep = $("target").value;
  const targets = source === "auto" ? [...new Set(languages.flatMap((l) => l.targets))].sort()
                                    : (languages.find((l) => l.code === source) || {targets: []}).targets;
  $("target").innerHTML = targets.map((t) => `<option value="${t}">${nameOf(t)}</option>`).join("");
  if (targets.includes(keep)) $("target").value = keep;
}

function nameOf(code) { return (languages.find((l) => l.code === code) || {name: code}).name; }

function weights() {
  if (!$("w-on").checked) return null;
  const out = Number($("w").value);
  return `${10 - out}:${out}`;
}

async function translate() {
  const q = $("q").value, ticket = ++asked;
  $("error").textContent = "";
  if (!q.trim()) { $("out").textContent = ""; $("alts").innerHTML = ""; $("detected").textContent = ""; return; }
  const body = {q, source: $("source").value, target: $("target").value, format: "text",
                alternatives: Number($("alternatives").value) || 0};
  const w = weights();
  if (w) body.w = w;
  try {
    const data = await post("/translate", body);
    if (ticket !== asked) return;  // a newer request is on its way
    $("out").textContent = data.translatedText;
    $("alts").innerHTML = (data.alternatives || []).map((a) => `<li>${a.replace(/</g, "&lt;")}</li>`).join("");
    $("detected").textContent = data.detectedLanguage
      ? `Detected: ${nameOf(data.detectedLanguage.language)} (${data.detectedLanguage.confidence}%)` : "";
  } catch (e) {
    if (ticket === asked) $("error").textContent = e.message;
  }
}

async function translateFile() {
  const file = $("file").files[0];
  $("error").textContent = ""; $("download").hidden = true;
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  form.append("source", $("source").value);
  form.append("target", $("target").value);
  const w = weights();
  if (w) form.append("w", w);
  try {
    const r = await fetch("/translate_file", {method: "POST", body: form});
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || r.statusText);
    $("download").href = data.translatedFileUrl;
    $("download").textContent = `Download ${file.name} in ${nameOf($("target").value)}`;
    $("download").hidden = false;
  } catch (e) {
    $("error").textContent = e.message;
  }
}

function later() { clearTimeout(timer); timer = setTimeout(translate, 400); }

async function start() {
  languages = await (await fetch("/languages")).json();
  $("source").innerHTML += languages.map((l) => `<option value="${l.code}">${l.name}</option>`).join("");
  fillTargets();
  $("source").addEventListener("change", () => { fillTargets(); later(); });
  $("target").addEventListener("change", later);
  $("q").addEventListener("input", later);
  $("alternatives").addEventListener("change", later);
  $("w-on").addEventListener("change", () => { $("w").disabled = !$("w-on").checked; $("w").dispatchEvent(new Event("input")); });
  $("w").addEventListener("input", () => { $("w-label").textContent = weights() || "export's"; later(); });
  $("swap").addEventListener("click", () => {
    const s = $("source").value, t = $("target").value;
    if (s === "auto") return;
    $("source").value = t; fillTargets(); $("target").value = s; later();
  });
  const settings = await (await fetch("/frontend/settings")).json();
  if (settings.filesTranslation) {  // LibreTranslate's front end reads the same two fields
    $("file").accept = settings.supportedFilesFormat.join(",");
    $("files").hidden = false;
    $("file").addEventListener("change", translateFile);
  }
}
start();
