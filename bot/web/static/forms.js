// Admin uploads: refuse an oversized file before it travels (the server checks again), and show the upload's
// progress, since a training video can take minutes to send.
"use strict";
(() => {
  const MIB = 1048576;
  const mib = (bytes) => (bytes / MIB).toFixed(1);

  for (const input of document.querySelectorAll("input[type=file][data-max-bytes]")) {
    input.addEventListener("change", () => {
      const limit = Number(input.dataset.maxBytes);
      const big = [...input.files].find((f) => f.size > limit);
      input.setCustomValidity(big ? `"${big.name}" is ${mib(big.size)} MiB; the limit is ${Math.round(limit / MIB)} MiB.` : "");
      input.reportValidity();
    });
  }

  // what cannot be undone asks first
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }

  for (const form of document.querySelectorAll("form[enctype='multipart/form-data']")) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const bar = document.createElement("progress");
      const note = document.createElement("p");
      note.className = "upload-status";
      note.setAttribute("role", "status");
      form.querySelector(".upload-progress")?.remove();
      const box = document.createElement("div");
      box.className = "upload-progress";
      box.append(bar, note);
      form.append(box);
      const body = new FormData(form);
      for (const el of form.elements) el.disabled = true;
      const xhr = new XMLHttpRequest();
      let ticking = 0;
      xhr.upload.addEventListener("progress", (p) => {
        if (!p.lengthComputable) return;
        bar.max = p.total;
        bar.value = p.loaded;
        if (p.loaded < p.total) {
          note.textContent = `Uploading: ${mib(p.loaded)} of ${mib(p.total)} MiB`;
          return;
        }
        if (ticking) return;
        // the server now works on the file (transcribing recordings takes about a minute): say what, and
        // count the seconds, so a long wait never looks like a stuck page
        bar.removeAttribute("value");
        const doing = form.dataset.working || "Uploaded; checking the file";
        const since = Date.now();
        const show = () => { note.textContent = `${doing}… ${Math.round((Date.now() - since) / 1000)} s`; };
        show();
        ticking = window.setInterval(show, 1000);
      });
      xhr.addEventListener("load", () => {
        // the server answered with its page after the redirect; opening that page shows the notice it left
        window.location.assign(xhr.responseURL || form.action);
      });
      xhr.addEventListener("error", () => {
        window.clearInterval(ticking);
        for (const el of form.elements) el.disabled = false;
        box.remove();
        const problem = document.createElement("p");
        problem.className = "notice error upload-progress";
        problem.setAttribute("role", "alert");
        problem.textContent = "The upload did not get through. Please try again.";
        form.append(problem);
      });
      xhr.open("POST", form.action);
      // tells the page the redirect leads to that a browser will open it next: its notice waits for that
      xhr.setRequestHeader("X-Doppel-Upload", "1");
      xhr.send(body);
      note.textContent = "Uploading…";
    });
  }
})();
