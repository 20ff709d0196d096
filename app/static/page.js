// The page's only script (a file, so that the CSP can forbid inline script). It does two
// things a plain form cannot: send the payload with the gateway's CSRF token in a header,
// and copy the raw claims. Everything it shows comes from the server's escaped HTML.
"use strict";

// Approuter-style CSRF: the gateway hands out the token for "x-csrf-token: fetch" and wants
// it back in the same header on every POST. Without a gateway (the app alone) there is none.
async function csrfToken() {
  const answer = await fetch(location.pathname, {
    method: "HEAD", credentials: "same-origin", headers: { "x-csrf-token": "fetch" },
  });
  return answer.headers.get("x-csrf-token");
}

function say(text) {
  document.getElementById("send-status").textContent = text;
}

async function send(form) {
  const button = form.querySelector("button[type=submit]");
  const type = form.querySelector("input[name=content_type]:checked").value;
  button.disabled = true;
  say("Sending…");
  try {
    const headers = { "Content-Type": type, Accept: "text/html" };
    const token = await csrfToken();
    if (token) headers["x-csrf-token"] = token;
    const answer = await fetch(location.pathname, {
      method: "POST", credentials: "same-origin", headers, body: form.elements.payload.value,
    });
    show(answer.status, await answer.text());
  } catch (error) {
    say("Not sent: " + error.message);
  } finally {
    button.disabled = false;
  }
}

// The answer is the whole page for this POST: its <main> replaces ours. DOMParser runs no
// script and loads nothing; the server escaped every value in it.
function show(status, html) {
  const page = new DOMParser().parseFromString(html, "text/html");
  const fresh = page.querySelector("main");
  if (fresh && !fresh.querySelector("#send")) {  // an error page of the app: say it, keep the page
    say("HTTP " + status + ": " + fresh.textContent.trim());
    return;
  }
  if (!fresh) {
    say(status === 401 || status === 403
      ? "HTTP " + status + ": your session has ended or was refused; reload the page to log in again."
      : "HTTP " + status + ": the gateway did not pass the request on.");
    return;
  }
  document.querySelector("main").replaceWith(fresh);
  document.title = page.title;
  say("Sent: HTTP " + status);
  document.getElementById("iflow-heading").focus();
}

// Central logout at the gateway: a POST with the CSRF token answers with the IdP's logout URL
// (approuter's logoutMethod POST); a gateway that logs out on GET gets a plain navigation.
async function logout(form) {
  try {
    const token = await csrfToken();
    const answer = await fetch(form.action, {
      method: "POST", credentials: "same-origin", headers: token ? { "x-csrf-token": token } : {},
    });
    const next = answer.ok ? new URL(await answer.text(), location.href) : null;
    if (next && (next.protocol === "https:" || next.protocol === "http:")) {
      location.assign(next.href);
      return;
    }
  } catch {
    // fall through to the plain navigation
  }
  location.assign(form.action);
}

document.addEventListener("submit", (event) => {
  if (event.target.id === "send") {
    event.preventDefault();
    send(event.target);
  } else if (event.target.id === "logout") {
    event.preventDefault();
    logout(event.target);
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const text = document.getElementById(button.dataset.copy).textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
});
