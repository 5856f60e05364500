// Taskloom dashboard: live run updates and "show more". Everything else is plain forms.
"use strict";

const POLL_MS = 1000;

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// A running run: swap in its changing part every second until it has finished. Open
// <details> stay open across updates; screen readers hear the run's status when it changes,
// not the whole box every second.
function followRun(box) {
  const url = box.dataset.live;
  const said = document.getElementById("run-status");
  let shown = null;
  const poll = async () => {
    let answer;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return setTimeout(poll, POLL_MS * 5);
      answer = await response.json();
    } catch (error) {
      return setTimeout(poll, POLL_MS * 5);
    }
    if (answer.html !== shown) {
      const open = new Set([...box.querySelectorAll("details[open] pre")].map((pre) => pre.id));
      box.innerHTML = answer.html;
      box.querySelectorAll("details pre").forEach((pre) => {
        if (open.has(pre.id)) pre.closest("details").open = true;
      });
      shown = answer.html;
    }
    if (said && box.dataset.status !== answer.status) said.textContent = `Run ${answer.status}`;
    box.dataset.status = answer.status;
    if (answer.finished) {
      delete box.dataset.live;
    } else {
      setTimeout(poll, POLL_MS);
    }
  };
  setTimeout(poll, POLL_MS);
}

// "Show more": append the next slice of a step's arguments or output.
async function showMore(button) {
  const offset = button.dataset.offset;
  button.disabled = true;
  const response = await fetch(`${button.dataset.more}?offset=${offset}`, { credentials: "same-origin" });
  const answer = await response.json();
  const target = document.getElementById(button.dataset.target);
  if (!response.ok) {
    button.textContent = answer.error || "Could not load more";
    return;
  }
  target.append(document.createTextNode(answer.text));
  if (answer.next === null) {
    button.remove();
  } else {
    button.dataset.offset = answer.next;
    button.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.more");
  if (button) showMore(button);
});

document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("[data-live]");
  if (box) followRun(box);
});

window.taskloom = { csrfToken };
