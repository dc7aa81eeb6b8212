// vitals dashboard: live state changes from /events (server-sent events). The pages work
// without this script; it only redraws state pills in place and says when the connection
// to the monitor is lost. It never inserts HTML: text goes through textContent.
"use strict";
(function () {
  const url = document.body.dataset.live;
  if (!url || !window.EventSource) return;
  const notice = document.getElementById("connection");
  const announce = document.getElementById("announce");
  let source = null;
  let everOpen = false;

  function redraw(el, t) {
    const pill = el.querySelector(".state");
    if (pill) {
      pill.className = "state st-" + t.class;
      const icon = pill.querySelector(".state-icon");
      const text = pill.querySelector(".state-text");
      if (icon) icon.textContent = t.symbol;
      if (text) text.textContent = t.label;
    }
    const since = el.querySelector("[data-since]");
    if (since && t.ago) {
      since.textContent = t.ago;
      if (t.since) since.setAttribute("datetime", t.since);
    }
    const blocked = el.querySelector("[data-blocked]");
    if (blocked) {
      const roots = t.blocked_by || [];
      blocked.textContent = "blocked by " + roots.join(", ");
      blocked.hidden = roots.length === 0;
    }
    el.classList.remove("changed");
    void el.offsetWidth; // restart the highlight animation
    el.classList.add("changed");
    const note = el.querySelector(".live-note");
    if (note) note.hidden = false;
  }

  function connect() {
    source = new EventSource(url);
    source.onopen = function () {
      notice.hidden = true;
      // After an outage the page may have missed changes: reload once to catch up.
      if (everOpen && document.body.dataset.stale === "1") location.reload();
      everOpen = true;
    };
    source.onerror = function () {
      notice.hidden = false;
      document.body.dataset.stale = "1";
      // The browser retries by itself while the stream is CONNECTING; a CLOSED one must be
      // reopened by hand (for instance after a 401 or a non-event-stream answer).
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    };
    source.addEventListener("target", function (event) {
      let t;
      try { t = JSON.parse(event.data); } catch (e) { return; }
      const matches = document.querySelectorAll('[data-target="' + CSS.escape(t.id) + '"]');
      matches.forEach(function (el) { redraw(el, t); });
      if (matches.length > 0 && announce) announce.textContent = t.name + " is now " + t.label;
      const stale = document.querySelector(".stale-note");
      if (stale) stale.hidden = false;
    });
    source.addEventListener("reload", function () { location.reload(); });
  }
  connect();
})();
