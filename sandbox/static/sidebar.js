// The sidebar: each account's equity, open positions and pending orders, the engine's pause
// switch and the latest signals with who posted them (Fib-RSI or the demo producer), from
// /sandbox/api/portfolio (polled by app.js).
"use strict";

const Sidebar = (() => {
  const $ = (id) => document.getElementById(id);
  const el = Render.el;
  const fmt = (value, digits = 2) =>
    value === null || value === undefined
      ? "—"
      : Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const signed = (value) => (Number(value) > 0 ? "+" : "") + fmt(value);

  function accountCard(account) {
    const card = el("div", "account");
    card.dataset.accountId = String(account.id);
    const head = el("div", "account-head");
    head.appendChild(Render.avatar(account.owner, account.telegram_id || account.id));
    const who = el("div", "account-who");
    who.appendChild(el("div", "account-owner", account.owner));
    who.appendChild(el("div", "muted", `#${account.id} · ${account.label}` + (account.paused ? " · paused" : "")));
    head.appendChild(who);
    const equity = el("div", "account-equity");
    equity.appendChild(el("div", "equity", account.error ? "unavailable" : `${fmt(account.equity)} ${account.currency}`));
    if (account.pnl !== null && account.pnl !== undefined) {
      const pnl = el("div", "pnl " + (Number(account.pnl) > 0 ? "up" : Number(account.pnl) < 0 ? "down" : ""), signed(account.pnl));
      equity.appendChild(pnl);
    }
    head.appendChild(equity);
    card.appendChild(head);
    if (account.error) card.appendChild(el("div", "muted", account.error));
    for (const p of account.positions || []) {
      const row = el("div", "position");
      row.dataset.symbol = p.symbol;
      row.appendChild(el("span", "side " + p.side, p.side.toUpperCase()));
      row.appendChild(el("span", "pos-main", `${Number(p.volume)} ${p.symbol} @ ${p.open_price}`));
      row.appendChild(el("span", "pnl " + (Number(p.profit) >= 0 ? "up" : "down"), signed(p.profit)));
      row.title = `SL ${p.sl ?? "—"} · TP ${p.tp ?? "—"} · now ${p.current_price ?? "—"}`;
      card.appendChild(row);
    }
    for (const o of account.orders || []) {
      const row = el("div", "position order");
      row.dataset.symbol = o.symbol;
      row.appendChild(el("span", "side " + o.side, `${o.side} ${o.type}`.toUpperCase()));
      row.appendChild(el("span", "pos-main", `${Number(o.volume)} ${o.symbol} @ ${o.price}`));
      row.appendChild(el("span", "muted", "waiting"));
      card.appendChild(row);
    }
    if (!(account.positions || []).length && !(account.orders || []).length && !account.error) {
      card.appendChild(el("div", "muted small", "No open positions."));
    }
    return card;
  }

  async function refresh(peopleOrder) {
    try {
      const response = await fetch("/sandbox/api/portfolio");
      if (!response.ok) throw new Error(response.statusText);
      const data = await response.json();
      const rank = (a) => { const i = peopleOrder.indexOf(a.telegram_id); return i < 0 ? 99 : i; };
      $("accounts").replaceChildren(...data.accounts.sort((a, b) => rank(a) - rank(b)).map(accountCard));
      const engine = $("pill-engine");
      engine.textContent = data.paused ? "Engine: paused" : "Engine: running";
      engine.classList.toggle("pill-warn", data.paused);
      engine.classList.toggle("pill-ok", !data.paused);
      $("signals").replaceChildren(...data.signals.map((s) => {
        const row = el("div", "signal-row");
        row.appendChild(el("span", "side " + s.side, s.side.toUpperCase()));
        row.appendChild(el("span", "pos-main", `${s.instrument} · ${s.order_type}`));
        const source = el("span", "source" + (s.producer === "strategy-fib-rsi" ? " source-strategy" : ""), s.source);
        source.title = `producer ${s.producer}` + (s.strategy ? `, strategy ${s.strategy}` : "");
        row.appendChild(source);
        row.appendChild(el("span", "status status-" + s.status, s.status));
        return row;
      }));
      if (!data.signals.length) $("signals").appendChild(el("div", "muted small", "The first one is on its way."));
      $("side-updated").textContent = "· live";
    } catch (err) {
      $("side-updated").textContent = "· " + err.message;
    }
  }

  return { refresh };
})();
