// The upload page: sends the chosen or dropped image to api/explain once per head and draws each
// answer side by side. Every string from the server goes in through textContent, never as HTML.
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const results = document.getElementById("results");
const status = document.getElementById("status");
const PROTOTYPES = 3;

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function className(c) {
  return config.classes[c] !== undefined ? config.classes[c] : "class " + c;
}

function topFive(logits) {
  const m = Math.max(...logits);
  const z = logits.reduce((s, l) => s + Math.exp(l - m), 0);
  return logits.map((l, c) => [c, Math.exp(l - m) / z]).sort((a, b) => b[1] - a[1]).slice(0, 5);
}

function contributions(h, ex) {
  const table = el("table");
  const head = el("tr");
  for (const t of ["channel", "contribution", "share", "prototypes"]) head.appendChild(el("th", t));
  table.appendChild(head);
  for (const [list, side] of [[ex.positive, "pos"], [ex.negative, "neg"]]) {
    for (const c of list) {
      const row = el("tr", null, { class: side });
      const link = el("a", c.channel, { href: h + "/channel/" + c.channel });
      const cell = el("td");
      cell.appendChild(link);
      row.appendChild(cell);
      row.appendChild(el("td", c.contribution.toFixed(3)));
      row.appendChild(el("td", (100 * c.share).toFixed(1) + "%"));
      const protos = el("td");
      for (let r = 0; r < PROTOTYPES; r++) {
        protos.appendChild(el("img", null, {
          src: h + "/png/proto-" + c.channel + "-" + side + "-" + r + "-crop.png",
          width: "56", height: "56", alt: "channel " + c.channel + " prototype " + r,
          onerror: "this.remove()",
        }));
      }
      row.appendChild(protos);
      table.appendChild(row);
    }
  }
  return table;
}

function render(h, ex) {
  const card = el("div", null, { class: "card explanation", style: "flex:1 1 520px" });
  card.appendChild(el("h2", config.heads[h]));
  const p = el("p");
  p.appendChild(el("b", className(ex.predicted)));
  p.appendChild(document.createTextNode(" (p = " + ex.probability.toFixed(3) + "); logit " +
    ex.logit.toFixed(3) + " = " + ex.positive_total.toFixed(3) + " for + " +
    ex.negative_total.toFixed(3) + " against + bias " + ex.bias.toFixed(3) + "; " +
    ex.channels_for_95 + " channels carry 95%."));
  card.appendChild(p);
  const top = el("table");
  top.appendChild(el("tr")).append(el("th", "top-5"), el("th", "probability"));
  for (const [c, prob] of topFive(ex.logits)) {
    top.appendChild(el("tr")).append(el("td", className(c)), el("td", (100 * prob).toFixed(1) + "%"));
  }
  card.appendChild(top);
  card.appendChild(el("img", null, { src: ex.figure, alt: "explanation of " + ex.source, class: "figure" }));
  card.appendChild(contributions(h, ex));
  return card;
}

async function explain(file) {
  results.replaceChildren();
  status.textContent = "Explaining " + file.name + " …";
  const body = await file.arrayBuffer();
  const answers = await Promise.all(config.heads.map(async (_, h) => {
    const url = "api/explain?head=" + h + "&name=" + encodeURIComponent(file.name);
    const r = await fetch(url, { method: "POST", body, headers: { "Content-Type": "application/octet-stream" } });
    const data = await r.json();
    return r.ok ? render(h, data) : el("p", config.heads[h] + ": " + data.error, { class: "neg" });
  }));
  results.replaceChildren(...answers);
  status.textContent = file.name;
}

document.getElementById("file").addEventListener("change", (e) => {
  if (e.target.files.length) explain(e.target.files[0]);
});
const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => e.preventDefault());
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  if (e.dataTransfer.files.length) explain(e.dataTransfer.files[0]);
});
