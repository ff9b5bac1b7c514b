// The chat page: send a recording, a file or text; show and play the reply's parts as they stream in.
"use strict";
(() => {
  const log = document.getElementById("log");
  const form = document.getElementById("compose");
  const fileInput = document.getElementById("file");
  const textInput = document.getElementById("text");
  const recordButton = document.getElementById("record");
  const speak = document.getElementById("speak");
  const problem = document.getElementById("problem");
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const maxBytes = Number(form.dataset.maxBytes);
  const maxMb = form.dataset.maxMb;
  let busy = false;

  function showProblem(message) {
    problem.textContent = message;
    problem.hidden = !message;
  }

  function bubble(role, text) {
    document.getElementById("empty")?.remove();
    const div = document.createElement("div");
    div.className = `bubble ${role}`;
    const p = document.createElement("p");
    p.className = "text";
    p.textContent = text;
    div.append(p);
    log.append(div);
    div.scrollIntoView({ block: "end" });
    return div;
  }

  function setBusy(on) {
    busy = on;
    for (const el of form.elements) el.disabled = on;
    form.classList.toggle("busy", on);
  }

  // Parts play one after another, each as soon as it arrives and the one before it has finished. They are not
  // shown: once the answer is spoken, one player holds the whole of it.
  const queue = [];
  let playing = null;
  function enqueue(media) {
    queue.push(media);
    if (!playing) playNext();
  }
  function playNext() {
    playing = queue.shift() || null;
    if (!playing) return;
    playing.addEventListener("ended", playNext, { once: true });
    playing.play().catch(() => playNext()); // autoplay refused: the whole answer's player stays for a click
  }

  function faceOf(turn) {
    if (!turn.face) {
      const video = document.createElement("video");
      video.className = "reply-video";
      video.muted = true;
      video.playsInline = true;
      video.preload = "auto";
      turn.bot.append(video);
      turn.face = video;
      turn.faceParts = {};
    }
    return turn.face;
  }

  // Shows the piece of sentence `index`'s face that covers where its voice (`audio`) is now, from that point.
  function showFace(turn, index, audio) {
    const pieces = (turn.faceParts && turn.faceParts[index]) || [];
    const piece = pieces.filter((p) => p.offset <= audio.currentTime + 0.05)
      .find((p) => audio.currentTime < p.offset + p.seconds);
    if (!piece) return;
    const video = turn.face;
    if (video.dataset.url !== piece.url) {
      video.src = piece.url;
      video.dataset.url = piece.url;
      video.onended = () => { // the next piece of the same sentence, if the voice is still on it
        if (turn.speaking && turn.speaking.index === index && !audio.ended) showFace(turn, index, audio);
      };
    }
    const go = () => {
      video.currentTime = Math.max(0, Math.min(audio.currentTime - piece.offset, video.duration || 0));
      video.play().catch(() => {});
    };
    if (video.readyState >= 1) go();
    else video.addEventListener("loadedmetadata", go, { once: true });
  }

  function parseEvent(chunk) {
    let event = "message";
    const data = [];
    for (const line of chunk.split("\n")) {
      if (line.startsWith(":")) continue;
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
  }

  function status(turn, text) {
    turn.status.textContent = text;
    turn.status.hidden = !text;
  }

  function handle(turn, { event, data }) {
    if (event === "queued") {
      status(turn, data.message);
    } else if (event === "transcript") {
      turn.user.querySelector(".text").textContent = data.text;
      turn.user.classList.remove("pending");
      turn.user.dataset.language = data.language;
      status(turn, "Thinking…");
    } else if (event === "sentence") {
      const span = document.createElement("span");
      span.className = "sentence";
      span.dataset.index = data.index;
      span.textContent = (data.index ? " " : "") + data.text;
      turn.text.append(span);
      turn.bot.classList.remove("pending");
      status(turn, "");
    } else if (event === "audio") {
      const part = new Audio(data.url);
      part.preload = "auto";
      part.addEventListener("play", () => {
        turn.speaking = { index: data.index, audio: part };
        showFace(turn, data.index, part);
      });
      enqueue(part);
    } else if (event === "video_part") {
      // the talking head, a sentence at a time: each part is shown with its sentence's voice, muted (the voice
      // plays from the audio parts), caught up to where that voice is when the part comes late
      const face = faceOf(turn);
      (turn.faceParts[data.index] ||= []).push(data); // a sentence may come in pieces: its first second alone
      const now = turn.speaking;
      if (now && now.index === data.index && !now.audio.ended) showFace(turn, data.index, now.audio);
      else if (!face.src) face.src = data.url;
    } else if (event === "speech") {
      const audio = document.createElement("audio");
      audio.className = "reply-audio";
      audio.controls = true;
      audio.preload = "auto";
      audio.src = data.url;
      turn.parts.append(audio);
    } else if (event === "video") {
      const video = document.createElement("video");
      video.className = "reply-video";
      video.controls = true;
      video.playsInline = true;
      video.src = data.url;
      video.preload = "auto";
      // not started by itself: it speaks the whole answer again, which the parts have just played
      turn.bot.append(video);
    } else if (event === "note") {
      const note = document.createElement("p");
      note.className = "note hint";
      note.textContent = data.text;
      turn.bot.append(note);
    } else if (event === "done") {
      status(turn, "");
      turn.bot.classList.add("done");
      turn.bot.title = Object.entries(data.timings).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(", ");
    } else if (event === "failed") {
      turn.bot.remove();
      showProblem(data.message);
    }
  }

  function newTurnId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function errorMessage(response) {
    let message = `The server answered ${response.status}.`;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    return message;
  }

  // Reads a turn's events; returns how many it has read in all. Throws when the connection drops.
  async function readEvents(response, turn) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        turn.read += 1; // comments count too: the server numbers every chunk it sends
        const parsed = parseEvent(chunk);
        if (parsed) {
          handle(turn, parsed);
          if (parsed.event === "done" || parsed.event === "failed") turn.over = true;
        }
      }
    }
  }

  async function send(body, userText) {
    if (busy) return;
    showProblem("");
    setBusy(true);
    const user = bubble("user pending", userText);
    const bot = bubble("bot pending", "");
    const turn = { id: newTurnId(), user, bot, text: bot.querySelector(".text"), parts: document.createElement("div"),
                   status: document.createElement("p"), read: 0, over: false };
    turn.parts.className = "parts";
    turn.status.className = "status";
    status(turn, body.has("audio") ? "Listening…" : "Thinking…");
    bot.append(turn.status, turn.parts);
    body.append("speak", speak.checked ? "1" : "0");
    body.append("turn", turn.id);
    try {
      const response = await fetch("/chat/turn", { method: "POST", body, headers: { "X-CSRF-Token": csrf } });
      if (!response.ok) {
        user.remove();
        bot.remove();
        showProblem(await errorMessage(response));
        return;
      }
      // A dropped connection loses nothing: the server keeps the turn, and the rest is asked for by its id.
      let stream = response;
      for (let attempt = 0; ; attempt++) {
        try {
          await readEvents(stream, turn);
          if (turn.over) break;
        } catch (err) {
          if (attempt >= 5) throw err;
        }
        if (turn.over) break;
        await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
        stream = await fetch(`/chat/turn/${turn.id}?after=${turn.read}`, { headers: { "X-CSRF-Token": csrf } });
        if (!stream.ok) { bot.remove(); showProblem(await errorMessage(stream)); break; }
      }
    } catch (err) {
      showProblem("The connection to the server was lost. Please try again.");
    } finally {
      setBusy(false);
      user.classList.remove("pending");
    }
  }

  function sendAudio(blob, name) {
    if (blob.size > maxBytes) {
      showProblem(`That file is ${(blob.size / 1048576).toFixed(1)} MiB; the limit is ${maxMb} MiB.`);
      return;
    }
    const body = new FormData();
    body.append("audio", blob, name);
    send(body, "(voice message)");
  }

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    if (file) sendAudio(file, file.name);
    fileInput.value = "";
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = textInput.value.trim();
    if (!text) return;
    const body = new FormData();
    body.append("text", text);
    textInput.value = "";
    send(body, text);
  });

  // Hold to record: pointer or keyboard (space/enter) down starts, up stops and sends.
  let recorder = null;
  let started = 0;
  let holding = false; // released before the microphone opened: stop as soon as it has

  async function startRecording() {
    if (busy || recorder) return;
    if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
      showProblem("This browser cannot record here (a microphone needs https or localhost). Upload a file instead.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (_) {
      showProblem("The microphone is not available. Allow it in the browser, or upload a file instead.");
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((t) => t.stop());
      const seconds = (performance.now() - started) / 1000;
      const type = recorder.mimeType || "audio/webm";
      recorder = null;
      recordButton.classList.remove("recording");
      if (seconds < 0.4) {
        showProblem("Hold the button while you speak.");
        return;
      }
      sendAudio(new Blob(chunks, { type }), type.includes("ogg") ? "recording.ogg" : "recording.webm");
    });
    started = performance.now();
    recorder.start();
    recordButton.classList.add("recording");
    showProblem("");
    if (!holding) stopRecording();
  }
  function stopRecording() {
    holding = false;
    if (recorder && recorder.state === "recording") recorder.stop();
  }
  recordButton.addEventListener("pointerdown", (e) => { e.preventDefault(); holding = true; startRecording(); });
  for (const name of ["pointerup", "pointerleave", "pointercancel"]) recordButton.addEventListener(name, stopRecording);
  recordButton.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) { e.preventDefault(); holding = true; startRecording(); }
  });
  recordButton.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") stopRecording(); });

  // forgetting cannot be undone: ask first
  document.querySelector("form.forget")?.addEventListener("submit", (e) => {
    if (!window.confirm("Forget this whole conversation? This cannot be undone.")) e.preventDefault();
  });

  // choosing a voice or persona takes effect at once
  const choices = document.getElementById("choices");
  for (const select of choices.querySelectorAll("select")) select.addEventListener("change", () => choices.submit());

  document.body.dataset.ready = "1";
})();
