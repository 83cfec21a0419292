/*
 * Direct uploads of datasets from the browser to the external S3 store (dual_storage_app).
 *
 * Enhances every [data-dual-upload] element rendered by DirectUploadWidget
 * (dual_storage_app/uploads/forms.py). The file never goes through Django: the server
 * hands out presigned part URLs and the browser PUTs the parts to the store itself.
 *
 *   1. POST data-start-url {name, size, type, last_modified}: a new multipart session, or
 *      the user's unfinished one for the same file (resumed after a reload or a closed tab).
 *   2. GET urls.parts: what the store already holds, with each part's signed SHA-256.
 *   3. Each part is read and hashed (WebCrypto SHA-256); a part the store holds with the
 *      same hash is skipped; the others are signed in batches (urls.sign) and PUT with the
 *      returned headers (x-amz-checksum-sha256, so the store refuses a damaged part).
 *   4. POST urls.complete with every part's hash, then GET urls.detail every second until
 *      the server has verified the whole object.
 *
 * At most MAX_IN_FLIGHT parts travel at once, and at most MAX_READING parts are in memory
 * (being hashed): PUT bodies are file slices the browser streams from disk. A part the
 * store calls damaged (400) is read, hashed and sent again; a network failure is retried
 * with backoff, then the upload pauses until Resume. Pause, Resume and Cancel are buttons.
 *
 * For tests and scripts the root element carries data-state (idle, uploading, paused,
 * completing, verifying, done, corrupt, error, cancelled), data-session-id,
 * data-dataset-id, data-part-count, data-parts-sent (PUT requests sent in this run),
 * data-parts-uploaded (PUTs the store accepted) and data-parts-skipped (parts it held).
 *
 * No dependencies, no build step; every text inserted goes in through textContent.
 */
