// The workflow editor (app/templates/editor/). htmx posts each form and swaps the section; this file only adds what
// htmx does not: a warning before leaving with typed-but-not-applied edits, the key following the name on the New
// workflow form, focus on the section's title after moving to another section, and the side list closed on a
// narrow screen, and the focus kept after a change. No inline script: the CSP allows only files.
(() => {
  const dirty = () => document.querySelector("form[data-editor-form][data-dirty]") !== null;

  document.addEventListener("input", (event) => {
    const form = event.target.closest && event.target.closest("form[data-editor-form]");
    if (form) form.setAttribute("data-dirty", "");
  });
  // A form that was sent is no longer dirty (its answer replaces it, or the page goes on to the next one).
  document.addEventListener("submit", (event) => {
    if (event.target.matches("form[data-editor-form]")) event.target.removeAttribute("data-dirty");
  }, true);
  document.addEventListener("htmx:beforeRequest", (event) => {
    const form = event.detail.elt.closest && event.detail.elt.closest("form[data-editor-form]");
    if (form && event.detail.elt === form) form.removeAttribute("data-dirty");
  });

  window.addEventListener("beforeunload", (event) => {
    if (dirty()) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  // Moving to another section swaps the page's middle without unloading it: ask there too.
  document.addEventListener("htmx:confirm", (event) => {
    const source = event.detail.elt;
    if (!source.hasAttribute("data-nav") || !dirty()) return;
    event.preventDefault();
    if (window.confirm("You have typed changes that are not applied yet. Leave them?")) {
      event.detail.issueRequest(true);
    }
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    const source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (source && source.hasAttribute && source.hasAttribute("data-nav")) {
      const title = document.getElementById("editor-section-title");
      if (title) title.focus();
    }
  });

  // A change whose button the answer does not have again (Remove, Add step) leaves the focus nowhere: put it on the
  // section's title, so the keyboard goes on from there.
  const focusLost = () => {
    const active = document.activeElement;
    return active === null || active === document.body || !active.isConnected;
  };
  document.addEventListener("htmx:afterSettle", () => {
    const title = document.getElementById("editor-section-title");
    if (title && focusLost()) title.focus();
  });

  const side = document.getElementById("editor-side-list");
  if (side && window.matchMedia("(max-width: 900px)").matches) side.removeAttribute("open");

  // New workflow: the key follows the name until someone types a key of their own.
  const form = document.querySelector("form[data-new-workflow]");
  if (form) {
    const name = form.querySelector("[name=name]");
    const key = form.querySelector("[name=key]");
    let own = key.value !== "";
    // As the server makes one (app.services.workflows.drafts.slug): accents dropped, at most 70 characters.
    const slug = (text) => text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 70).replace(/-+$/, "");
    key.addEventListener("input", () => { own = key.value !== ""; });
    name.addEventListener("input", () => { if (!own) key.value = slug(name.value); });
    // A name typed (or restored by the browser) before this script ran has a key to follow too.
    if (!own && name.value) key.value = slug(name.value);
  }
})();
