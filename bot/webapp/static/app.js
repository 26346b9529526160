// The Mini App: signs in with Telegram's initData, then shows the subscriber's signals, positions,
// history, stats and account (and the admin's engine view) through /app/api/*, refreshing what
// the server's live hints (Server-Sent Events) say changed. No framework, no build step: every
// text comes from the server in the user's language and goes into the page as text, never HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const tg = (window.Telegram && window.Telegram.WebApp) || null;
  const state = {
    token: null,
    me: null,
    T: {},
    tab: "signals",
    stale: new Set(),
    timers: [],
    history: { period: "30d", instrument: "", outcome: "all" },
    stats: { period: "30d" },
    signalsShown: [],
  };

  // ---------------------------------------------------------------- small helpers

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function t(key, values) {
    let text = state.T[key] || key;
    for (const [name, value] of Object.entries(values || {})) text = text.split("{" + name + "}").join(String(value));
    return text;
  }

  function locale() {
    return state.me ? state.me.locale : "en";
  }

  function money(value, currency) {
    if (value === null || value === undefined) return "—";
    const n = Number(value);
    const text = new Intl.NumberFormat(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(n);
    return currency ? `${text} ${currency}` : text;
  }

  function signedMoney(value, currency) {
    if (value === null || value === undefined) return "—";
    return (Number(value) > 0 ? "+" : "") + money(value, currency);
  }

  function pct(value, digits = 1) {
    if (value === null || value === undefined) return "—";
    return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(Number(value)) + " %";
  }

  function fraction(value) {
    return value === null || value === undefined ? "—" : pct(Number(value) * 100);
  }

  function price(value) {
    return value === null || value === undefined ? "—" : String(value).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
  }

  function when(iso) {
    if (!iso) return "—";
    return new Intl.DateTimeFormat(locale(), { dateStyle: "short", timeStyle: "short" }).format(new Date(iso));
  }

  function signClass(value) {
    const n = Number(value);
    return n > 0 ? "pos" : n < 0 ? "neg" : "";
  }

  function kv(key, value, cls) {
    const box = el("div", "kv");
    box.append(el("span", "k", key), el("span", "v" + (cls ? " " + cls : ""), value));
    return box;
  }

  function sideBadge(side) {
    return el("span", "side side-" + side, side === "buy" ? t("buy") : t("sell"));
  }

  function haptic(kind) {
    try {
      if (tg && tg.HapticFeedback && tg.isVersionAtLeast("6.1")) tg.HapticFeedback.notificationOccurred(kind);
    } catch (e) { /* not in this client */ }
  }

  let toastTimer = null;
  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 3500);
  }

  function confirmSheet(text) {
    return new Promise((resolve) => {
      const sheet = $("confirm");
      $("confirm-text").textContent = text;
      $("confirm-ok").textContent = t("confirm");
      $("confirm-cancel").textContent = t("cancel");
      sheet.hidden = false;
      const done = (answer) => {
        sheet.hidden = true;
        $("confirm-ok").onclick = null;
        $("confirm-cancel").onclick = null;
        resolve(answer);
      };
      $("confirm-ok").onclick = () => done(true);
      $("confirm-cancel").onclick = () => done(false);
    });
  }

  function notice(text) {
    const main = $("main");
    main.replaceChildren(el("div", "notice", text));
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || String(status));
      this.status = status;
      this.body = body || {};
    }
  }

  async function signIn() {
    const response = await fetch("/app/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ init_data: tg.initData }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, body);
    state.token = body.token;
    return body;
  }

  async function api(path, options = {}, retried = false) {
    const headers = { Authorization: "Bearer " + state.token, ...(options.headers || {}) };
    const init = { method: options.method || "GET", headers };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch("/app/api/" + path, init);
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 && !retried) {
      try {
        await signIn(); // the session ended: initData is good for longer, sign in again once
      } catch (err) {
        throw new ApiError(401, { detail: t("session_over") }); // initData is too old now
      }
      return api(path, options, true);
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // ---------------------------------------------------------------- frame

  function applyTheme() {
    const scheme = tg && tg.colorScheme ? tg.colorScheme : "light";
    document.documentElement.dataset.scheme = scheme;
  }

  function tabs() {
    const list = [];
    if (state.me.user.subscribed) list.push("signals", "positions", "history", "stats", "account");
    if (state.me.user.is_admin) list.push("admin");
    return list;
  }

  function renderTabs() {
    const nav = $("tabs");
    nav.replaceChildren();
    for (const name of tabs()) {
      const button = el("button", "tab" + (name === state.tab ? " active" : ""));
      button.type = "button";
      button.dataset.tab = name;
      button.setAttribute("role", "tab");
      button.append(el("span", "", t("tab_" + name)));
      if (name === "signals" && state.signalsShown.length) button.append(el("span", "count", state.signalsShown.length));
      button.addEventListener("click", () => select(name));
      nav.append(button);
    }
    nav.hidden = false;
  }

  function renderBanners() {
    const paused = $("banner-paused");
    paused.textContent = t("paused_banner");
    paused.hidden = !state.me.paused;
    const simulated = $("banner-simulated");
    simulated.textContent = t("simulated_banner");
    simulated.hidden = !state.me.simulated_market;
  }

  function clearTimers() {
    for (const id of state.timers) clearInterval(id);
    state.timers = [];
  }

  async function select(name) {
    state.tab = name;
    state.stale.delete(name);
    clearTimers();
    renderTabs();
    await load(name);
  }

  async function load(name) {
    const views = { signals, positions, history, stats, account, admin };
    try {
      await views[name]();
    } catch (err) {
      if (name === state.tab) notice(err.message || t("error"));
    }
  }

  async function refreshMe() {
    state.me = await api("me");
    state.T = state.me.texts;
    document.documentElement.lang = state.me.locale;
    $("title").textContent = t("title");
    renderBanners();
  }

  // ---------------------------------------------------------------- signals

  function secondsLeft(signal) {
    return Math.max(0, signal.seconds_left - Math.floor((Date.now() - signal.loaded_at) / 1000));
  }

  function clock(seconds) {
    const m = Math.floor(seconds / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function signalCard(signal) {
    const card = el("div", "card signal-card");
    card.dataset.signalId = signal.id;
    const head = el("div", "card-head");
    const title = el("div", "card-title");
    title.append(sideBadge(signal.side), document.createTextNode(" " + signal.instrument + " "));
    title.append(el("span", "card-sub", "· " + t("type_" + signal.order_type)));
    head.append(title, el("span", "card-sub", when(signal.received_at)));
    card.append(head);

    const grid = el("div", "grid");
    grid.append(kv(t("entry"), signal.entry ? price(signal.entry) : t("at_market")));
    grid.append(kv(t("stop_loss"), price(signal.sl)));
    grid.append(kv(t("rr"), signal.rr ? price(signal.rr) : "—"));
    grid.append(kv(t("risk"), pct(signal.risk_percent, 2)));
    if (!signal.targets.length) grid.append(kv(t("take_profit"), price(signal.tp)));
    if (signal.strategy) grid.append(kv(t("strategy"), signal.strategy));
    card.append(grid);
    if (signal.targets.length) {
      const list = el("ul", "targets");
      signal.targets.forEach((target, i) => {
        const item = el("li");
        item.append(el("span", "muted", t("target_n", { n: i + 1 })), el("span", "", `${price(target.price)} · ${target.close_percent} %`));
        list.append(item);
      });
      card.append(list);
    }
    if (signal.note) card.append(el("div", "note", signal.note));

    const meters = el("div", "meters");
    if (signal.confidence !== null) {
      const box = el("div");
      const label = el("div", "meter-label");
      label.append(el("span", "", t("confidence")), el("span", "", pct(Number(signal.confidence) * 100, 0)));
      const bar = el("div", "bar");
      const fill = el("span");
      fill.style.width = Math.round(Number(signal.confidence) * 100) + "%";
      bar.append(fill);
      box.append(label, bar);
      meters.append(box);
    }
    const timeBox = el("div", "time-left");
    const timeLabel = el("div", "meter-label");
    const timeValue = el("span", "countdown", clock(secondsLeft(signal)));
    timeLabel.append(el("span", "", t("time_left")), timeValue);
    const timeBar = el("div", "bar");
    const timeFill = el("span");
    timeBar.append(timeFill);
    timeBox.append(timeLabel, timeBar);
    meters.append(timeBox);
    card.append(meters);
    const tick = () => {
      const left = secondsLeft(signal);
      timeValue.textContent = clock(left);
      const share = signal.ttl_seconds ? left / signal.ttl_seconds : 0;
      timeFill.style.width = Math.round(share * 100) + "%";
      timeBar.classList.toggle("low", share < 0.2);
      return left;
    };
    tick();
    signal.tick = tick;

    const actions = el("div", "actions");
    const approve = el("button", "btn btn-good approve", t("approve"));
    const reject = el("button", "btn btn-secondary reject", t("reject"));
    approve.type = reject.type = "button";
    approve.addEventListener("click", () => decide(signal, true, [approve, reject]));
    reject.addEventListener("click", () => decide(signal, false, [approve, reject]));
    actions.append(approve, reject);
    card.append(actions);
    return card;
  }

  async function decide(signal, approve, buttons) {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const result = await api(`signals/${encodeURIComponent(signal.id)}/decision`, { method: "POST", body: { approve } });
      haptic("success");
      toast(result.text);
    } catch (err) {
      haptic("error");
      toast(err.message);
    }
    await signals();
  }

  async function signals() {
    const data = await api("signals");
    const now = Date.now();
    state.signalsShown = data.signals.map((s) => ({ ...s, loaded_at: now }));
    renderTabs();
    if (state.tab !== "signals") return;
    const main = $("main");
    main.replaceChildren();
    if (!state.signalsShown.length) {
      main.append(el("div", "notice", t("signals_empty")));
      return;
    }
    for (const signal of state.signalsShown) main.append(signalCard(signal));
    clearTimers();
    state.timers.push(setInterval(() => {
      let expired = false;
      for (const signal of state.signalsShown) if (signal.tick && signal.tick() === 0) expired = true;
      if (expired) signals().catch(() => {});
    }, 1000));
  }

  // ---------------------------------------------------------------- positions

  function accountCard(account) {
    const card = el("div", "card account-card");
    card.dataset.accountId = account.id;
    const head = el("div", "card-head");
    const name = account.kind === "mt5" ? t("mt5_account", { login: account.login || "?" }) : t("paper_account", { id: account.id });
    head.append(el("div", "card-title", name), el("span", "card-sub", account.trading_state === "active" ? "" : t("state_" + account.trading_state)));
    card.append(head);
    if (account.error) {
      card.append(el("div", "card-sub", t("broker_unavailable", { reason: account.error })));
      return card;
    }
    const grid = el("div", "grid");
    grid.append(kv(t("balance"), money(account.balance, account.currency)));
    grid.append(kv(t("equity"), money(account.equity, account.currency)));
    grid.append(kv(t("floating"), signedMoney(account.floating, account.currency), signClass(account.floating)));
    card.append(grid);
    return card;
  }

  function positionCard(p) {
    const card = el("div", "card position-card");
    card.dataset.positionId = p.id;
    card.dataset.symbol = p.symbol;
    const head = el("div", "card-head");
    const title = el("div", "card-title");
    title.append(sideBadge(p.side), document.createTextNode(` ${p.symbol} · ${price(p.volume)}`));
    const pnl = el("span", "pnl " + signClass(p.profit), p.status === "closing" ? t("closing") : signedMoney(p.profit, p.currency));
    head.append(title, pnl);
    card.append(head);
    const grid = el("div", "grid");
    grid.append(kv(t("open_price"), price(p.open_price)));
    grid.append(kv(t("price_now"), price(p.current_price)));
    grid.append(kv(t("stop_loss"), price(p.sl)));
    grid.append(kv(t("take_profit"), price(p.tp)));
    card.append(grid);
    if (!p.signal_id) {
      card.append(el("div", "card-sub", t("not_managed")));
      return card;
    }
    const actions = el("div", "actions");
    const specs = [
      ["close", "btn btn-danger btn-small", t("confirm_close", { symbol: p.symbol, volume: price(p.volume) })],
      ["close_half", "btn btn-secondary btn-small", t("confirm_close_half", { symbol: p.symbol, volume: price(p.volume) })],
      ["breakeven", "btn btn-secondary btn-small", t("confirm_breakeven", { symbol: p.symbol })],
    ];
    const buttons = [];
    for (const [action, cls, question] of specs) {
      const button = el("button", cls, t(action));
      button.type = "button";
      button.dataset.action = action;
      button.disabled = !p.manageable;
      button.addEventListener("click", () => act(p, action, question, buttons));
      buttons.push(button);
      actions.append(button);
    }
    card.append(actions);
    return card;
  }

  async function act(p, action, question, buttons) {
    if (!(await confirmSheet(question))) return;
    const key = newKey(); // one intent, one key: a retry of this request can never act twice
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const result = await api(`positions/${p.id}/${action}`, { method: "POST", headers: { "Idempotency-Key": key } });
      haptic("success");
      toast(result.text);
    } catch (err) {
      haptic("error");
      toast(err.message);
    }
    await positions();
  }

  async function positions() {
    const data = await api("positions");
    if (state.tab !== "positions") return;
    const main = $("main");
    main.replaceChildren();
    for (const account of data.accounts) main.append(accountCard(account));
    if (!data.positions.length) main.append(el("div", "notice", t("positions_empty")));
    for (const p of data.positions) main.append(positionCard(p));
    if (data.orders.length) {
      main.append(el("div", "section-title", t("pending_orders")));
      const card = el("div", "card");
      for (const o of data.orders) {
        const row = el("div", "row");
        const left = el("div", "left");
        const title = el("span");
        title.append(sideBadge(o.side), document.createTextNode(` ${o.symbol} · ${t("type_" + o.order_type)}`));
        left.append(title, el("span", "muted", `${price(o.volume)} @ ${price(o.price)}`));
        row.append(left, el("span", "muted", o.status));
        card.append(row);
      }
      main.append(card);
    }
    clearTimers();
    state.timers.push(setInterval(() => { if (state.tab === "positions") positions().catch(() => {}); }, 5000));
  }

  // ---------------------------------------------------------------- history

  function selectBox(options, value, onChange) {
    const box = el("select");
    for (const [v, label] of options) {
      const option = el("option", "", label);
      option.value = v;
      option.selected = v === value;
      box.append(option);
    }
    box.addEventListener("change", () => onChange(box.value));
    return box;
  }

  function periods() {
    return [["7d", t("period_7d")], ["30d", t("period_30d")], ["90d", t("period_90d")], ["all", t("period_all")]];
  }

  function reason(code) {
    const known = {
      sl: t("reason_sl"),
      tp: t("reason_tp"),
      closeall: t("reason_closeall"),
      drawdown: t("reason_drawdown"),
      closed_by_subscriber: t("reason_subscriber"),
      closed_by_producer: t("reason_producer"),
    };
    return known[code] || t("reason_other");
  }

  async function history() {
    const f = state.history;
    const query = new URLSearchParams({ period: f.period, outcome: f.outcome });
    if (f.instrument) query.set("instrument", f.instrument);
    const data = await api("history?" + query);
    if (state.tab !== "history") return;
    const main = $("main");
    main.replaceChildren();
    const filters = el("div", "filters");
    const change = (name) => (value) => { state.history[name] = value; history().catch((e) => toast(e.message)); };
    filters.append(selectBox(periods(), f.period, change("period")));
    filters.append(selectBox([["", t("all_instruments")], ...data.instruments.map((i) => [i, i])], f.instrument, change("instrument")));
    filters.append(selectBox([["all", t("outcome_all")], ["win", t("outcome_win")], ["loss", t("outcome_loss")]], f.outcome, change("outcome")));
    main.append(filters);
    const summary = el("div", "card");
    const head = el("div", "card-head");
    head.append(el("span", "", t("trades_count", { count: data.count })), el("span", "pnl " + signClass(data.net), `${t("net")} ${signedMoney(data.net)}`));
    summary.append(head);
    main.append(summary);
    if (!data.trades.length) {
      main.append(el("div", "notice", t("history_empty")));
      return;
    }
    const card = el("div", "card trades");
    for (const trade of data.trades) {
      const row = el("div", "row trade-row");
      row.dataset.positionId = trade.position_id;
      const left = el("div", "left");
      const title = el("span");
      title.append(sideBadge(trade.side), document.createTextNode(` ${trade.symbol} · ${price(trade.volume)}`));
      left.append(title, el("span", "muted", `${price(trade.open_price)} → ${price(trade.close_price)} · ${reason(trade.close_reason)}`));
      const right = el("div", "right");
      right.append(el("span", "pnl " + signClass(trade.net), signedMoney(trade.net)), el("span", "muted", when(trade.close_time)));
      row.append(left, right);
      card.append(row);
    }
    main.append(card);
  }

  // ---------------------------------------------------------------- stats

  function metric(key, value, cls) {
    const box = el("div", "metric");
    box.append(el("div", "k", key), el("div", "v" + (cls ? " " + cls : ""), value));
    return box;
  }

  async function stats() {
    const data = await api("stats?" + new URLSearchParams({ period: state.stats.period }));
    if (state.tab !== "stats") return;
    const main = $("main");
    main.replaceChildren();
    const filters = el("div", "filters");
    filters.append(selectBox(periods(), state.stats.period, (value) => { state.stats.period = value; stats().catch((e) => toast(e.message)); }));
    main.append(filters);
    if (!data.has_data) {
      main.append(el("div", "notice", t("stats_empty")));
      return;
    }
    const m = data.metrics;
    const chart = el("div", "card chart");
    chart.append(Chart.render(data.curve, { equity: t("chart_equity"), drawdown: t("chart_drawdown") }, {
      money: (n) => money(n),
      pct: (n) => pct(n),
      date: (iso) => when(iso),
    }));
    main.append(chart);
    const grid = el("div", "metrics");
    grid.append(metric(t("m_net"), signedMoney(m.net_profit), signClass(m.net_profit)));
    grid.append(metric(t("m_return"), m.total_return_pct === null ? signedMoney(m.total_return) : fraction(m.total_return_pct), signClass(m.total_return)));
    grid.append(metric(t("m_trades"), `${m.trades} (${m.wins}/${m.losses})`));
    grid.append(metric(t("m_win_rate"), fraction(m.win_rate)));
    grid.append(metric(t("m_profit_factor"), m.profit_factor_infinite ? "∞" : price(m.profit_factor === null ? null : Number(m.profit_factor).toFixed(2))));
    grid.append(metric(t("m_expectancy"), signedMoney(m.expectancy), signClass(m.expectancy)));
    grid.append(metric(t("m_max_dd"), m.max_drawdown_pct === null ? money(m.max_drawdown) : fraction(m.max_drawdown_pct)));
    grid.append(metric(t("m_sharpe"), m.sharpe === null ? "—" : m.sharpe));
    grid.append(metric(t("m_avg_win"), signedMoney(m.average_win), "pos"));
    grid.append(metric(t("m_avg_loss"), signedMoney(m.average_loss), "neg"));
    main.append(grid);
  }

  // ---------------------------------------------------------------- account: settings, plan, referrals

  function toggle(checked, onChange) {
    const label = el("label", "switch");
    const input = el("input");
    input.type = "checkbox";
    input.checked = checked;
    input.addEventListener("change", () => onChange(input.checked, input));
    label.append(input, el("span"));
    return label;
  }

  function field(label, control, hint) {
    const row = el("div", "field");
    const text = el("div", "left");
    text.append(el("span", "", label));
    if (hint) text.append(el("span", "muted", hint));
    row.append(text, control);
    return row;
  }

  async function saveSettings(change) {
    try {
      const before = state.me.locale;
      await api("settings", { method: "PATCH", body: change });
      toast(t("saved"));
      if (change.language && change.language !== before) {
        await refreshMe();
        renderTabs();
      }
    } catch (err) {
      toast(err.message);
    }
    await account();
  }

  async function account() {
    const [settings, plan] = await Promise.all([api("settings"), api("plan")]);
    if (state.tab !== "account") return;
    const main = $("main");
    main.replaceChildren();

    main.append(el("div", "section-title", t("settings")));
    const prefs = el("div", "card settings-card");
    prefs.append(field(t("language"), selectBox([["en", "English"], ["es", "Español"]], settings.language, (value) => saveSettings({ language: value }))));
    prefs.append(field(t("notifications"), toggle(settings.notifications, (on) => saveSettings({ notifications: on })), t("notifications_hint")));
    main.append(prefs);

    if (settings.auto) {
      main.append(el("div", "section-title", t("auto_title")));
      const auto = el("div", "card auto-card");
      auto.append(field(t("auto_enabled"), toggle(settings.auto.enabled, (on, input) => {
        input.disabled = true;
        saveSettings({ auto_enabled: on });
      }), settings.auto.entitled ? "" : t("auto_not_entitled")));
      const risk = el("input");
      risk.type = "number";
      risk.step = "0.1";
      risk.min = "0.1";
      risk.max = "10";
      risk.value = settings.auto.risk_percent;
      const maxLots = el("input");
      maxLots.type = "number";
      maxLots.step = "0.01";
      maxLots.min = "0.01";
      maxLots.value = settings.auto.max_volume || "";
      auto.append(field(t("auto_risk"), risk));
      auto.append(field(t("auto_max"), maxLots));
      const save = el("button", "btn btn-primary", t("save"));
      save.type = "button";
      save.addEventListener("click", () => saveSettings({
        auto_risk_percent: risk.value,
        auto_max_volume: maxLots.value === "" ? null : maxLots.value,
      }));
      const actions = el("div", "actions");
      actions.append(save);
      auto.append(actions);
      main.append(auto);
    }

    main.append(el("div", "section-title", t("plan")));
    const planCard = el("div", "card plan-card");
    if (plan.plan) {
      const head = el("div", "card-head");
      head.append(el("div", "card-title", plan.plan.title), el("span", "card-sub", t("plan_state_" + plan.plan.state)));
      planCard.append(head);
      if (!plan.billing) planCard.append(el("div", "card-sub", t("billing_off")));
      else if (plan.plan.expires_at) planCard.append(el("div", "card-sub", t("plan_until", { date: when(plan.plan.expires_at) })));
      if (plan.plan.renewing) planCard.append(el("div", "card-sub", t("plan_renews")));
    }
    main.append(planCard);

    if (plan.referral) {
      const r = plan.referral;
      main.append(el("div", "section-title", t("referrals")));
      const card = el("div", "card referral-card");
      card.append(el("div", "card-sub", t("invite_link")));
      card.append(el("div", "link", r.link));
      const grid = el("div", "grid");
      grid.append(kv(t("invited"), r.invited), kv(t("paying"), r.paying), kv(t("earned"), r.earned), kv(t("balance"), r.balance));
      card.append(grid);
      main.append(card);
    }
  }

  // ---------------------------------------------------------------- admin

  async function adminAct(action, body, question) {
    if (!(await confirmSheet(question))) return;
    try {
      const result = await api("admin/" + action, { method: "POST", body });
      haptic("success");
      toast(result.text);
    } catch (err) {
      haptic("error");
      toast(err.message);
    }
    await Promise.all([admin(), refreshMe()]);
  }

  async function admin() {
    const data = await api("admin/status");
    if (state.tab !== "admin") return;
    const main = $("main");
    main.replaceChildren();
    main.append(el("div", "section-title", t("engine")));
    const engine = el("div", "card engine-card");
    const head = el("div", "card-head");
    head.append(el("div", "card-title", data.paused ? t("paused_by", { actor: data.paused_by || "?" }) : t("running")));
    engine.append(head);
    const grid = el("div", "grid");
    const ago = data.heartbeat_at ? Math.max(0, Math.round((Date.parse(data.now) - Date.parse(data.heartbeat_at)) / 1000)) : null;
    grid.append(kv(t("heartbeat"), ago === null ? t("none_yet") : t("seconds_ago", { seconds: ago })));
    grid.append(kv(t("trading_loop"), data.leader && data.leader.alive ? data.leader.instance : t("not_running")));
    grid.append(kv(t("open_positions"), data.open_positions));
    grid.append(kv(t("pending_orders"), data.pending_orders));
    grid.append(kv(t("outbox"), data.outbox_pending));
    grid.append(kv(t("accounts"), data.accounts_total));
    engine.append(grid);
    const actions = el("div", "actions");
    const pauseAll = el("button", "btn btn-secondary", data.paused ? t("resume_all") : t("pause_all"));
    pauseAll.type = "button";
    pauseAll.id = "admin-pause";
    pauseAll.addEventListener("click", () => (data.paused
      ? adminAct("resume", {}, t("confirm_resume_all"))
      : adminAct("pause", {}, t("confirm_pause_all"))));
    const closeAll = el("button", "btn btn-danger", t("closeall_all"));
    closeAll.type = "button";
    closeAll.id = "admin-closeall";
    closeAll.addEventListener("click", () => adminAct("closeall", { confirm: true }, t("confirm_closeall_all")));
    actions.append(pauseAll, closeAll);
    engine.append(actions);
    main.append(engine);

    main.append(el("div", "section-title", t("accounts")));
    for (const a of data.accounts) {
      const card = el("div", "card admin-account");
      card.dataset.accountId = a.id;
      const top = el("div", "card-head");
      const owner = a.owner ? (a.owner.username ? "@" + a.owner.username : a.owner.first_name || "#" + a.owner.telegram_id) : t("operator");
      top.append(el("div", "card-title", `#${a.id} ${owner}`), el("span", "card-sub", `${a.kind} · ${t("state_" + a.trading_state)}`));
      card.append(top);
      const g = el("div", "grid");
      g.append(kv(t("equity"), a.equity === null ? "—" : money(a.equity, a.currency)));
      g.append(kv(t("open_positions"), a.open_positions));
      g.append(kv(t("pending_orders"), a.pending_orders));
      card.append(g);
      const row = el("div", "actions");
      const toggleButton = el("button", "btn btn-secondary btn-small", a.trading_state === "active" ? t("pause") : t("resume"));
      toggleButton.type = "button";
      toggleButton.dataset.action = a.trading_state === "active" ? "pause" : "resume";
      toggleButton.addEventListener("click", () => (a.trading_state === "active"
        ? adminAct("pause", { account: a.id }, t("confirm_pause_account", { id: a.id }))
        : adminAct("resume", { account: a.id }, t("confirm_resume_account", { id: a.id }))));
      const close = el("button", "btn btn-danger btn-small", t("close_account"));
      close.type = "button";
      close.dataset.action = "closeall";
      close.addEventListener("click", () => adminAct("closeall", { account: a.id, confirm: true }, t("confirm_close_account", { id: a.id })));
      row.append(toggleButton, close);
      card.append(row);
      main.append(card);
    }
  }

  // ---------------------------------------------------------------- live hints (Server-Sent Events over fetch)

  const VIEW_TOPICS = {
    signals: ["signals"],
    positions: ["positions"],
    history: ["history"],
    stats: ["stats"],
    account: [],
    admin: ["admin"],
  };
  let refreshTimer = null;

  function onHint(hint) {
    const topics = new Set(hint.topics || []);
    if (topics.has("status") || topics.has("all")) refreshMe().catch(() => {});
    for (const view of Object.keys(VIEW_TOPICS)) {
      if (topics.has("all") || VIEW_TOPICS[view].some((x) => topics.has(x))) state.stale.add(view);
    }
    if (topics.has("signals") && state.tab !== "signals") signalsCount();
    if (!state.stale.has(state.tab)) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      state.stale.delete(state.tab);
      load(state.tab);
    }, 250);
  }

  async function signalsCount() {
    if (!state.me.user.subscribed) return;
    try {
      const data = await api("signals");
      state.signalsShown = data.signals.map((s) => ({ ...s, loaded_at: Date.now() }));
      renderTabs();
    } catch (err) { /* the count waits for the next hint */ }
  }

  function setLive(on) {
    const live = $("live");
    live.hidden = false;
    live.textContent = "● " + (on ? t("live") : t("reconnecting"));
    live.classList.toggle("on", on);
  }

  async function stream() {
    for (;;) {
      try {
        const response = await fetch("/app/api/events", {
          headers: { Authorization: "Bearer " + state.token, Accept: "text/event-stream" },
        });
        if (response.status === 401) {
          await signIn();
          continue;
        }
        if (!response.ok || !response.body) throw new Error(String(response.status));
        setLive(true);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type = "message";
            let data = "";
            for (const line of frame.split("\n")) {
              if (line.startsWith("event:")) type = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
            }
            if (type === "update" && data) onHint(JSON.parse(data));
            if (type === "expired") await signIn();
          }
        }
      } catch (err) {
        if (err instanceof ApiError) {
          notice(t("session_over"));
          setLive(false);
          return;
        }
      }
      setLive(false);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      onHint({ topics: ["all"] }); // whatever happened while disconnected
    }
  }

  // ---------------------------------------------------------------- start

  async function start() {
    if (!tg || !tg.initData) {
      notice("Open this page from the bot in Telegram: the menu button or /app.");
      return;
    }
    tg.ready();
    tg.expand();
    applyTheme();
    tg.onEvent("themeChanged", applyTheme);
    try {
      await signIn();
      await refreshMe();
    } catch (err) {
      notice(err.message || "Could not sign in.");
      return;
    }
    const available = tabs();
    if (!available.length) {
      notice(t("start_first"));
      return;
    }
    state.tab = available[0];
    stream();
    await select(state.tab);
    if (state.tab !== "signals" && state.me.user.subscribed) signalsCount();
  }

  start();
})();
