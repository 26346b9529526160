// A local stand-in for Telegram's telegram-web-app.js (MINIAPP_SCRIPT=local: the sandbox and the
// tests, which run offline). It implements the part of window.Telegram.WebApp this app uses, with
// Telegram's own protocol: the launch parameters arrive in the URL fragment (tgWebAppData,
// tgWebAppThemeParams, tgWebAppVersion, tgWebAppPlatform) and are kept in sessionStorage across
// reloads; the theme becomes --tg-theme-* CSS variables and a light/dark colorScheme; inside a
// frame, events go to the parent as JSON {eventType, eventData} messages and theme_changed /
// viewport_changed come back the same way. Production pages load Telegram's script instead.
"use strict";

(() => {
  const STORE = "__telegram__initParams";

  function hashParams(hash) {
    const out = {};
    const text = (hash || "").replace(/^#/, "");
    if (!text) return out;
    for (const part of text.split("&")) {
      const at = part.indexOf("=");
      if (at < 0) continue;
      try {
        out[decodeURIComponent(part.slice(0, at))] = decodeURIComponent(part.slice(at + 1));
      } catch (e) { /* a malformed pair is skipped, as Telegram's script does */ }
    }
    return out;
  }

  let params = hashParams(location.hash);
  try {
    if (params.tgWebAppData) sessionStorage.setItem(STORE, JSON.stringify(params));
    else params = JSON.parse(sessionStorage.getItem(STORE) || "{}");
  } catch (e) { /* no storage: the fragment is all there is */ }

  function unsafeData(raw) {
    const out = {};
    if (!raw) return out;
    for (const [key, value] of new URLSearchParams(raw)) {
      if (key === "user" || key === "receiver" || key === "chat") {
        try { out[key] = JSON.parse(value); } catch (e) { /* left out */ }
      } else {
        out[key] = value;
      }
    }
    return out;
  }

  function parseTheme(raw) {
    try {
      const theme = JSON.parse(raw || "{}");
      return theme && typeof theme === "object" ? theme : {};
    } catch (e) {
      return {};
    }
  }

  function isDark(color) {
    const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color || "");
    if (!m) return false;
    const [r, g, b] = m.slice(1).map((h) => parseInt(h, 16));
    return Math.sqrt(0.299 * r * r + 0.587 * g * g + 0.114 * b * b) < 120;
  }

  const handlers = {};
  const root = document.documentElement;
  const inFrame = window.parent != null && window.parent !== window;

  function postEvent(eventType, eventData) {
    if (inFrame) window.parent.postMessage(JSON.stringify({ eventType, eventData: eventData || {} }), "*");
  }

  function emit(name, ...args) {
    for (const fn of handlers[name] || []) {
      try { fn.apply(WebApp, args); } catch (e) { console.error(e); }
    }
  }

  function applyTheme(theme) {
    WebApp.themeParams = theme;
    WebApp.colorScheme = isDark(theme.bg_color) ? "dark" : "light";
    for (const [key, value] of Object.entries(theme)) {
      root.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), value);
    }
    root.style.setProperty("--tg-color-scheme", WebApp.colorScheme);
  }

  function applyViewport(height, stable) {
    WebApp.viewportHeight = height;
    WebApp.viewportStableHeight = stable;
    root.style.setProperty("--tg-viewport-height", height + "px");
    root.style.setProperty("--tg-viewport-stable-height", stable + "px");
  }

  const WebApp = {
    initData: params.tgWebAppData || "",
    initDataUnsafe: unsafeData(params.tgWebAppData),
    version: params.tgWebAppVersion || "6.0",
    platform: params.tgWebAppPlatform || "unknown",
    themeParams: {},
    colorScheme: "light",
    isExpanded: true,
    viewportHeight: window.innerHeight,
    viewportStableHeight: window.innerHeight,
    isVersionAtLeast(ver) {
      const a = String(this.version).split(".").map(Number);
      const b = String(ver).split(".").map(Number);
      for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
        const d = (a[i] || 0) - (b[i] || 0);
        if (d) return d > 0;
      }
      return true;
    },
    onEvent(name, fn) { (handlers[name] = handlers[name] || []).push(fn); },
    offEvent(name, fn) { handlers[name] = (handlers[name] || []).filter((f) => f !== fn); },
    ready() { postEvent("web_app_ready"); },
    expand() { postEvent("web_app_expand"); },
    close() { postEvent("web_app_close"); },
    setHeaderColor(color) { postEvent("web_app_set_header_color", { color }); },
    setBackgroundColor(color) { postEvent("web_app_set_background_color", { color }); },
    openLink(url) { window.open(url, "_blank", "noopener"); },
    openTelegramLink(url) { postEvent("web_app_open_tg_link", { path_full: String(url).replace(/^https:\/\/t\.me/, "") }); },
    HapticFeedback: {
      impactOccurred(style) { postEvent("web_app_trigger_haptic_feedback", { type: "impact", impact_style: style }); return this; },
      notificationOccurred(type) { postEvent("web_app_trigger_haptic_feedback", { type: "notification", notification_type: type }); return this; },
      selectionChanged() { postEvent("web_app_trigger_haptic_feedback", { type: "selection_change" }); return this; },
    },
    BackButton: {
      isVisible: false,
      show() { this.isVisible = true; postEvent("web_app_setup_back_button", { is_visible: true }); return this; },
      hide() { this.isVisible = false; postEvent("web_app_setup_back_button", { is_visible: false }); return this; },
      onClick(fn) { WebApp.onEvent("backButtonClicked", fn); return this; },
      offClick(fn) { WebApp.offEvent("backButtonClicked", fn); return this; },
    },
  };

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    let message;
    try { message = typeof event.data === "string" ? JSON.parse(event.data) : event.data; } catch (e) { return; }
    if (!message || typeof message.eventType !== "string") return;
    const data = message.eventData || {};
    if (message.eventType === "theme_changed" && data.theme_params) {
      applyTheme(data.theme_params);
      emit("themeChanged");
    } else if (message.eventType === "viewport_changed" && data.height) {
      applyViewport(Number(data.height), data.is_state_stable ? Number(data.height) : WebApp.viewportStableHeight);
      emit("viewportChanged", { isStateStable: Boolean(data.is_state_stable) });
    } else if (message.eventType === "back_button_pressed") {
      emit("backButtonClicked");
    }
  });

  applyTheme(parseTheme(params.tgWebAppThemeParams));
  applyViewport(window.innerHeight, window.innerHeight);
  window.addEventListener("resize", () => {
    applyViewport(window.innerHeight, window.innerHeight);
    emit("viewportChanged", { isStateStable: true });
  });

  window.Telegram = window.Telegram || {};
  window.Telegram.WebApp = WebApp;
})();
