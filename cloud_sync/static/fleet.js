// Refreshes the fleet page in place: fetches it again (with the session cookie) and
// swaps the content, so the tables and charts follow the fleet without a reload that
// loses the scroll position. A failed refresh shows a banner and keeps the last view.
"use strict";
(function () {
  const POLL_MS = Number(new URLSearchParams(location.search).get("poll_ms")) || 15000;
  const state = { updates: 0, lastError: null };
  window.fleetPage = state;
  const banner = document.getElementById("fleet-banner");

  function say(message) {
    banner.textContent = message || "";
    banner.classList.toggle("hidden", !message);
  }

  async function refresh() {
    try {
      const r = await fetch(location.pathname + location.search, { credentials: "same-origin", cache: "no-store" });
      if (r.status === 401) { say("Your session has ended: reload the page to log in again."); return; }
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      const main = doc.getElementById("fleet-main");
      if (!main) throw new Error("unexpected page");
      // An alarm's reason the reader unfolded stays unfolded.
      const unfolded = new Set([...document.querySelectorAll("details[data-reason][open]")].map((d) => d.dataset.reason));
      for (const d of main.querySelectorAll("details[data-reason]")) d.open = unfolded.has(d.dataset.reason);
      document.getElementById("fleet-main").replaceChildren(...main.childNodes);
      const stamp = document.getElementById("fleet-updated");
      if (stamp) stamp.textContent = new Date().toLocaleTimeString();
      state.updates += 1;
      state.lastError = null;
      say("");
    } catch (e) {
      state.lastError = String(e);
      say(`Cannot reach cloud-sync (${e.message || e}); retrying.`);
    }
    setTimeout(refresh, POLL_MS);
  }

  setTimeout(refresh, POLL_MS);
})();
