// Admin uploads: refuse an oversized file before it travels; the server checks again.
"use strict";
for (const input of document.querySelectorAll("input[type=file][data-max-bytes]")) {
  input.addEventListener("change", () => {
    const limit = Number(input.dataset.maxBytes);
    const big = [...input.files].find((f) => f.size > limit);
    input.setCustomValidity(big
      ? `"${big.name}" is ${(big.size / 1e6).toFixed(1)} MB; the limit is ${Math.round(limit / 1048576)} MB.`
      : "");
    input.reportValidity();
  });
}
