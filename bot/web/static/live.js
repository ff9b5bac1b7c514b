// Live talk: the microphone goes to the server over WebRTC; the answer comes back as an audio track (and the
// talking head as a video track when an avatar is chosen); what is heard and said shows as it happens.
"use strict";
(() => {
  const stage = document.getElementById("stage");
  const startButton = document.getElementById("start");
  const stopButton = document.getElementById("stop");
  const state = document.getElementById("state");
  const problem = document.getElementById("problem");
  const note = document.getElementById("note");
  const log = document.getElementById("log");
  const voice = document.getElementById("voice");
  const face = document.getElementById("face");
  const level = document.getElementById("level");
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const wantsVideo = stage.dataset.video === "1";
  let pc = null;
  let mic = null;
  let meter = null;
  let user = null; // the bubble of what the person is saying now
  let bot = null; // the bubble of the answer being spoken

  function showProblem(message) {
    problem.textContent = message;
    problem.hidden = !message;
  }

  function setState(text) {
    state.textContent = text;
  }

  function bubble(role) {
    const div = document.createElement("div");
    div.className = `bubble ${role}`;
    const p = document.createElement("p");
    p.className = "text";
    div.append(p);
    log.append(div);
    div.scrollIntoView({ block: "end" });
    return div;
  }

  function setText(div, text) {
    div.querySelector(".text").textContent = text;
  }

  function onEvent(data) {
    const event = data.event;
    if (event === "speech") {
      setState("Listening…");
      if (!user) {
        user = bubble("user partial");
      }
    } else if (event === "partial") {
      if (!user) user = bubble("user partial");
      setText(user, data.text);
      user.dataset.partials = String(Number(user.dataset.partials || 0) + 1); // how many were shown
    } else if (event === "transcript") {
      if (!user) user = bubble("user");
      setText(user, data.text);
      user.classList.remove("partial");
      user.classList.add("final");
      user = null;
      bot = bubble("bot pending");
    } else if (event === "thinking") {
      setState("Thinking…");
    } else if (event === "queued") {
      setState(data.message);
    } else if (event === "sentence") {
      if (!bot) bot = bubble("bot");
      const span = document.createElement("span");
      span.className = "sentence";
      span.textContent = (data.index ? " " : "") + data.text;
      bot.querySelector(".text").append(span);
      bot.classList.remove("pending");
    } else if (event === "speaking") {
      setState("Speaking… interrupt whenever you like.");
    } else if (event === "interrupted") {
      if (bot && data.heard) {
        setText(bot, data.heard);
        bot.classList.add("cut");
      } else if (bot) {
        bot.remove();
      }
      bot = null;
      setState("Listening…");
    } else if (event === "done") {
      if (bot) bot.title = Object.entries(data.timings).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(", ");
    } else if (event === "listening") {
      if (user && !user.classList.contains("final")) user.remove();
      user = null;
      bot = null;
      setState(data.message || "Listening…");
    } else if (event === "note") {
      note.textContent = data.text;
      note.hidden = false;
    } else if (event === "failed") {
      if (bot) bot.remove();
      bot = null;
      user = null;
      showProblem(data.message);
      setState("Listening…");
    }
  }

  // How loud the answer is, as a bar (and, for anyone checking, the loudest level so far on the stage).
  function watchLevel(stream) {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let peak = 0;
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      peak = Math.max(peak, rms);
      stage.dataset.answerPeak = peak.toFixed(4);
      level.style.width = `${Math.min(100, rms * 400)}%`;
    }, 50);
    return () => { clearInterval(timer); context.close(); };
  }

  function gathered(connection) {
    // the server takes one offer with every candidate in it
    if (connection.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (connection.iceGatheringState === "complete") resolve(); };
      connection.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);
    });
  }

  async function start() {
    showProblem("");
    startButton.disabled = true;
    try {
      mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (_) {
      showProblem("Live talk needs the microphone: allow it for this page (browsers offer it on localhost and https).");
      startButton.disabled = false;
      return;
    }
    pc = new RTCPeerConnection();
    for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
    if (wantsVideo) pc.addTransceiver("video", { direction: "recvonly" });
    const events = pc.createDataChannel("events");
    events.addEventListener("message", (e) => onEvent(JSON.parse(e.data)));
    pc.addEventListener("track", (e) => {
      const stream = new MediaStream([e.track]);
      if (e.track.kind === "audio") {
        voice.srcObject = stream;
        voice.play().catch(() => {});
        meter = watchLevel(stream);
      } else {
        face.srcObject = stream;
        face.hidden = false;
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!pc) return;
      if (pc.connectionState === "connected") setState("Listening… talk whenever you like.");
      if (pc.connectionState === "failed") {
        showProblem("The connection to the server was lost. Press “Start talking” to talk again.");
        stop();
      }
    });
    setState("Connecting…");
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const response = await fetch("/live/offer", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.message || `The server answered ${response.status}.`);
      await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
      stage.dataset.session = body.session;
    } catch (error) {
      showProblem(error.message);
      stop();
      return;
    }
    stopButton.hidden = false;
    startButton.hidden = true;
  }

  function stop() {
    if (meter) meter();
    meter = null;
    if (pc) pc.close();
    pc = null;
    if (mic) for (const track of mic.getTracks()) track.stop();
    mic = null;
    voice.srcObject = null;
    face.srcObject = null;
    face.hidden = true;
    level.style.width = "0";
    startButton.hidden = false;
    startButton.disabled = false;
    stopButton.hidden = true;
    delete stage.dataset.session;
    if (!problem.hidden) setState("");
    else setState("Press “Start talking” and speak; interrupt the answer whenever you like.");
  }

  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", stop);
  document.body.dataset.ready = "1";
})();
