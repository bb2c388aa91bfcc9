// The run dialog (<dialog id="run-dialog">). htmx fills it; this opens it as a modal once filled, and closing it
// (Close, Escape) empties it, so nothing inside polls any more. No inline script: the CSP allows only files.
document.addEventListener("htmx:afterSwap", (event) => {
  const dialog = document.getElementById("run-dialog");
  if (dialog && event.detail.target === dialog && !dialog.open) {
    dialog.showModal();
  }
});
document.addEventListener("click", (event) => {
  const closer = event.target.closest("[data-close-dialog]");
  if (closer) {
    closer.closest("dialog").close();
  }
});
// "close" does not bubble; listen while it goes down.
document.addEventListener("close", (event) => {
  if (event.target.id === "run-dialog") {
    event.target.replaceChildren();
    const opener = document.querySelector("[data-dialog-opener='true']");
    if (opener) {
      opener.removeAttribute("data-dialog-opener");
      opener.focus();
    }
  }
}, true);
// Remember which Run button opened the dialog, to give it the focus back when the dialog closes.
document.addEventListener("htmx:beforeRequest", (event) => {
  const source = event.detail.elt;
  if (source && source.getAttribute("hx-target") === "#run-dialog") {
    source.setAttribute("data-dialog-opener", "true");
  }
});
