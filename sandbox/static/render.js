// Telegram messages -> DOM, the way a Telegram client shows them.
// Text is never parsed as HTML: it is cut at the entities' offsets (UTF-16 code units, which is
// what JavaScript strings index by) and every piece goes in as a text node.
"use strict";

const Render = (() => {
  const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:", "tg:"]);

  function safeUrl(raw) {
    if (typeof raw !== "string" || !raw) return null;
    let candidate = raw;
    if (!/^[a-z][a-z0-9+.-]*:/i.test(candidate)) candidate = "http://" + candidate;
    try {
      const url = new URL(candidate);
      return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(href) {
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  // The element for one entity: {outer, inner} (inner receives the entity's text).
  function elementFor(entity, part, hooks) {
    const make = (tag, cls) => {
      const el = document.createElement(tag);
      if (cls) el.className = cls;
      return { outer: el, inner: el };
    };
    switch (entity.type) {
      case "bold": return make("b");
      case "italic": return make("i");
      case "underline": return make("u");
      case "strikethrough": return make("s");
      case "code": return make("code");
      case "spoiler": {
        const el = make("span", "spoiler");
        el.outer.addEventListener("click", () => el.outer.classList.add("revealed"));
        return el;
      }
      case "pre": {
        const pre = document.createElement("pre");
        const code = document.createElement("code");
        if (entity.language) code.dataset.language = String(entity.language);
        pre.appendChild(code);
        return { outer: pre, inner: code };
      }
      case "blockquote":
      case "expandable_blockquote": return make("blockquote");
      case "text_link":
      case "url": {
        const href = safeUrl(entity.type === "url" ? part : entity.url);
        if (!href) return make("span");
        const a = link(href);
        return { outer: a, inner: a };
      }
      case "email": {
        const href = safeUrl("mailto:" + part);
        if (!href) return make("span");
        const a = link(href);
        return { outer: a, inner: a };
      }
      case "bot_command": {
        const el = make("span", "command");
        if (hooks && hooks.onCommand) {
          el.outer.setAttribute("role", "button");
          el.outer.tabIndex = 0;
          el.outer.addEventListener("click", () => hooks.onCommand(part.split("@")[0]));
        }
        return el;
      }
      case "mention":
      case "text_mention":
      case "hashtag":
      case "cashtag": return make("span", "mention");
      default: return make("span");
    }
  }

  function build(parent, text, start, end, entities, hooks) {
    let pos = start;
    let i = 0;
    while (i < entities.length) {
      const e = entities[i];
      if (e.offset < pos) { i += 1; continue; } // overlaps an earlier one: shown unformatted
      if (e.offset >= end) break;
      parent.appendChild(document.createTextNode(text.slice(pos, e.offset)));
      const eEnd = Math.min(e.offset + e.length, end);
      const inner = [];
      let j = i + 1;
      while (j < entities.length && entities[j].offset < eEnd) {
        if (entities[j].offset + entities[j].length <= eEnd) inner.push(entities[j]);
        j += 1;
      }
      const el = elementFor(e, text.slice(e.offset, eEnd), hooks);
      build(el.inner, text, e.offset, eEnd, inner, hooks);
      parent.appendChild(el.outer);
      pos = eEnd;
      i = j;
    }
    parent.appendChild(document.createTextNode(text.slice(pos, end)));
  }

  // A fragment with `text` formatted by its `entities` (Bot API MessageEntity objects).
  function formatted(text, entities, hooks) {
    const fragment = document.createDocumentFragment();
    const source = typeof text === "string" ? text : "";
    const sorted = (entities || [])
      .filter((e) => Number.isInteger(e.offset) && Number.isInteger(e.length) && e.length > 0)
      .slice()
      .sort((a, b) => a.offset - b.offset || b.length - a.length);
    build(fragment, source, 0, source.length, sorted, hooks);
    return fragment;
  }

  const COLORS = ["#e17076", "#7bc862", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774"];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A round avatar with the name's initials, its colour picked by id (as Telegram does).
  function avatar(name, id) {
    const initials = name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
    const node = el("div", "avatar", initials);
    node.style.background = COLORS[Math.abs(Number(id)) % COLORS.length];
    return node;
  }

  function time(unix) {
    const d = new Date(unix * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function largestPhoto(sizes) {
    return (sizes || []).reduce((best, s) => (!best || s.width * s.height > best.width * best.height ? s : best), null);
  }

  // One message bubble. hooks: {onTap(message, button), onWebApp(message, button), onCommand(text), fileUrl(file_id)}
  function message(msg, hooks, outgoing) {
    const row = document.createElement("div");
    row.className = "msg-row " + (outgoing ? "out" : "in");
    row.dataset.messageId = String(msg.message_id);
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    row.appendChild(bubble);

    if (msg.photo) {
      const best = largestPhoto(msg.photo);
      if (best) {
        const img = document.createElement("img");
        img.className = "photo";
        img.alt = "photo";
        img.loading = "lazy";
        img.src = hooks.fileUrl(best.file_id);
        bubble.appendChild(img);
      }
    }
    if (msg.document) {
      const a = link(hooks.fileUrl(msg.document.file_id));
      a.className = "document";
      a.textContent = "📄 " + (msg.document.file_name || "document");
      bubble.appendChild(a);
    }
    const body = msg.text !== undefined ? [msg.text, msg.entities] : [msg.caption, msg.caption_entities];
    if (body[0]) {
      const text = document.createElement("div");
      text.className = "text";
      text.appendChild(formatted(body[0], body[1], hooks));
      bubble.appendChild(text);
    }
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (msg.edit_date ? "edited " : "") + time(msg.edit_date || msg.date);
    bubble.appendChild(meta);

    const rows = (msg.reply_markup && msg.reply_markup.inline_keyboard) || [];
    if (rows.length) {
      const kbd = document.createElement("div");
      kbd.className = "keyboard";
      for (const buttons of rows) {
        const line = document.createElement("div");
        line.className = "kbd-row";
        for (const button of buttons) {
          let el;
          const href = button.url ? safeUrl(button.url) : null;
          if (href) {
            el = link(href);
            el.className = "kbd-btn kbd-link";
          } else {
            el = document.createElement("button");
            el.type = "button";
            el.className = "kbd-btn";
            if (button.callback_data !== undefined) {
              el.addEventListener("click", () => hooks.onTap(msg, button, el));
            } else if (button.web_app && hooks.onWebApp) {
              el.classList.add("kbd-webapp");
              el.addEventListener("click", () => hooks.onWebApp(msg, button));
            } else {
              el.disabled = true;
            }
          }
          el.textContent = button.text;
          line.appendChild(el);
        }
        kbd.appendChild(line);
      }
      row.appendChild(kbd);
    }
    return row;
  }

  return { avatar, el, formatted, message, safeUrl };
})();
