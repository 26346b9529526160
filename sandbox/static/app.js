// The sandbox page: every chat the way Telegram shows it, acting as the sandbox's users.
// Talks only to /sandbox/api/* on the same server (which acts through the emulator).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    world: null,
    chats: new Map(), // chat_id -> {info, messages: Map(message_id -> message), unread}
    current: null,
    people: new Map(),
    nextSignalAt: null,
    clockSkew: 0,
    app: null, // the Mini App open in the phone frame: {person, messageId, theme}
  };
  const SUBSCRIBER_CHIPS = ["/start", "/account", "/positions", "/app", "/settings", "/help", "/stop"];
  const ADMIN_CHIPS = ["/status", "/positions", "/pause", "/resume", "/closeall", "/help"];

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const response = await fetch("/sandbox/api/" + path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || data.detail || response.statusText);
    return data;
  }

  // ---------------------------------------------------------------- chats

  function personOf(chatId) {
    return state.people.get(chatId) || null;
  }

  function chatTitle(chat) {
    return chat.info.title || chat.info.first_name || String(chat.info.id);
  }

  function sortedMessages(chat) {
    return [...chat.messages.values()].sort((a, b) => a.message_id - b.message_id);
  }

  function preview(msg) {
    if (!msg) return "";
    const text = msg.text || msg.caption || (msg.photo ? "📷 Photo" : "");
    return text.split("\n")[0];
  }

  function renderChatList() {
    const list = $("chat-list");
    list.replaceChildren();
    const head = document.createElement("div");
    head.className = "list-title";
    head.textContent = "Chats";
    list.appendChild(head);
    for (const chat of state.chats.values()) {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "chat-item" + (chat.info.id === state.current ? " active" : "");
      item.dataset.chatId = String(chat.info.id);
      const title = chatTitle(chat);
      item.appendChild(Render.avatar(title, chat.info.id));
      const text = document.createElement("div");
      text.className = "chat-item-text";
      const name = document.createElement("div");
      name.className = "chat-item-name";
      name.appendChild(Render.el("span", "name", title));
      const person = personOf(chat.info.id);
      const tags = [];
      if (person && person.role === "admin") tags.push("admin");
      if (person && person.language !== "en") tags.push(person.language.toUpperCase());
      if (chat.info.type === "channel") tags.push("channel");
      for (const tag of tags) {
        const t = document.createElement("span");
        t.className = "tag";
        t.textContent = tag;
        name.appendChild(t);
      }
      const last = document.createElement("div");
      last.className = "chat-item-last";
      last.textContent = preview(sortedMessages(chat).at(-1));
      text.append(name, last);
      item.appendChild(text);
      if (chat.unread) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = String(chat.unread);
        item.appendChild(badge);
      }
      item.addEventListener("click", () => select(chat.info.id));
      list.appendChild(item);
    }
  }

  function renderHead() {
    const chat = state.chats.get(state.current);
    const head = $("chat-head");
    head.replaceChildren();
    if (!chat) return;
    const title = chatTitle(chat);
    head.appendChild(Render.avatar(title, chat.info.id));
    const text = document.createElement("div");
    const name = document.createElement("div");
    name.className = "chat-head-name";
    name.textContent = title;
    const sub = document.createElement("div");
    sub.className = "chat-head-sub";
    const person = personOf(chat.info.id);
    const bot = "@" + (state.world.bot.username || "bot");
    if (person) {
      const lang = person.language === "es" ? " · speaks Spanish" : "";
      const role = person.role === "admin" ? " · admin (ADMIN_IDS)" : " · subscriber";
      sub.textContent = `private chat with ${bot} · you are acting as ${person.name}${role}${lang}`;
    } else {
      sub.textContent = `channel (OPS_CHAT_ID) · ${bot} posts ops alerts here`;
    }
    text.append(name, sub);
    head.appendChild(text);
  }

  function renderComposer() {
    const person = personOf(state.current);
    $("composer").hidden = !person;
    $("readonly").hidden = Boolean(person);
    if (!person) return;
    $("composer-text").placeholder = `Write as ${person.name}… (try /help)`;
    const chips = $("chips");
    chips.replaceChildren();
    for (const command of person.role === "admin" ? ADMIN_CHIPS : SUBSCRIBER_CHIPS) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = command;
      chip.addEventListener("click", () => send(command));
      chips.appendChild(chip);
    }
  }

  function messageElement(msg, person) {
    const outgoing = Boolean(msg.from && !msg.from.is_bot);
    return Render.message(msg, {
      onTap: (m, button, el) => tap(person, m, button, el),
      onWebApp: person ? (m) => openApp(person, m.message_id) : null,
      onCommand: person ? (text) => send(text) : null,
      fileUrl: (fileId) => "/sandbox/api/files/" + encodeURIComponent(fileId),
    }, outgoing);
  }

  function renderMessages() {
    const chat = state.chats.get(state.current);
    const box = $("messages");
    box.replaceChildren();
    if (!chat) return;
    const person = personOf(chat.info.id);
    for (const msg of sortedMessages(chat)) box.appendChild(messageElement(msg, person));
    if (!chat.messages.size) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.textContent = "No messages yet.";
      box.appendChild(empty);
    }
    box.scrollTop = box.scrollHeight;
  }

  function select(chatId) {
    state.current = chatId;
    const chat = state.chats.get(chatId);
    if (chat) chat.unread = 0;
    history.replaceState(null, "", "#chat=" + chatId);
    renderChatList();
    renderHead();
    renderComposer();
    renderMessages();
    if (personOf(chatId)) $("composer-text").focus();
  }

  // A new or edited message: replaced in place if the chat is open, else counted as unread.
  function upsert(chatId, msg, isNew) {
    const chat = state.chats.get(chatId);
    if (!chat) return;
    const known = chat.messages.has(msg.message_id);
    chat.messages.set(msg.message_id, msg);
    if (chatId === state.current) {
      const box = $("messages");
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      const old = box.querySelector(`[data-message-id="${msg.message_id}"]`);
      const el = messageElement(msg, personOf(chatId));
      if (old) {
        old.replaceWith(el);
        el.classList.add("flash");
      } else {
        box.querySelector(".empty")?.remove();
        const next = [...box.children].find((c) => Number(c.dataset.messageId) > msg.message_id);
        box.insertBefore(el, next || null);
      }
      if (atBottom || !known) box.scrollTop = box.scrollHeight;
    } else if (isNew && !known) {
      chat.unread = (chat.unread || 0) + 1;
    }
    renderChatList();
  }

  function remove(chatId, messageId) {
    const chat = state.chats.get(chatId);
    if (!chat) return;
    chat.messages.delete(messageId);
    if (chatId === state.current) $("messages").querySelector(`[data-message-id="${messageId}"]`)?.remove();
    renderChatList();
  }

  async function loadChat(chatId) {
    const messages = await api(`chats/${chatId}/messages`);
    const chat = state.chats.get(chatId);
    chat.messages = new Map(messages.map((m) => [m.message_id, m]));
  }

  async function loadWorld() {
    const world = await api("world");
    state.world = world;
    state.clockSkew = world.now * 1000 - Date.now();
    state.nextSignalAt = world.next_signal_at;
    state.people = new Map(world.people.map((p) => [p.user_id, p]));
    const order = [...world.people.map((p) => p.user_id), world.ops_chat_id];
    const known = new Map(world.chats.map((c) => [c.id, c]));
    for (const id of order) {
      const info = known.get(id);
      if (info && !state.chats.has(id)) state.chats.set(id, { info, messages: new Map(), unread: 0 });
    }
    await Promise.all([...state.chats.keys()].map(loadChat));
    $("pill-broker").textContent = world.broker === "mt5" ? "Broker: simulated MT5 terminal" : "Broker: paper";
    const fib = world.producers.fib_rsi;
    $("pill-strategy").textContent = fib.symbols.length
      ? `Fib-RSI: ${fib.symbols.join(", ")} · H1 bar every ${fib.bar_seconds} s`
      : "Fib-RSI: off";
    $("pill-strategy").title = `The built-in Fib-RSI strategy (producer ${fib.producer}) on the simulated terminal's bars; `
      + `demo signals (producer ${world.producers.demo.producer}): ${world.producers.demo.instruments.join(", ") || "none"}`;
  }

  // ---------------------------------------------------------------- acting

  async function send(text) {
    const person = personOf(state.current);
    if (!person || !text.trim()) return;
    try {
      const sent = await api("send", { user_id: person.user_id, text });
      upsert(person.user_id, sent.message, true);
    } catch (err) {
      toast("Not sent: " + err.message);
    }
  }

  async function tap(person, msg, button, el) {
    if (!person) {
      toast("This is a channel: pick a subscriber's chat to act.");
      return;
    }
    el.classList.add("pending");
    try {
      const result = await api("tap", {
        user_id: person.user_id,
        chat_id: msg.chat.id,
        message_id: msg.message_id,
        data: button.callback_data,
      });
      const answer = result.answer;
      if (answer && answer.text) {
        if (answer.show_alert) alertBox(state.world.bot.username || "bot", answer.text);
        else toast(answer.text);
      }
    } catch (err) {
      toast("Tap failed: " + err.message);
    } finally {
      el.classList.remove("pending");
    }
  }

  // ---------------------------------------------------------------- the Mini App, opened as the user

  // The emulator signs the user's initData (as Telegram does) and gives the launch URL; the page
  // plays the Telegram client: a phone-sized frame, a light or dark theme, closed on web_app_close.
  async function openApp(person, messageId, theme) {
    const wanted = theme || (state.app && state.app.person === person ? state.app.theme : "light");
    try {
      const result = await api("webapp", { user_id: person.user_id, message_id: messageId, theme: wanted });
      state.app = { person, messageId, theme: wanted };
      const frame = document.createElement("iframe");
      frame.id = "phone-frame";
      frame.title = "Mini App of " + person.name;
      frame.src = result.url;
      $("phone-screen").replaceChildren(frame);
      $("phone-title").textContent = `${person.name} · @${state.world.bot.username || "bot"}`;
      $("phone-theme").textContent = wanted === "dark" ? "☀️ Light" : "🌙 Dark";
      $("phone").hidden = false;
    } catch (err) {
      toast("Could not open the Mini App: " + err.message);
    }
  }

  function closeApp() {
    $("phone").hidden = true;
    $("phone-screen").replaceChildren();
    state.app = null;
  }

  window.addEventListener("message", (event) => {
    const frame = $("phone-frame");
    if (!frame || event.source !== frame.contentWindow) return;
    let message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (message && message.eventType === "web_app_close") closeApp();
  });

  let toastTimer = null;
  function toast(text) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, 3500);
  }

  function alertBox(title, text) {
    $("alert-title").textContent = title;
    $("alert-text").textContent = text;
    $("alert").hidden = false;
    $("alert-ok").focus();
  }

  // ---------------------------------------------------------------- live updates

  function connect() {
    const source = new EventSource("/sandbox/api/events");
    const live = $("pill-live");
    source.addEventListener("open", async () => {
      live.textContent = "● live";
      live.classList.add("on");
      await Promise.all([...state.chats.keys()].map(loadChat)).catch(() => {});
      renderChatList();
      renderMessages();
    });
    source.addEventListener("error", () => {
      live.textContent = "● reconnecting";
      live.classList.remove("on");
    });
    const handle = (isNew) => (event) => {
      const data = JSON.parse(event.data);
      upsert(data.chat_id, data.message, isNew);
    };
    source.addEventListener("message_sent", handle(true));
    source.addEventListener("user_message", handle(true));
    source.addEventListener("message_edited", handle(false));
    source.addEventListener("message_deleted", (event) => {
      const data = JSON.parse(event.data);
      remove(data.chat_id, data.message_id);
    });
  }

  async function refreshSignalClock() {
    try {
      const world = await api("world");
      state.nextSignalAt = world.next_signal_at;
      state.clockSkew = world.now * 1000 - Date.now();
    } catch (err) { /* the pill keeps its last value */ }
  }

  function tickClock() {
    const pill = $("pill-signal");
    if (!state.nextSignalAt) { pill.textContent = "Next demo signal: soon"; return; }
    const seconds = Math.round(state.nextSignalAt - (Date.now() + state.clockSkew) / 1000);
    pill.textContent = seconds > 0 ? `Next demo signal in ${seconds} s` : "Demo signal: posting…";
    if (seconds <= 0) refreshSignalClock();
  }

  // ---------------------------------------------------------------- start

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("composer-text");
    const text = input.value;
    input.value = "";
    send(text);
  });
  $("alert-ok").addEventListener("click", () => { $("alert").hidden = true; });
  $("composer-app").addEventListener("click", () => {
    const person = personOf(state.current);
    if (person) openApp(person, undefined, "light");
  });
  $("phone-close").addEventListener("click", closeApp);
  $("phone-theme").addEventListener("click", () => {
    if (state.app) openApp(state.app.person, state.app.messageId, state.app.theme === "dark" ? "light" : "dark");
  });

  async function start() {
    await loadWorld();
    const wanted = Number((location.hash.match(/chat=(-?\d+)/) || [])[1]);
    select(state.chats.has(wanted) ? wanted : state.chats.keys().next().value);
    connect();
    const refreshSidebar = () => Sidebar.refresh([...state.people.keys()]);
    refreshSidebar();
    setInterval(refreshSidebar, 2000);
    setInterval(tickClock, 1000);
    setInterval(refreshSignalClock, 15000);
    tickClock();
  }

  start().catch((err) => toast("Could not load the sandbox: " + err.message));
})();
