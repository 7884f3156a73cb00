// The token dashboard's behaviour. No build step, no dependencies. Without this script every form
// still works (full page answers, a confirmation page before a revoke); with it, create and revoke
// happen in place, the new token gets a Copy button, and a revoke is confirmed in a dialog.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const rows = document.getElementById("token-rows");
  const noTokens = document.getElementById("no-tokens");

  async function send(form, extra) {
    const body = new FormData(form);
    for (const [k, v] of Object.entries(extra || {})) body.set(k, v);
    const response = await fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(body),
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      credentials: "same-origin",
    });
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON: handled below */ }
    if (!response.ok) {
      const message = data?.error?.message || `The request failed (${response.status}).`;
      throw new Error(message);
    }
    return data;
  }

  function rowFrom(html) {
    const t = document.createElement("tbody");
    t.innerHTML = html.trim();
    return t.firstElementChild;
  }

  // -- create ------------------------------------------------------------------------------------
  const createForm = document.getElementById("create-form");
  const created = document.getElementById("created");
  const createdName = document.getElementById("created-name");
  const tokenField = document.getElementById("new-token");
  const createError = document.getElementById("create-error");
  const copyStatus = document.getElementById("copy-status");
  createForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    createError.hidden = true;
    const button = createForm.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const data = await send(createForm);
      tokenField.value = data.secret;
      createdName.textContent = `“${data.token.name}”`;
      copyStatus.textContent = "";
      created.hidden = false;
      rows.prepend(rowFrom(data.row_html));
      noTokens.hidden = true;
      createForm.reset();
      tokenField.focus();
      tokenField.select();
    } catch (err) {
      createError.textContent = err.message;
      createError.hidden = false;
    } finally {
      button.disabled = false;
    }
  });

  document.getElementById("copy-token")?.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(tokenField.value);
      copyStatus.textContent = "Copied to the clipboard.";
    } catch (_) {
      tokenField.select();
      copyStatus.textContent = "Press Ctrl+C (⌘C) to copy the selected token.";
    }
  });

  // -- revoke, after a confirmation ----------------------------------------------------------------
  const dialog = document.getElementById("confirm-revoke");
  const confirmError = document.getElementById("confirm-error");
  let pending = null;
  rows?.addEventListener("submit", (event) => {
    const form = event.target.closest("form.revoke-form");
    if (!form || !dialog?.showModal) return; // no <dialog>: the server asks instead
    event.preventDefault();
    const row = form.closest("tr");
    pending = { form, row, opener: form.querySelector("button") };
    document.getElementById("confirm-name").textContent = row.dataset.name;
    document.getElementById("confirm-prefix").textContent = `${row.dataset.prefix}…`;
    confirmError.hidden = true;
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
  document.getElementById("confirm-cancel")?.addEventListener("click", () => dialog.close());
  dialog?.addEventListener("close", () => {
    if (pending && pending.opener.isConnected) pending.opener.focus();
  });
  document.getElementById("confirm-yes")?.addEventListener("click", async () => {
    if (!pending) return;
    const { form, row } = pending;
    try {
      const data = await send(form, { confirm: "yes" });
      const fresh = rowFrom(data.row_html);
      row.replaceWith(fresh);
      pending = null;
      dialog.close();
      fresh.querySelector("th")?.setAttribute("tabindex", "-1");
      fresh.querySelector("th")?.focus();
    } catch (err) {
      confirmError.textContent = err.message;
      confirmError.hidden = false;
    }
  });
})();