(function () {
  "use strict";

  if (window.DualStorageUpload) {
    window.DualStorageUpload.enhanceAll(document);
    return;
  }

  const settings = {
    maxInFlight: 4, // parts being PUT at once
    maxReading: 2, // parts read into memory and hashed at once
    lookahead: 8, // hashed parts waiting to be signed or sent (numbers only, no bytes)
    partTries: 5, // tries of one part before the upload pauses (network) or fails
    retryDelays: [1000, 2000, 4000, 8000], // ms between tries of a part or an API call
    pollMs: 1000, // how often the verification is polled after completing
    speedWindowMs: 5000, // the moving average of the speed
    renewBeforeMs: 30000, // sign again when a URL expires sooner than this
    stallMs: 60000, // a PUT that sent nothing for this long is abandoned and tried again
  };

  const BUSY = new Set(["uploading", "paused", "error", "completing"]);

  // -- small helpers -----------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.name = "ApiError";
      this.status = status;
    }
  }

  class NetworkError extends Error {
    constructor(message) {
      super(message || "network error");
      this.name = "NetworkError";
    }
  }

  class Stale extends Error {
    constructor() {
      super("stale");
      this.name = "Stale";
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function retryDelay(tries) {
    const delays = settings.retryDelays;
    return delays[Math.min(tries, delays.length) - 1] || 0;
  }

  function base64(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 1) {
      text += String.fromCharCode(bytes[i]);
    }
    return window.btoa(text);
  }

  function formatBytes(bytes) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = Math.max(0, bytes);
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    if (unit === 0) {
      return `${Math.round(value)} ${value === 1 ? "byte" : "bytes"}`;
    }
    return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
  }

  function formatDuration(seconds) {
    const s = Math.max(1, Math.round(seconds));
    if (s < 60) {
      return `${s} s`;
    }
    if (s < 3600) {
      return `${Math.floor(s / 60)} min ${s % 60} s`;
    }
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function csrfToken(root) {
    const form = root.closest("form");
    const input = (form || document).querySelector("input[name=csrfmiddlewaretoken]");
    if (input && input.value) {
      return input.value;
    }
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function sameOriginPath(url) {
    // Only links into this site (a path, or this origin): never a javascript: URL.
    if (typeof url !== "string" || !url) {
      return null;
    }
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.origin === window.location.origin ? parsed.href : null;
    } catch (error) {
      return null;
    }
  }

  /** One JSON request to Django; throws ApiError (with the server's message) or NetworkError. */
  async function api(root, method, url, body) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrfToken(root);
      init.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new NetworkError();
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const message =
        data && typeof data.error === "string" && data.error
          ? data.error
          : `The server answered ${response.status} ${response.statusText}`.trim() + ".";
      throw new ApiError(message, response.status);
    }
    if (data === null || typeof data !== "object" || response.redirected) {
      throw new ApiError(
        "The server did not answer as expected (are you still logged in?).",
        response.status,
      );
    }
    return data;
  }

  // -- forms: submit buttons are disabled while an upload runs -----------------------------

  const busyWidgets = new WeakMap(); // form -> Set of busy widgets

  function submitButtons(form) {
    return Array.from(
      form.querySelectorAll("input[type=submit], button[type=submit], button:not([type])"),
    ).filter((button) => !button.closest("[data-dual-upload]"));
  }

  function setFormBusy(widget, busy) {
    const form = widget.form;
    if (!form) {
      return;
    }
    let widgets = busyWidgets.get(form);
    if (!widgets) {
      widgets = new Set();
      busyWidgets.set(form, widgets);
      form.addEventListener("submit", (event) => {
        if (busyWidgets.get(form).size) {
          event.preventDefault();
        }
      });
    }
    if (busy) {
      widgets.add(widget);
    } else {
      widgets.delete(widget);
    }
    for (const button of submitButtons(form)) {
      if (widgets.size) {
        if (!button.disabled) {
          button.disabled = true;
          button.setAttribute("data-dual-upload-disabled", "");
        }
      } else if (button.hasAttribute("data-dual-upload-disabled")) {
        button.disabled = false;
        button.removeAttribute("data-dual-upload-disabled");
      }
    }
  }

  // -- one upload of one file ----------------------------------------------------------

  class Run {
    constructor(widget, file) {
      this.widget = widget;
      this.root = widget.root;
      this.file = file;
      this.session = null;
      this.partSize = 0;
      this.partCount = 0;
      this.signBatch = 1;
      this.urls = null;
      this.hashes = new Map(); // part number -> base64 SHA-256 of this file's part
      this.stored = new Map(); // part number -> {size, sha256} the store holds
      this.xhrs = new Map(); // part number -> XMLHttpRequest in flight
      this.loaded = new Map(); // part number -> bytes of it sent so far
      this.tries = new Map(); // part number -> failed tries
      this.lastProgress = new Map(); // part number -> when it last sent bytes
      this.uploaded = new Set(); // parts PUT by this run (not counted as skipped later)
      this.timers = new Set();
      this.generation = 0; // bumped by pause, cancel and failures: stale callbacks stop
      this.cancelled = false;
      this.counts = { sent: 0, uploaded: 0, skipped: 0 };
      this.transferred = 0; // bytes that went out (for the speed), retries included
      this.samples = [];
      this.resetPipeline();
    }

    resetPipeline() {
      this.done = new Set();
      this.doneBytes = 0;
      this.next = 1; // the next part to check
      this.again = []; // parts to read and hash again (damaged on the way)
      this.hashed = []; // {number, sha256} waiting to be signed
      this.signed = []; // {number, sha256, url, headers, expiresAt} waiting to be sent
      this.reading = 0;
      this.signing = false;
      this.completing = false;
      this.loaded.clear();
      this.lastProgress.clear();
    }

    partRange(number) {
      const start = (number - 1) * this.partSize;
      return [start, Math.min(start + this.partSize, this.file.size)];
    }

    partBytes(number) {
      const [start, end] = this.partRange(number);
      return end - start;
    }

    sentBytes() {
      let bytes = this.doneBytes;
      for (const value of this.loaded.values()) {
        bytes += value;
      }
      return Math.min(bytes, this.file.size);
    }

    updateCounts() {
      this.root.dataset.partsSent = String(this.counts.sent);
      this.root.dataset.partsUploaded = String(this.counts.uploaded);
      this.root.dataset.partsSkipped = String(this.counts.skipped);
    }

    later(ms, callback) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        callback();
      }, ms);
      this.timers.add(timer);
    }

    /** Stop everything in motion: in-flight PUTs, timers, and callbacks of this generation. */
    halt() {
      this.generation += 1;
      for (const xhr of this.xhrs.values()) {
        xhr.abort();
      }
      this.xhrs.clear();
      for (const timer of this.timers) {
        clearTimeout(timer);
      }
      this.timers.clear();
      this.resetPipeline();
    }

    /**
     * An API call, retried with backoff on network errors and gateway failures. With a
     * generation, it throws Stale once a pause, a cancel or a failure made it obsolete.
     */
    async call(method, url, body, generation) {
      const stale = () => generation !== null && generation !== this.generation;
      for (let tries = 1; ; tries += 1) {
        try {
          const answer = await api(this.root, method, url, body);
          if (stale()) {
            throw new Stale();
          }
          return answer;
        } catch (error) {
          if (error instanceof Stale || stale()) {
            throw new Stale();
          }
          const transient =
            error instanceof NetworkError ||
            (error instanceof ApiError && [502, 503, 504].includes(error.status));
          if (!transient || tries >= settings.partTries) {
            throw error;
          }
          await sleep(retryDelay(tries));
          if (stale()) {
            throw new Stale();
          }
        }
      }
    }

    /** What went wrong, shown to the user: a network failure pauses, anything else fails. */
    trouble(error, generation) {
      if (error instanceof Stale || generation !== this.generation) {
        return;
      }
      if (error instanceof NetworkError || (error instanceof ApiError && error.status >= 502)) {
        this.pause("Paused: network error — press Resume");
      } else {
        this.fail(error.message || String(error));
      }
    }

    // -- the life of a run ----------------------------------------------------------

    async begin() {
      const generation = this.generation;
      this.widget.setState("uploading");
      this.widget.setStatus(`Starting the upload of ${this.file.name}…`);
      this.updateCounts();
      let answer;
      try {
        // Not tied to the generation: a session started while paused or cancelled must
        // still be known (to resume it, or to abort it on the server).
        answer = await this.call(
          "POST",
          this.root.dataset.startUrl,
          {
            name: this.file.name,
            size: this.file.size,
            type: this.file.type || "",
            last_modified: Math.round(this.file.lastModified || 0),
          },
          null,
        );
      } catch (error) {
        if (this.cancelled) {
          this.widget.cancelled(this);
        } else if (generation === this.generation) {
          this.trouble(error, generation);
        }
        return;
      }
      this.session = answer;
      this.urls = answer.urls;
      this.partSize = answer.part_size;
      this.partCount = answer.part_count;
      this.signBatch = Math.max(1, answer.sign_batch || 1);
      if (this.cancelled) {
        await this.abortOnServer();
        return;
      }
      if (this.widget.run !== this) {
        return; // another file was chosen meanwhile: this session stays resumable
      }
      this.root.dataset.sessionId = answer.id;
      this.root.dataset.key = answer.key || "";
      this.root.dataset.partCount = String(this.partCount);
      this.root.dataset.resumed = answer.resumed ? "true" : "false";
      if (generation !== this.generation) {
        return; // paused meanwhile: Resume goes on from here
      }
      if (answer.resumed) {
        this.widget.setStatus("Resuming: checking what the store already holds…");
        try {
          await this.readStore(generation);
        } catch (error) {
          this.trouble(error, generation);
          return;
        }
      }
      this.widget.startTicker();
      this.schedule();
    }

    async readStore(generation) {
      const answer = await this.call("GET", this.urls.parts, null, generation);
      this.stored = new Map();
      for (const part of answer.parts || []) {
        this.stored.set(part.number, { size: part.size, sha256: part.sha256 || null });
      }
      this.root.dataset.storedParts = String(this.stored.size);
    }

    pause(message) {
      if (!["uploading", "completing"].includes(this.widget.state)) {
        return;
      }
      const text = message || `Paused at ${formatBytes(this.sentBytes())}.`;
      this.halt();
      this.widget.stopTicker();
      this.widget.setState("paused");
      this.widget.setStatus(text);
    }

    fail(message) {
      this.halt();
      this.widget.stopTicker();
      this.widget.setState("error");
      this.widget.setStatus(message);
    }

    /** Resume after a pause or an error: ask the server, then the store, where things are. */
    async resume() {
      if (!["paused", "error"].includes(this.widget.state)) {
        return;
      }
      this.halt();
      const generation = this.generation;
      this.tries.clear();
      this.widget.setState("uploading");
      if (!this.session) {
        this.begin();
        return;
      }
      this.widget.setStatus("Resuming: checking what the store already holds…");
      try {
        const detail = await this.call("GET", this.urls.detail, null, generation);
        if (detail.state === "completed" && detail.dataset) {
          this.finished(detail);
          return;
        }
        if (detail.state !== "active") {
          this.fail(
            `This upload was ${detail.state || "closed"} on the server; cancel and choose the file again.`,
          );
          return;
        }
        await this.readStore(generation);
      } catch (error) {
        this.trouble(error, generation);
        return;
      }
      this.widget.startTicker();
      this.schedule();
    }

    async cancel() {
      this.cancelled = true;
      this.halt();
      this.widget.stopTicker();
      this.widget.setStatus("Cancelling…");
      this.widget.disableButtons();
      if (this.session) {
        await this.abortOnServer();
      } else if (this.widget.state === "paused" || this.widget.state === "error") {
        this.widget.cancelled(this); // the session never started
      }
      // Otherwise begin() is waiting for the start request and aborts when it answers.
    }

    async abortOnServer() {
      let message = "";
      for (let tries = 1; tries <= settings.partTries; tries += 1) {
        try {
          await api(this.root, "POST", this.urls.abort, {});
          message = "";
          break;
        } catch (error) {
          message = error.message || String(error);
          if (!(error instanceof NetworkError)) {
            break;
          }
          await sleep(retryDelay(tries));
        }
      }
      this.widget.cancelled(this, message);
    }

    // -- the pipeline: check (read, hash, compare), sign, send ----------------------------

    peekNext() {
      if (this.again.length) {
        return this.again[0];
      }
      return this.next <= this.partCount ? this.next : null;
    }

    nextToCheck() {
      if (this.again.length) {
        return this.again.shift();
      }
      if (this.next <= this.partCount) {
        const number = this.next;
        this.next += 1;
        return number;
      }
      return null;
    }

    schedule() {
      if (this.widget.state !== "uploading" || this.cancelled) {
        return;
      }
      const generation = this.generation;
      // 1. Send signed parts.
      while (this.xhrs.size < settings.maxInFlight && this.signed.length) {
        const part = this.signed.shift();
        if (Date.now() > part.expiresAt - settings.renewBeforeMs) {
          this.hashed.unshift({ number: part.number, sha256: part.sha256 });
          continue;
        }
        this.put(part, generation);
      }
      // 2. Check parts ahead: compare the hash with the store's; memory is bounded.
      while (this.hashed.length + this.signed.length + this.reading < settings.lookahead) {
        const upcoming = this.peekNext();
        if (upcoming === null) {
          break;
        }
        if (!this.hashes.has(upcoming) && this.reading >= settings.maxReading) {
          break;
        }
        const number = this.nextToCheck();
        if (this.hashes.has(number)) {
          this.checked(number, this.hashes.get(number));
        } else {
          this.hash(number, generation);
        }
      }
      // 3. Sign hashed parts, a batch at a time, when the signed ones run low.
      if (
        !this.signing &&
        this.hashed.length &&
        this.signed.length < settings.maxInFlight
      ) {
        this.sign(this.hashed.splice(0, this.signBatch), generation);
      }
      // 4. Complete when every part is in the store.
      if (!this.completing && this.done.size === this.partCount) {
        this.complete(generation);
      }
    }

    async hash(number, generation) {
      this.reading += 1;
      let digest;
      try {
        const [start, end] = this.partRange(number);
        const buffer = await this.file.slice(start, end).arrayBuffer();
        digest = base64(await window.crypto.subtle.digest("SHA-256", buffer));
      } catch (error) {
        if (generation === this.generation) {
          this.fail(
            `Could not read ${this.file.name} (${error.message || error}); choose the file again.`,
          );
        }
        return;
      }
      if (generation !== this.generation) {
        return;
      }
      this.reading -= 1;
      this.hashes.set(number, digest);
      this.checked(number, digest);
      this.schedule();
    }

    /** The part is hashed: skip it if the store holds the same bytes, else queue it. */
    checked(number, sha256) {
      const held = this.stored.get(number);
      if (held && held.sha256 === sha256 && held.size === this.partBytes(number)) {
        if (!this.done.has(number)) {
          this.done.add(number);
          this.doneBytes += held.size;
          if (!this.uploaded.has(number)) {
            this.counts.skipped += 1;
          }
          this.updateCounts();
        }
        return;
      }
      this.hashed.push({ number, sha256 });
    }

    async sign(parts, generation) {
      this.signing = true;
      let answer;
      try {
        answer = await this.call(
          "POST",
          this.urls.sign,
          { parts: parts.map((part) => ({ number: part.number, sha256: part.sha256 })) },
          generation,
        );
      } catch (error) {
        this.trouble(error, generation);
        return;
      }
      this.signing = false;
      const expiresAt = Date.now() + (Number(answer.expires_in) || 300) * 1000;
      const byNumber = new Map((answer.parts || []).map((part) => [part.number, part]));
      for (const part of parts) {
        const signed = byNumber.get(part.number);
        if (!signed || !signed.url) {
          this.fail(`The server did not sign part ${part.number}.`);
          return;
        }
        this.signed.push({
          number: part.number,
          sha256: part.sha256,
          url: signed.url,
          headers: signed.headers || {},
          expiresAt,
        });
      }
      this.schedule();
    }

    put(part, generation) {
      const number = part.number;
      const [start, end] = this.partRange(number);
      const xhr = new XMLHttpRequest();
      this.xhrs.set(number, xhr);
      this.loaded.set(number, 0);
      this.lastProgress.set(number, performance.now());
      xhr.open("PUT", part.url);
      for (const [header, value] of Object.entries(part.headers)) {
        xhr.setRequestHeader(header, value);
      }
      xhr.upload.addEventListener("progress", (event) => {
        if (generation !== this.generation || !this.xhrs.has(number)) {
          return;
        }
        const before = this.loaded.get(number) || 0;
        this.loaded.set(number, event.loaded);
        this.lastProgress.set(number, performance.now());
        this.transferred += Math.max(0, event.loaded - before);
      });
      const settle = () => {
        if (generation !== this.generation || this.xhrs.get(number) !== xhr) {
          return false;
        }
        this.xhrs.delete(number);
        this.loaded.delete(number);
        this.lastProgress.delete(number);
        return true;
      };
      xhr.addEventListener("load", () => {
        if (!settle()) {
          return;
        }
        this.answered(part, xhr.status, xhr.responseText || "", generation);
      });
      const failed = () => {
        if (settle()) {
          this.retry(part, generation);
        }
      };
      xhr.addEventListener("error", failed);
      xhr.addEventListener("timeout", failed);
      xhr.addEventListener("stalled", failed); // dispatched by watchStalls()
      this.counts.sent += 1;
      this.updateCounts();
      xhr.send(this.file.slice(start, end));
    }

    answered(part, status, text, generation) {
      const number = part.number;
      if (status >= 200 && status < 300) {
        this.tries.delete(number);
        this.uploaded.add(number);
        this.stored.set(number, { size: this.partBytes(number), sha256: part.sha256 });
        if (!this.done.has(number)) {
          this.done.add(number);
          this.doneBytes += this.partBytes(number);
        }
        this.counts.uploaded += 1;
        this.updateCounts();
        this.schedule();
        return;
      }
      const tries = (this.tries.get(number) || 0) + 1;
      this.tries.set(number, tries);
      if (status === 400) {
        // BadDigest: the bytes that arrived are not the bytes hashed. Read them again.
        if (tries >= settings.partTries) {
          this.fail(
            `Part ${number} arrived damaged ${tries} times (the store said: ${storeCode(text) || status}); ` +
              "check the file and the connection, then press Resume.",
          );
          return;
        }
        this.hashes.delete(number);
        this.again.push(number);
        this.schedule();
        return;
      }
      if (status === 404) {
        this.fail(
          "The store no longer holds this upload (it expired or was aborted); cancel and choose the file again.",
        );
        return;
      }
      if (status === 403) {
        // Most likely an expired link: sign the part again.
        if (tries >= settings.partTries) {
          this.fail(`The store refused part ${number} (${storeCode(text) || status}).`);
          return;
        }
        this.hashed.unshift({ number, sha256: part.sha256 });
        this.schedule();
        return;
      }
      this.retry(part, generation, tries); // 5xx and the rest: transient
    }

    /** A network failure (or a transient answer): try again after a backoff, then pause. */
    retry(part, generation, counted) {
      const number = part.number;
      const tries = counted || (this.tries.get(number) || 0) + 1;
      this.tries.set(number, tries);
      if (tries >= settings.partTries) {
        this.pause("Paused: network error — press Resume");
        return;
      }
      this.later(retryDelay(tries), () => {
        if (generation !== this.generation) {
          return;
        }
        this.signed.unshift(part); // renewed by schedule() when about to expire
        this.schedule();
      });
      this.schedule();
    }

    /** Abandon PUTs that sent nothing for settings.stallMs: they are tried again. */
    watchStalls() {
      const now = performance.now();
      for (const [number, xhr] of Array.from(this.xhrs)) {
        if (now - (this.lastProgress.get(number) || now) > settings.stallMs) {
          xhr.abort();
          xhr.dispatchEvent(new Event("stalled"));
        }
      }
    }

    async complete(generation) {
      this.completing = true;
      this.widget.setState("completing");
      this.widget.stopTicker();
      this.widget.showProgress(this);
      this.widget.setStatus("Finishing: the server checks every part…");
      const parts = [];
      for (let number = 1; number <= this.partCount; number += 1) {
        parts.push({ number, sha256: this.hashes.get(number) });
      }
      let answer;
      try {
        answer = await this.call("POST", this.urls.complete, { parts }, generation);
      } catch (error) {
        this.completing = false;
        this.trouble(error, generation);
        return;
      }
      this.finished(answer);
    }

    // -- after completing: the server verifies the object ------------------------------

    finished(answer) {
      const generation = this.generation;
      const dataset = answer.dataset || {};
      this.widget.sessionInput.value = answer.id || this.session.id;
      this.root.dataset.datasetId = String(dataset.id);
      this.widget.showProgress(this, true);
      this.showDataset(dataset);
      if (dataset.status === "verifying") {
        this.poll(generation);
      }
    }

    showDataset(dataset) {
      const status = dataset.status || "ready";
      if (status === "verifying") {
        this.widget.setState("verifying");
        this.widget.setStatus(
          `Uploaded ${formatBytes(dataset.size || this.file.size)}; verifying the SHA-256…`,
        );
      } else if (status === "corrupt") {
        this.widget.sessionInput.value = ""; // never attach a corrupt dataset to the form
        this.widget.setState("corrupt");
        this.widget.setStatus(
          "Corrupt: the stored object does not match the file. Choose the file again.",
        );
      } else {
        this.widget.setState("done");
        const sha = typeof dataset.sha256 === "string" ? dataset.sha256 : "";
        this.widget.setStatus(
          sha ? `Verified (SHA-256 ${sha.slice(0, 12)}…)` : "Verified",
        );
      }
      this.widget.setLink(status === "verifying" ? null : dataset.admin_url);
    }

    poll(generation) {
      this.later(settings.pollMs, async () => {
        if (generation !== this.generation || this.widget.run !== this) {
          return;
        }
        let detail;
        try {
          detail = await api(this.root, "GET", this.urls.detail);
        } catch (error) {
          if (error instanceof ApiError && error.status < 500) {
            this.widget.setStatus(`Could not check the verification: ${error.message}`);
            return;
          }
          this.poll(generation); // a network blip: ask again
          return;
        }
        if (generation !== this.generation || this.widget.run !== this) {
          return;
        }
        const dataset = detail.dataset || {};
        this.showDataset(dataset);
        if (dataset.status === "verifying") {
          this.poll(generation);
        }
      });
    }
  }

  function storeCode(text) {
    const match = /<Code>([^<]{1,64})<\/Code>/.exec(text || "");
    return match ? match[1] : "";
  }

  // -- the widget ----------------------------------------------------------------------

  class Widget {
    constructor(root) {
      this.root = root;
      this.form = root.closest("form");
      this.input = root.querySelector("input[type=file]");
      this.sessionInput = root.querySelector("[data-dual-upload-session]");
      this.panel = root.querySelector("[data-dual-upload-panel]");
      this.progress = root.querySelector("[data-dual-upload-progress]");
      this.figures = root.querySelector("[data-dual-upload-figures]");
      this.status = root.querySelector("[data-dual-upload-status]");
      this.link = root.querySelector("[data-dual-upload-link]");
      this.pauseButton = root.querySelector("[data-dual-upload-pause]");
      this.resumeButton = root.querySelector("[data-dual-upload-resume]");
      this.cancelButton = root.querySelector("[data-dual-upload-cancel]");
      this.fieldName = this.input.getAttribute("name") || root.dataset.name || "";
      this.run = null;
      this.ticker = null;
      this.state = "idle";

      this.input.addEventListener("change", () => {
        if (this.input.files && this.input.files.length) {
          this.choose(this.input.files[0]);
        }
      });
      root.addEventListener("dragover", (event) => {
        if (this.canChoose() && event.dataTransfer && event.dataTransfer.types.includes("Files")) {
          event.preventDefault();
          root.classList.add("dual-upload--over");
        }
      });
      root.addEventListener("dragleave", () => root.classList.remove("dual-upload--over"));
      root.addEventListener("drop", (event) => {
        root.classList.remove("dual-upload--over");
        const files = event.dataTransfer && event.dataTransfer.files;
        if (!this.canChoose() || !files || !files.length) {
          return;
        }
        event.preventDefault();
        try {
          this.input.files = files;
        } catch (error) {
          // Older browsers cannot set files; the upload goes on without it.
        }
        this.choose(files[0]);
      });
      this.pauseButton.addEventListener("click", () => this.run && this.run.pause());
      this.resumeButton.addEventListener("click", () => this.run && this.run.resume());
      this.cancelButton.addEventListener("click", () => this.run && this.run.cancel());
      window.addEventListener("beforeunload", (event) => {
        if (this.state === "uploading" || this.state === "completing") {
          event.preventDefault();
          event.returnValue = "";
        }
      });

      if (this.sessionInput.value) {
        // The form came back (a validation error elsewhere): the upload is already done.
        this.panel.hidden = false;
        this.setState("done");
        this.setStatus("Uploaded; save the form to keep it.");
      } else {
        this.setState("idle");
      }
    }

    canChoose() {
      return !this.input.disabled && !["uploading", "completing"].includes(this.state);
    }

    choose(file) {
      if (!this.root.dataset.startUrl || !window.crypto || !window.crypto.subtle) {
        return; // no direct upload here: the ordinary form upload goes on
      }
      if (this.run) {
        this.run.halt(); // a paused or finished run of another file: left to resume later
      }
      // The file must not be posted through Django too.
      this.input.removeAttribute("name");
      this.sessionInput.value = "";
      for (const key of ["sessionId", "datasetId", "key", "partCount", "resumed", "storedParts"]) {
        delete this.root.dataset[key];
      }
      this.setLink(null);
      this.panel.hidden = false;
      this.progress.max = Math.max(1, file.size);
      this.progress.value = 0;
      this.figures.textContent = `0 bytes of ${formatBytes(file.size)}`;
      this.run = new Run(this, file);
      this.run.begin();
    }

    setState(state) {
      this.state = state;
      this.root.dataset.state = state;
      const running = state === "uploading";
      const stopped = state === "paused" || state === "error";
      this.pauseButton.hidden = !running;
      this.resumeButton.hidden = !stopped;
      this.cancelButton.hidden = !(running || stopped);
      for (const button of [this.pauseButton, this.resumeButton, this.cancelButton]) {
        button.disabled = false;
      }
      this.input.disabled = state === "uploading" || state === "completing";
      setFormBusy(this, BUSY.has(state));
    }

    disableButtons() {
      for (const button of [this.pauseButton, this.resumeButton, this.cancelButton]) {
        button.disabled = true;
      }
    }

    setStatus(text) {
      this.status.textContent = text;
    }

    setLink(url) {
      const href = sameOriginPath(url);
      if (href) {
        this.link.href = href;
        this.link.hidden = false;
      } else {
        this.link.removeAttribute("href");
        this.link.hidden = true;
      }
    }

    startTicker() {
      this.stopTicker();
      if (this.run) {
        this.run.samples = [];
      }
      this.ticker = setInterval(() => {
        if (this.run) {
          this.run.watchStalls();
          this.showProgress(this.run);
        }
      }, 250);
      if (this.run) {
        this.showProgress(this.run);
      }
    }

    stopTicker() {
      if (this.ticker !== null) {
        clearInterval(this.ticker);
        this.ticker = null;
      }
    }

    showProgress(run, complete) {
      const total = run.file.size;
      const sent = complete ? total : run.sentBytes();
      this.progress.max = Math.max(1, total);
      this.progress.value = sent;
      let text = `${formatBytes(sent)} of ${formatBytes(total)}`;
      if (this.state === "uploading") {
        const now = performance.now();
        run.samples.push([now, run.transferred]);
        while (run.samples.length > 2 && now - run.samples[0][0] > settings.speedWindowMs) {
          run.samples.shift();
        }
        const [firstTime, firstBytes] = run.samples[0];
        const seconds = (now - firstTime) / 1000;
        const speed = seconds >= 0.5 ? (run.transferred - firstBytes) / seconds : 0;
        if (speed > 0) {
          text += ` · ${formatBytes(speed)}/s · ${formatDuration((total - sent) / speed)} left`;
        } else if (run.hashed.length || run.reading) {
          text += " · checking parts…";
        }
        const status = run.counts.skipped
          ? `Uploading ${run.file.name} (resumed: ${run.counts.skipped} of ${run.partCount} parts were already stored)`
          : `Uploading ${run.file.name}`;
        this.setStatus(status);
      }
      this.figures.textContent = text;
    }

    /** After Cancel: the server was told (or could not be); the widget starts over. */
    cancelled(run, problem) {
      if (this.run !== run) {
        return;
      }
      this.stopTicker();
      this.input.value = "";
      if (this.fieldName) {
        this.input.setAttribute("name", this.fieldName);
      }
      this.sessionInput.value = "";
      this.progress.value = 0;
      this.figures.textContent = "";
      this.setLink(null);
      this.run = null;
      this.setState("cancelled");
      if (problem) {
        this.panel.hidden = false;
        this.setStatus(`Cancelled here, but the server said: ${problem}`);
      } else {
        this.panel.hidden = true;
        this.setStatus("Cancelled.");
      }
    }
  }

  // -- wiring --------------------------------------------------------------------------

  const widgets = new WeakMap();

  function enhance(root) {
    if (widgets.has(root)) {
      return widgets.get(root);
    }
    if (!root.dataset.startUrl || !root.querySelector("input[type=file]")) {
      return null; // no direct upload here (no URLs, or the admin's change page)
    }
    const widget = new Widget(root);
    widgets.set(root, widget);
    root.setAttribute("data-dual-upload-ready", "");
    return widget;
  }

  function enhanceAll(scope) {
    const container = scope && scope.querySelectorAll ? scope : document;
    if (container.matches && container.matches("[data-dual-upload]")) {
      enhance(container);
    }
    container.querySelectorAll("[data-dual-upload]").forEach(enhance);
  }

  window.DualStorageUpload = { settings, enhance, enhanceAll, formatBytes, formatDuration };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => enhanceAll(document));
  } else {
    enhanceAll(document);
  }
  // Admin inlines add forms after the page loaded.
  document.addEventListener("formset:added", (event) => enhanceAll(event.target));
})();
