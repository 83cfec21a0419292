/*
 * Direct uploads of datasets from the browser to the external S3 store (dual_storage_app).
 *
 * Enhances every [data-dual-upload] element rendered by DirectUploadWidget
 * (dual_storage_app/uploads/forms.py). No dataset byte goes through Django: the server
 * hands out presigned URLs and the browser PUTs the bytes to the store itself.
 *
 * One file (the file input, or one file dropped on the widget):
 *   1. POST data-start-url {name, size, type, last_modified}: a new multipart session, or
 *      the user's unfinished one for the same file (resumed after a reload or a closed tab).
 *   2. GET urls.parts: what the store already holds, with each part's signed SHA-256.
 *   3. Each part is read and hashed (WebCrypto SHA-256); a part the store holds with the
 *      same hash is skipped; the others are signed in batches (urls.sign) and PUT with the
 *      returned headers (x-amz-checksum-sha256, so the store refuses a damaged part).
 *   4. POST urls.complete with every part's hash, then GET urls.detail every second until
 *      the server has verified the whole object.
 *
 * A folder ("Choose a folder…", or a folder or several files dropped on the widget):
 *   1. POST data-start-folder-url {name, files: [{path, size}]}, the files sorted by path,
 *      so choosing the same folder again resumes its session. The name is the folder's.
 *   2. GET urls.parts (when resumed): the files the store holds whole, and the parts it
 *      holds of the large ones.
 *   3. A file of at most part_size bytes is hashed whole and PUT once (the headers carry
 *      If-None-Match: *, so a 412 means the store holds it already: it counts as done);
 *      a larger one goes by parts, as a single file does. Files and parts are signed
 *      together, sign_batch at a time.
 *   4. POST urls.complete, then the same polling of urls.detail.
 *
 * At most settings.maxInFlight parts and settings.maxFilesInFlight small files (within
 * two parts' bytes) travel at once; what is read into memory to be hashed stays within
 * two parts' bytes (settings.maxReading parts, or many small files); PUT bodies are
 * File slices the browser streams from disk. A part or file the store calls damaged
 * (400) is read, hashed and sent again; a network failure is retried with backoff, then
 * the upload pauses until Resume. When no PUT ever reached the store (no CORS rule for
 * this site), the pause says so, and a single file can be sent through the site's form
 * instead. Pause, Resume and Cancel are buttons (Cancel aborts the session on the
 * server, which deletes what was stored).
 *
 * For tests and scripts the root element carries data-state (idle, uploading, paused,
 * completing, verifying, done, corrupt, error, cancelled, ordinary), data-kind (file or
 * folder), data-session-id, data-dataset-id, data-resumed, data-part-count (PUTs a fresh
 * upload needs), data-parts-sent (PUT requests sent in this run), data-parts-uploaded
 * (PUTs the store accepted), data-parts-skipped (parts or small files the store held),
 * data-stored-parts (what urls.parts listed); for a folder also data-file-count,
 * data-files-done, data-files-skipped and data-stored-files.
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
    maxFilesInFlight: 8, // small files of a folder being PUT at once
    maxReading: 2, // parts read into memory and hashed at once
    maxReadingFiles: 16, // small files read and hashed at once (within two parts' bytes)
    lookahead: 8, // hashed parts waiting to be signed or sent (numbers only, no bytes)
    partTries: 5, // tries of one part before the upload pauses (network) or fails
    retryDelays: [1000, 2000, 4000, 8000], // ms between tries of a part or an API call
    pollMs: 1000, // how often the verification is polled after completing
    speedWindowMs: 5000, // the moving average of the speed
    renewBeforeMs: 30000, // sign again when a URL expires sooner than this
    stallMs: 60000, // a PUT that sent nothing for this long is abandoned and tried again
  };

  const BUSY = new Set(["uploading", "paused", "error", "completing"]);
  const NETWORK_PAUSE = "Paused: network error — press Resume";
  const UNREACHABLE = "The browser cannot reach the datasets store. Ask an administrator to run: ";
  const CORS_CHECK = "manage.py dualstorage_cors --check"; // shown as code, never wrapped
  const LOOSE_NAME = "dropped-files"; // the name of a folder made of loose dropped files
  const RUN_KEYS = [
    "sessionId",
    "datasetId",
    "key",
    "kind",
    "partCount",
    "resumed",
    "storedParts",
    "storedFiles",
    "fileCount",
    "filesDone",
    "filesSkipped",
  ];

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

  function plural(count, word) {
    return `${count.toLocaleString("en-US")} ${word}${count === 1 ? "" : "s"}`;
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

  function storeCode(text) {
    const match = /<Code>([^<]{1,64})<\/Code>/.exec(text || "");
    return match ? match[1] : "";
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

  // -- folders: what the picker or a drop gives, as {name, files: [{file, path, size}]} ----

  function byPath(a, b) {
    return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
  }

  function makeFolder(name, files) {
    files.sort(byPath); // the same folder gives the same list: its session resumes
    return { name, files, size: files.reduce((sum, entry) => sum + entry.size, 0) };
  }

  /** The files of <input webkitdirectory>: named after the top folder, paths below it. */
  function folderFromFiles(list) {
    const chosen = Array.from(list).map((file) => ({
      file,
      relative: file.webkitRelativePath || file.name,
    }));
    const tops = new Set(
      chosen.map(({ relative }) => (relative.includes("/") ? relative.split("/")[0] : "")),
    );
    const top = tops.size === 1 ? tops.values().next().value : "";
    return makeFolder(
      top || LOOSE_NAME,
      chosen.map(({ file, relative }) => ({
        file,
        path: top ? relative.slice(top.length + 1) : relative,
        size: file.size,
      })),
    );
  }

  /** The dropped items as FileSystemEntry objects (read during the drop event), or null. */
  function droppedEntries(transfer) {
    const items = Array.from(transfer.items || []).filter((item) => item.kind === "file");
    if (!items.length || typeof items[0].webkitGetAsEntry !== "function") {
      return null;
    }
    const entries = items.map((item) => item.webkitGetAsEntry());
    return entries.every(Boolean) ? entries : null;
  }

  /** Walk dropped entries: one folder is named after itself, anything else is loose. */
  async function folderFromEntries(entries) {
    const one = entries.length === 1 && entries[0].isDirectory;
    const files = [];
    async function visit(entry, path) {
      if (entry.isFile) {
        const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
        files.push({ file, path, size: file.size });
        return;
      }
      if (!entry.isDirectory) {
        return;
      }
      const reader = entry.createReader();
      for (;;) {
        // readEntries gives a batch at a time (Chromium: 100) until an empty one.
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) {
          return;
        }
        for (const child of batch) {
          await visit(child, path ? `${path}/${child.name}` : child.name);
        }
      }
    }
    if (one) {
      await visit(entries[0], "");
    } else {
      for (const entry of entries) {
        await visit(entry, entry.name);
      }
    }
    return makeFolder(one ? entries[0].name : LOOSE_NAME, files);
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

  // -- one upload (a file or a folder): what both share ---------------------------------

  /**
   * The life of one upload: start (or resume) the session, send units (parts, or a
   * folder's small files) with retries, pause, resume, cancel, complete, and the
   * verification. FileRun and FolderRun say what the units are and in what order they go.
   *
   * A unit is {id, number, whole} (a folder's also {index}); once hashed it has sha256,
   * once signed url, headers and expiresAt.
   */
  class Run {
    constructor(widget) {
      this.widget = widget;
      this.root = widget.root;
      this.session = null;
      this.urls = null;
      this.partSize = 0;
      this.signBatch = 1;
      this.xhrs = new Map(); // unit id -> XMLHttpRequest in flight
      this.flying = { files: 0, parts: 0 }; // PUTs in flight, by pool
      this.flyingBytes = { files: 0, parts: 0 }; // and their bytes
      this.loaded = new Map(); // unit id -> bytes of it sent so far
      this.tries = new Map(); // unit id -> failed tries
      this.lastProgress = new Map(); // unit id -> when it last sent bytes
      this.timers = new Set();
      this.generation = 0; // bumped by pause, cancel and failures: stale callbacks stop
      this.cancelled = false;
      this.signRequest = null; // the sign request awaiting its answer, if any
      this.reachedStore = false; // a PUT of this run got an answer (any status) from the store
      this.unreachable = false; // paused because no PUT ever reached the store
      this.counts = { sent: 0, uploaded: 0 };
      this.skipped = new Set(); // units the store held (listed, or a 412) and were not sent
      this.transferred = 0; // bytes that went out (for the speed), retries included
      this.samples = [];
    }

    poolOf(unit) {
      return unit.whole ? "files" : "parts";
    }

    sentBytes() {
      let bytes = this.doneBytes;
      for (const value of this.loaded.values()) {
        bytes += value;
      }
      return Math.min(bytes, this.total());
    }

    updateCounts() {
      this.root.dataset.partsSent = String(this.counts.sent);
      this.root.dataset.partsUploaded = String(this.counts.uploaded);
      this.root.dataset.partsSkipped = String(this.skipped.size);
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
      this.flying = { files: 0, parts: 0 };
      this.flyingBytes = { files: 0, parts: 0 };
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
        this.pause(NETWORK_PAUSE);
      } else {
        this.fail(error.message || String(error));
      }
    }

    // -- the life of a run ----------------------------------------------------------

    async begin() {
      const generation = this.generation;
      this.widget.setState("uploading");
      this.widget.setStatus(`Starting the upload of ${this.label}…`);
      this.updateCounts();
      let answer;
      try {
        // Not tied to the generation: a session started while paused or cancelled must
        // still be known (to resume it, or to abort it on the server).
        answer = await this.call("POST", this.startUrl(), this.startBody(), null);
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
      this.signBatch = Math.max(1, answer.sign_batch || 1);
      this.adopt(answer);
      if (this.cancelled) {
        await this.abortOnServer();
        return;
      }
      if (this.widget.run !== this) {
        return; // something else was chosen meanwhile: this session stays resumable
      }
      this.root.dataset.sessionId = answer.id;
      this.root.dataset.key = answer.key || "";
      this.root.dataset.resumed = answer.resumed ? "true" : "false";
      this.updateCounts();
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

    pause(message) {
      if (!["uploading", "completing"].includes(this.widget.state)) {
        return;
      }
      const text = message || `Paused at ${formatBytes(this.sentBytes())}.`;
      this.unreachable = text === UNREACHABLE;
      this.halt();
      this.widget.stopTicker();
      this.widget.setState("paused");
      this.widget.setStatus(text, this.unreachable ? CORS_CHECK : "");
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
      this.unreachable = false;
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
            `This upload was ${detail.state || "closed"} on the server; cancel and choose the ${this.what} again.`,
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
      await this.settleSigning();
      if (this.session) {
        await this.abortOnServer();
      } else if (this.widget.state === "paused" || this.widget.state === "error") {
        this.widget.cancelled(this); // the session never started
      }
      // Otherwise begin() is waiting for the start request and aborts when it answers.
    }

    /**
     * A sign request (it may create a large file's multipart upload on the server): kept,
     * so that Cancel asks for the abort only once the server has recorded what it made.
     */
    requestSignatures(body, generation) {
      const request = this.call("POST", this.urls.sign, body, generation);
      this.signRequest = request;
      const forget = () => {
        if (this.signRequest === request) {
          this.signRequest = null;
        }
      };
      request.then(forget, forget);
      return request;
    }

    /** Wait for the sign request in flight, if any (its outcome does not matter here). */
    async settleSigning() {
      if (this.signRequest) {
        await this.signRequest.catch(() => null);
      }
    }

    /** POST urls.abort (the server drops what was stored); what it said if it failed. */
    async abortSession() {
      let message = "";
      for (let tries = 1; tries <= settings.partTries; tries += 1) {
        try {
          await api(this.root, "POST", this.urls.abort, {});
          return "";
        } catch (error) {
          message = error.message || String(error);
          if (!(error instanceof NetworkError)) {
            break;
          }
          await sleep(retryDelay(tries));
        }
      }
      return message;
    }

    async abortOnServer() {
      this.widget.cancelled(this, await this.abortSession());
    }

    // -- sending units --------------------------------------------------------------

    /**
     * Send signed units of a pool while fewer than `limit` are in flight and, with
     * `maxBytes`, while their bytes stay within it (one unit always may go).
     */
    send(pool, queue, hashed, limit, generation, maxBytes) {
      while (this.flying[pool] < limit && queue.length) {
        const unit = queue[0];
        const bytes = this.unitBytes(unit);
        if (maxBytes && this.flying[pool] && this.flyingBytes[pool] + bytes > maxBytes) {
          return;
        }
        queue.shift();
        if (Date.now() > unit.expiresAt - settings.renewBeforeMs) {
          hashed.unshift(this.hashedUnit(unit, unit.sha256)); // sign it again
          continue;
        }
        this.put(unit, generation);
      }
    }

    hashedUnit(unit, sha256) {
      const { id, number, whole, index } = unit;
      return { id, number, whole, index, sha256 };
    }

    put(unit, generation) {
      const id = unit.id;
      const pool = this.poolOf(unit);
      const xhr = new XMLHttpRequest();
      this.xhrs.set(id, xhr);
      const bytes = this.unitBytes(unit);
      this.flying[pool] += 1;
      this.flyingBytes[pool] += bytes;
      this.loaded.set(id, 0);
      this.lastProgress.set(id, performance.now());
      xhr.open("PUT", unit.url);
      for (const [header, value] of Object.entries(unit.headers)) {
        xhr.setRequestHeader(header, value);
      }
      xhr.upload.addEventListener("progress", (event) => {
        if (generation !== this.generation || !this.xhrs.has(id)) {
          return;
        }
        const before = this.loaded.get(id) || 0;
        this.loaded.set(id, event.loaded);
        this.lastProgress.set(id, performance.now());
        this.transferred += Math.max(0, event.loaded - before);
      });
      const settle = () => {
        if (generation !== this.generation || this.xhrs.get(id) !== xhr) {
          return false;
        }
        this.xhrs.delete(id);
        this.flying[pool] -= 1;
        this.flyingBytes[pool] -= bytes;
        this.loaded.delete(id);
        this.lastProgress.delete(id);
        return true;
      };
      xhr.addEventListener("load", () => {
        if (!settle()) {
          return;
        }
        this.answered(unit, xhr.status, xhr.responseText || "", generation);
      });
      const failed = () => {
        if (settle()) {
          this.retry(unit, generation);
        }
      };
      xhr.addEventListener("error", failed);
      xhr.addEventListener("timeout", failed);
      xhr.addEventListener("stalled", failed); // dispatched by watchStalls()
      this.counts.sent += 1;
      this.updateCounts();
      xhr.send(this.body(unit));
    }

    answered(unit, status, text, generation) {
      this.reachedStore = true;
      const id = unit.id;
      if ((status >= 200 && status < 300) || (status === 412 && unit.whole)) {
        // A 412 answers If-None-Match: * (a folder's small file): the store holds it
        // already, put there by an earlier try whose answer was lost.
        this.tries.delete(id);
        this.accepted(unit, status === 412);
        this.updateCounts();
        this.schedule();
        return;
      }
      const tries = (this.tries.get(id) || 0) + 1;
      this.tries.set(id, tries);
      if (status === 400) {
        // BadDigest: the bytes that arrived are not the bytes hashed. Read them again.
        if (tries >= settings.partTries) {
          this.fail(
            `${this.unitName(unit, true)} arrived damaged ${tries} times (the store said: ${storeCode(text) || status}); ` +
              "check the file and the connection, then press Resume.",
          );
          return;
        }
        this.rehash(unit);
        this.schedule();
        return;
      }
      if (status === 404) {
        this.fail(
          `The store no longer holds this upload (it expired or was aborted); cancel and choose the ${this.what} again.`,
        );
        return;
      }
      if (status === 403) {
        // Most likely an expired link: sign it again.
        if (tries >= settings.partTries) {
          const code = storeCode(text) || status;
          this.fail(`The store refused ${this.unitName(unit, false)} (${code}).`);
          return;
        }
        this.resign(unit);
        this.schedule();
        return;
      }
      this.retry(unit, generation, tries); // 5xx and the rest: transient
    }

    /** A network failure (or a transient answer): try again after a backoff, then pause. */
    retry(unit, generation, counted) {
      const id = unit.id;
      const tries = counted || (this.tries.get(id) || 0) + 1;
      this.tries.set(id, tries);
      if (tries >= settings.partTries) {
        // Every PUT failed before any answer and the store holds nothing of this upload:
        // most likely the bucket has no CORS rule for this site.
        const refused = !this.reachedStore && !this.storedAnything();
        this.pause(refused ? UNREACHABLE : NETWORK_PAUSE);
        return;
      }
      this.later(retryDelay(tries), () => {
        if (generation !== this.generation) {
          return;
        }
        this.requeue(unit); // renewed by send() when about to expire
        this.schedule();
      });
      this.schedule();
    }

    /** Abandon PUTs that sent nothing for settings.stallMs: they are tried again. */
    watchStalls() {
      const now = performance.now();
      for (const [id, xhr] of Array.from(this.xhrs)) {
        if (now - (this.lastProgress.get(id) || now) > settings.stallMs) {
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
      this.widget.setStatus(this.finishingText());
      let answer;
      try {
        answer = await this.call("POST", this.urls.complete, this.completeBody(), generation);
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
        this.widget.setStatus(this.verifyingText(dataset.size || this.total()));
      } else if (status === "corrupt") {
        this.widget.sessionInput.value = ""; // never attach a corrupt dataset to the form
        this.widget.setState("corrupt");
        this.widget.setStatus(this.corruptText());
      } else {
        this.widget.setState("done");
        this.widget.setStatus(
          this.verifiedText(typeof dataset.sha256 === "string" ? dataset.sha256 : ""),
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

  // -- one file: a multipart upload ----------------------------------------------------

  class FileRun extends Run {
    constructor(widget, file) {
      super(widget);
      this.what = "file";
      this.file = file;
      this.label = file.name;
      this.partCount = 0;
      this.hashes = new Map(); // part number -> base64 SHA-256 of this file's part
      this.stored = new Map(); // part number -> {size, sha256} the store holds
      this.uploaded = new Set(); // parts PUT by this run (not counted as skipped later)
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

    total() {
      return this.file.size;
    }

    startUrl() {
      return this.root.dataset.startUrl;
    }

    startBody() {
      return {
        name: this.file.name,
        size: this.file.size,
        type: this.file.type || "",
        last_modified: Math.round(this.file.lastModified || 0),
      };
    }

    adopt(answer) {
      this.partCount = answer.part_count;
      this.root.dataset.partCount = String(this.partCount);
    }

    unit(number, sha256) {
      return { id: number, number, whole: false, sha256 };
    }

    unitName(unit, capital) {
      return `${capital ? "Part" : "part"} ${unit.number}`;
    }

    partRange(number) {
      const start = (number - 1) * this.partSize;
      return [start, Math.min(start + this.partSize, this.file.size)];
    }

    partBytes(number) {
      const [start, end] = this.partRange(number);
      return end - start;
    }

    unitBytes(unit) {
      return this.partBytes(unit.number);
    }

    body(unit) {
      const [start, end] = this.partRange(unit.number);
      return this.file.slice(start, end);
    }

    storedAnything() {
      return this.stored.size > 0;
    }

    async readStore(generation) {
      const answer = await this.call("GET", this.urls.parts, null, generation);
      this.stored = new Map();
      for (const part of answer.parts || []) {
        this.stored.set(part.number, { size: part.size, sha256: part.sha256 || null });
      }
      this.root.dataset.storedParts = String(this.stored.size);
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
      this.send("parts", this.signed, this.hashed, settings.maxInFlight, generation);
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
      if (!this.signing && this.hashed.length && this.signed.length < settings.maxInFlight) {
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
            this.skipped.add(number);
          }
          this.updateCounts();
        }
        return;
      }
      this.hashed.push(this.unit(number, sha256));
    }

    async sign(parts, generation) {
      this.signing = true;
      let answer;
      try {
        answer = await this.requestSignatures(
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
        this.signed.push({ ...part, url: signed.url, headers: signed.headers || {}, expiresAt });
      }
      this.schedule();
    }

    accepted(unit) {
      const number = unit.number;
      this.uploaded.add(number);
      this.stored.set(number, { size: this.partBytes(number), sha256: unit.sha256 });
      if (!this.done.has(number)) {
        this.done.add(number);
        this.doneBytes += this.partBytes(number);
      }
      this.counts.uploaded += 1;
    }

    rehash(unit) {
      this.hashes.delete(unit.number);
      this.again.push(unit.number);
    }

    resign(unit) {
      this.hashed.unshift(this.unit(unit.number, unit.sha256));
    }

    requeue(unit) {
      this.signed.unshift(unit);
    }

    checking() {
      return this.hashed.length > 0 || this.reading > 0;
    }

    progressText() {
      return "";
    }

    uploadingText() {
      const skipped = this.skipped.size;
      return skipped
        ? `Uploading ${this.file.name} (resumed: ${skipped} of ${this.partCount} parts were already stored)`
        : `Uploading ${this.file.name}`;
    }

    completeBody() {
      const parts = [];
      for (let number = 1; number <= this.partCount; number += 1) {
        parts.push({ number, sha256: this.hashes.get(number) });
      }
      return { parts };
    }

    finishingText() {
      return "Finishing: the server checks every part…";
    }

    verifyingText(size) {
      return `Uploaded ${formatBytes(size)}; verifying the SHA-256…`;
    }

    corruptText() {
      return "Corrupt: the stored object does not match the file. Choose the file again.";
    }

    verifiedText(sha) {
      return sha ? `Verified (SHA-256 ${sha.slice(0, 12)}…)` : "Verified";
    }
  }

  // -- a folder: small files whole, large ones by parts -----------------------------------

  class FolderRun extends Run {
    constructor(widget, folder) {
      super(widget);
      this.what = "folder";
      this.label = folder.name;
      this.entries = folder.files; // [{file, path, size}], sorted by path: the order sent
      this.size = folder.size;
      this.small = []; // indexes of the files sent whole (at most part_size bytes)
      this.large = []; // indexes of the files sent by parts
      this.hashes = new Map(); // unit id -> base64 SHA-256 of that file or part
      this.held = new Set(); // indexes of the small files the store holds
      this.heldParts = new Map(); // index of a large file -> Map(number -> {size, sha256})
      this.uploaded = new Set(); // unit ids PUT by this run (not counted as skipped later)
      this.uploadedFiles = new Set(); // indexes of the files this run sent something of
      this.skippedFiles = new Set(); // indexes of the files found whole in the store
      this.resetPipeline();
    }

    resetPipeline() {
      this.doneUnits = new Set();
      this.doneFiles = new Set();
      this.doneBytes = 0;
      this.partsLeft = new Map(); // index of a large file -> its parts not yet stored
      this.nextSmall = 0; // position in this.small of the next file to check
      this.nextLarge = 0; // position in this.large, and the part number, to check next
      this.nextNumber = 1;
      this.pending = { files: null, parts: null }; // taken, but waiting for reading room
      this.again = []; // units to read and hash again (damaged on the way)
      this.hashed = { files: [], parts: [] }; // units waiting to be signed
      this.signed = { files: [], parts: [] }; // units waiting to be sent
      this.reading = { files: 0, parts: 0 };
      this.readingBytes = 0;
      this.signing = false;
      this.completing = false;
      this.loaded.clear();
      this.lastProgress.clear();
    }

    total() {
      return this.size;
    }

    startUrl() {
      return this.root.dataset.startFolderUrl;
    }

    startBody() {
      return {
        name: this.label,
        files: this.entries.map((entry) => ({ path: entry.path, size: entry.size })),
        description: "",
      };
    }

    adopt(answer) {
      this.small = [];
      this.large = [];
      let units = 0;
      this.entries.forEach((entry, index) => {
        (entry.size > this.partSize ? this.large : this.small).push(index);
        units += this.partCountOf(index);
      });
      this.root.dataset.fileCount = String(this.entries.length);
      this.root.dataset.partCount = String(units);
    }

    partCountOf(index) {
      return Math.max(1, Math.ceil(this.entries[index].size / this.partSize));
    }

    unit(index, number) {
      const whole = this.entries[index].size <= this.partSize;
      return { id: whole ? `${index}` : `${index}/${number}`, index, number, whole };
    }

    unitName(unit, capital) {
      const path = this.entries[unit.index].path;
      return unit.whole ? path : `${capital ? "Part" : "part"} ${unit.number} of ${path}`;
    }

    unitBytes(unit) {
      const size = this.entries[unit.index].size;
      if (unit.whole) {
        return size;
      }
      const start = (unit.number - 1) * this.partSize;
      return Math.min(this.partSize, size - start);
    }

    body(unit) {
      const file = this.entries[unit.index].file;
      if (unit.whole) {
        return file;
      }
      const start = (unit.number - 1) * this.partSize;
      return file.slice(start, start + this.partSize);
    }

    storedAnything() {
      if (this.held.size || this.uploaded.size) {
        return true;
      }
      for (const parts of this.heldParts.values()) {
        if (parts.size) {
          return true;
        }
      }
      return false;
    }

    async readStore(generation) {
      const answer = await this.call("GET", this.urls.parts, null, generation);
      this.held = new Set();
      this.heldParts = new Map();
      let parts = 0;
      for (const entry of answer.files || []) {
        if (entry.done) {
          this.held.add(entry.index);
        } else if (Array.isArray(entry.parts)) {
          const held = new Map();
          for (const part of entry.parts) {
            held.set(part.number, { size: part.size, sha256: part.sha256 || null });
          }
          this.heldParts.set(entry.index, held);
          parts += held.size;
        }
      }
      this.root.dataset.storedFiles = String(this.held.size);
      this.root.dataset.storedParts = String(this.held.size + parts);
    }

    updateCounts() {
      super.updateCounts();
      this.root.dataset.filesDone = String(this.doneFiles.size);
      this.root.dataset.filesSkipped = String(this.skippedFiles.size);
    }

    // -- the pipeline: two pools (small files, parts), each checked, signed and sent ---

    /** The next unit of a pool to check, or null; small files the store holds are done. */
    take(pool) {
      if (this.pending[pool]) {
        const unit = this.pending[pool];
        this.pending[pool] = null;
        return unit;
      }
      const again = this.again.findIndex((unit) => this.poolOf(unit) === pool);
      if (again >= 0) {
        return this.again.splice(again, 1)[0];
      }
      if (pool === "files") {
        while (this.nextSmall < this.small.length) {
          const index = this.small[this.nextSmall];
          this.nextSmall += 1;
          const unit = this.unit(index, 1);
          if (!this.held.has(index)) {
            return unit;
          }
          this.markDone(unit, true);
        }
        return null;
      }
      if (this.nextLarge >= this.large.length) {
        return null;
      }
      const index = this.large[this.nextLarge];
      const number = this.nextNumber;
      if (number >= this.partCountOf(index)) {
        this.nextLarge += 1;
        this.nextNumber = 1;
      } else {
        this.nextNumber += 1;
      }
      return this.unit(index, number);
    }

    /** Nothing of the pool is left to check (what is hashed may still wait to be signed). */
    exhausted(pool) {
      const cursor =
        pool === "files"
          ? this.nextSmall >= this.small.length
          : this.nextLarge >= this.large.length;
      return (
        cursor &&
        !this.pending[pool] &&
        this.reading[pool] === 0 &&
        !this.again.some((unit) => this.poolOf(unit) === pool)
      );
    }

    schedule() {
      if (this.widget.state !== "uploading" || this.cancelled) {
        return;
      }
      const generation = this.generation;
      const hashed = this.hashed;
      const signed = this.signed;
      // 1. Send signed units: small files (many, they are small) and parts.
      // Small files share the browser's six connections to the store with the parts: at
      // most two parts' bytes of them travel at once, so none waits queued long enough
      // to look stalled.
      const most = settings.maxFilesInFlight;
      this.send("files", signed.files, hashed.files, most, generation, 2 * this.partSize);
      this.send("parts", signed.parts, hashed.parts, settings.maxInFlight, generation);
      // 2. Check units ahead: small files a sign batch or two ahead, parts as for a file.
      this.check("files", Math.max(settings.lookahead, 2 * this.signBatch), generation);
      this.check("parts", settings.lookahead, generation);
      // 3. Sign a batch (parts first) when a pool's signed units run low, or when a full
      //    batch of small files is ready, or nothing more will be.
      if (!this.signing) {
        const lowWater = Math.max(2 * settings.maxFilesInFlight, Math.floor(this.signBatch / 2));
        const files =
          hashed.files.length &&
          (signed.files.length < lowWater ||
            hashed.files.length >= this.signBatch ||
            this.exhausted("files"));
        const parts = hashed.parts.length && signed.parts.length < settings.maxInFlight;
        if (files || parts) {
          const batch = hashed.parts.splice(0, this.signBatch);
          batch.push(...hashed.files.splice(0, this.signBatch - batch.length));
          this.sign(batch, generation);
        }
      }
      this.updateCounts();
      // 4. Complete when every file is in the store.
      if (!this.completing && this.doneFiles.size === this.entries.length) {
        this.complete(generation);
      }
    }

    /** Hash units of a pool ahead of sending, within the lookahead and the memory bound. */
    check(pool, lookahead, generation) {
      const maxReading = pool === "files" ? settings.maxReadingFiles : settings.maxReading;
      while (
        this.hashed[pool].length + this.signed[pool].length + this.reading[pool] <
        lookahead
      ) {
        const unit = this.take(pool);
        if (unit === null) {
          return;
        }
        const known = this.hashes.get(unit.id);
        if (known) {
          this.checked(unit, known);
          continue;
        }
        // At most maxReading units of the pool, and two parts' bytes in all, in memory.
        const bytes = this.unitBytes(unit);
        const room = this.readingBytes === 0 || this.readingBytes + bytes <= 2 * this.partSize;
        if (this.reading[pool] >= maxReading || !room) {
          this.pending[pool] = unit;
          return;
        }
        this.hash(unit, generation);
      }
    }

    async hash(unit, generation) {
      const pool = this.poolOf(unit);
      const bytes = this.unitBytes(unit);
      this.reading[pool] += 1;
      this.readingBytes += bytes;
      let digest;
      try {
        const buffer = await this.body(unit).arrayBuffer();
        digest = base64(await window.crypto.subtle.digest("SHA-256", buffer));
      } catch (error) {
        if (generation === this.generation) {
          const path = this.entries[unit.index].path;
          this.fail(`Could not read ${path} (${error.message || error}); choose the folder again.`);
        }
        return;
      }
      if (generation !== this.generation) {
        return;
      }
      this.reading[pool] -= 1;
      this.readingBytes -= bytes;
      this.hashes.set(unit.id, digest);
      this.checked(unit, digest);
      this.schedule();
    }

    /** The unit is hashed: a part the store holds with this hash is done, else queued. */
    checked(unit, sha256) {
      if (!unit.whole) {
        const held = this.heldParts.get(unit.index);
        const part = held && held.get(unit.number);
        if (part && part.sha256 === sha256 && part.size === this.unitBytes(unit)) {
          this.markDone(unit, true);
          return;
        }
      }
      this.hashed[this.poolOf(unit)].push(this.hashedUnit(unit, sha256));
    }

    markDone(unit, fromStore) {
      if (this.doneUnits.has(unit.id)) {
        return;
      }
      this.doneUnits.add(unit.id);
      this.doneBytes += this.unitBytes(unit);
      if (fromStore && !this.uploaded.has(unit.id)) {
        this.skipped.add(unit.id);
      }
      const index = unit.index;
      let left = 0;
      if (!unit.whole) {
        const before = this.partsLeft.has(index)
          ? this.partsLeft.get(index)
          : this.partCountOf(index);
        left = before - 1;
        this.partsLeft.set(index, left);
      }
      if (left === 0) {
        this.doneFiles.add(index);
        if (!this.uploadedFiles.has(index)) {
          this.skippedFiles.add(index);
        }
      }
    }

    async sign(batch, generation) {
      this.signing = true;
      let answer;
      try {
        answer = await this.requestSignatures(
          {
            files: batch
              .filter((unit) => unit.whole)
              .map((unit) => ({ index: unit.index, sha256: unit.sha256 })),
            parts: batch
              .filter((unit) => !unit.whole)
              .map((unit) => ({ file: unit.index, number: unit.number, sha256: unit.sha256 })),
          },
          generation,
        );
      } catch (error) {
        this.trouble(error, generation);
        return;
      }
      this.signing = false;
      const expiresAt = Date.now() + (Number(answer.expires_in) || 300) * 1000;
      const urls = new Map();
      for (const entry of answer.files || []) {
        urls.set(`${entry.index}`, entry);
      }
      for (const entry of answer.parts || []) {
        urls.set(`${entry.file}/${entry.number}`, entry);
      }
      for (const unit of batch) {
        const signed = urls.get(unit.id);
        if (!signed || !signed.url) {
          this.fail(`The server did not sign ${this.unitName(unit, false)}.`);
          return;
        }
        this.signed[this.poolOf(unit)].push({
          ...unit,
          url: signed.url,
          headers: signed.headers || {},
          expiresAt,
        });
      }
      this.schedule();
    }

    accepted(unit, held) {
      if (!held) {
        this.uploaded.add(unit.id);
        this.uploadedFiles.add(unit.index);
        this.counts.uploaded += 1;
      }
      this.markDone(unit, held);
    }

    rehash(unit) {
      this.hashes.delete(unit.id);
      this.again.push(this.hashedUnit(unit, undefined));
    }

    resign(unit) {
      this.hashed[this.poolOf(unit)].unshift(this.hashedUnit(unit, unit.sha256));
    }

    requeue(unit) {
      this.signed[this.poolOf(unit)].unshift(unit);
    }

    checking() {
      return this.hashed.files.length + this.hashed.parts.length > 0;
    }

    progressText(complete) {
      const done = complete ? this.entries.length : this.doneFiles.size;
      return `${done.toLocaleString("en-US")} of ${plural(this.entries.length, "file")}`;
    }

    uploadingText() {
      const skipped = this.skippedFiles.size;
      const text = `Uploading ${this.label}: ${this.progressText(false)}`;
      return skipped ? `${text} (resumed: ${plural(skipped, "file")} already stored)` : text;
    }

    completeBody() {
      return {};
    }

    finishingText() {
      return "Finishing: the server checks every file…";
    }

    verifyingText(size) {
      const files = plural(this.entries.length, "file");
      return `Uploaded ${files} (${formatBytes(size)}); verifying each file's SHA-256…`;
    }

    corruptText() {
      return "Corrupt: the stored files do not match the folder's. Choose the folder again.";
    }

    verifiedText(sha) {
      const files = plural(this.entries.length, "file");
      return sha
        ? `Verified ${files} (manifest SHA-256 ${sha.slice(0, 12)}…)`
        : `Verified ${files}`;
    }
  }

  // -- the widget ----------------------------------------------------------------------

  class Widget {
    constructor(root) {
      this.root = root;
      this.form = root.closest("form");
      this.input = root.querySelector("input[type=file]:not([data-dual-upload-folder])");
      this.folderInput = root.querySelector("[data-dual-upload-folder]");
      this.folderControls = root.querySelector("[data-dual-upload-folder-controls]");
      this.folderButton = root.querySelector("[data-dual-upload-folder-button]");
      this.sessionInput = root.querySelector("[data-dual-upload-session]");
      this.panel = root.querySelector("[data-dual-upload-panel]");
      this.progress = root.querySelector("[data-dual-upload-progress]");
      this.figures = root.querySelector("[data-dual-upload-figures]");
      this.status = root.querySelector("[data-dual-upload-status]");
      this.link = root.querySelector("[data-dual-upload-link]");
      this.pauseButton = root.querySelector("[data-dual-upload-pause]");
      this.resumeButton = root.querySelector("[data-dual-upload-resume]");
      this.cancelButton = root.querySelector("[data-dual-upload-cancel]");
      this.ordinaryButton = root.querySelector("[data-dual-upload-ordinary]");
      this.fieldName = this.input.getAttribute("name") || root.dataset.name || "";
      this.required = this.input.required; // a folder leaves the file input empty
      this.folders = Boolean(
        root.dataset.startFolderUrl && this.folderInput && this.folderButton && this.folderControls,
      );
      this.ordinary = false; // "Send through this site instead": the form posts the file
      this.run = null;
      this.ticker = null;
      this.state = "idle";

      this.input.addEventListener("change", () => {
        if (this.input.files && this.input.files.length) {
          this.choose(this.input.files[0]);
        }
      });
      if (this.folders) {
        this.folderControls.hidden = false;
        this.folderButton.addEventListener("click", () => this.folderInput.click());
        this.folderInput.addEventListener("change", () => {
          if (this.folderInput.files && this.folderInput.files.length) {
            this.chooseFolder(folderFromFiles(this.folderInput.files));
          }
        });
      }
      root.addEventListener("dragover", (event) => {
        if (this.canChoose() && event.dataTransfer && event.dataTransfer.types.includes("Files")) {
          event.preventDefault();
          root.classList.add("dual-upload--over");
        }
      });
      root.addEventListener("dragleave", () => root.classList.remove("dual-upload--over"));
      root.addEventListener("drop", (event) => this.dropped(event));
      this.pauseButton.addEventListener("click", () => this.run && this.run.pause());
      this.resumeButton.addEventListener("click", () => this.run && this.run.resume());
      this.cancelButton.addEventListener("click", () => this.run && this.run.cancel());
      if (this.ordinaryButton) {
        this.ordinaryButton.addEventListener("click", () => this.sendOrdinary());
      }
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

    /** A drop: one file goes as a file; a folder, or several files, as a folder. */
    dropped(event) {
      this.root.classList.remove("dual-upload--over");
      const transfer = event.dataTransfer;
      if (!this.canChoose() || !transfer || !transfer.files || !transfer.files.length) {
        return;
      }
      event.preventDefault();
      if (this.folders && !this.ordinary) {
        // Entries must be taken during the event; they are walked after it.
        const entries = droppedEntries(transfer);
        if (entries && (entries.length > 1 || entries[0].isDirectory)) {
          this.readDropped(entries);
          return;
        }
        if (!entries && transfer.files.length > 1) {
          this.chooseFolder(makeFolder(LOOSE_NAME, Array.from(transfer.files, looseEntry)));
          return;
        }
      }
      try {
        this.input.files = transfer.files;
      } catch (error) {
        // Older browsers cannot set files; the upload goes on without it.
      }
      this.choose(transfer.files[0]);
    }

    async readDropped(entries) {
      this.panel.hidden = false;
      this.setStatus("Reading the dropped folder…");
      let folder;
      try {
        folder = await folderFromEntries(entries);
      } catch (error) {
        this.setStatus(`Could not read what was dropped (${error.message || error}).`);
        return;
      }
      this.chooseFolder(folder);
    }

    choose(file) {
      if (this.ordinary || !this.root.dataset.startUrl || !window.crypto || !window.crypto.subtle) {
        return; // no direct upload here: the ordinary form upload goes on
      }
      if (this.folderInput) {
        this.folderInput.value = "";
      }
      this.start(new FileRun(this, file), file.size);
    }

    chooseFolder(folder) {
      if (this.ordinary || !this.folders || !window.crypto || !window.crypto.subtle) {
        return;
      }
      if (!folder.files.length) {
        this.panel.hidden = false;
        this.setStatus("This folder holds no files.");
        return;
      }
      this.input.value = ""; // the folder replaces any file chosen before
      this.start(new FolderRun(this, folder), folder.size);
    }

    start(run, total) {
      if (this.run) {
        this.run.halt(); // a paused or finished run of something else: left to resume later
      }
      // What the file input holds must not be posted through Django too; the hidden
      // input carries the upload (a folder leaves the file input empty: not required).
      this.input.removeAttribute("name");
      this.input.required = false;
      this.sessionInput.value = "";
      for (const key of RUN_KEYS) {
        delete this.root.dataset[key];
      }
      this.root.dataset.kind = run.what;
      this.setLink(null);
      this.panel.hidden = false;
      this.progress.max = Math.max(1, total);
      this.progress.value = 0;
      this.figures.textContent = `0 bytes of ${formatBytes(total)}`;
      this.run = run;
      run.begin();
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
      if (this.ordinaryButton) {
        // Only a single file can go through the form, and only when the store refused.
        const run = this.run;
        this.ordinaryButton.hidden = !(
          state === "paused" &&
          run &&
          run.unreachable &&
          run.what === "file" &&
          this.fieldName
        );
        this.ordinaryButton.disabled = false;
      }
      const moving = state === "uploading" || state === "completing";
      this.input.disabled = moving;
      if (this.folders) {
        this.folderInput.disabled = moving;
        this.folderButton.disabled = moving;
        this.folderControls.hidden = this.ordinary;
      }
      setFormBusy(this, BUSY.has(state));
    }

    disableButtons() {
      for (const button of [
        this.pauseButton,
        this.resumeButton,
        this.cancelButton,
        this.ordinaryButton,
      ]) {
        if (button) {
          button.disabled = true;
        }
      }
    }

    /** The status line; a command to run goes in a <code> of its own after the text. */
    setStatus(text, command) {
      this.status.textContent = text;
      if (command) {
        const code = document.createElement("code");
        code.className = "dual-upload__command";
        code.textContent = command;
        this.status.append(code);
      }
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
      const total = run.total();
      const sent = complete ? total : run.sentBytes();
      this.progress.max = Math.max(1, total);
      this.progress.value = sent;
      let text = `${formatBytes(sent)} of ${formatBytes(total)}`;
      const files = run.progressText(complete);
      if (files) {
        text += ` · ${files}`;
      }
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
        } else if (run.checking()) {
          text += ` · checking ${run.what === "folder" ? "files" : "parts"}…`;
        }
        this.setStatus(run.uploadingText());
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
      if (this.folderInput) {
        this.folderInput.value = "";
      }
      if (this.fieldName) {
        this.input.setAttribute("name", this.fieldName);
      }
      this.input.required = this.required;
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

    /**
     * "Send through this site instead" (the store refused the browser): cancel the
     * session, give the file input its name back and stay out of the way from now on,
     * so saving the form posts the file to Django as an ordinary upload.
     */
    async sendOrdinary() {
      const run = this.run;
      if (!run || run.what !== "file" || !this.fieldName) {
        return;
      }
      run.cancelled = true;
      run.halt();
      this.stopTicker();
      this.disableButtons();
      this.setStatus("Cancelling the direct upload…");
      await run.settleSigning();
      const problem = run.session ? await run.abortSession() : "";
      if (this.run !== run) {
        return;
      }
      this.run = null;
      this.ordinary = true;
      this.input.setAttribute("name", this.fieldName);
      this.input.required = this.required;
      this.sessionInput.value = "";
      for (const key of RUN_KEYS) {
        delete this.root.dataset[key];
      }
      this.progress.value = 0;
      this.figures.textContent = "";
      this.setLink(null);
      this.setState("ordinary");
      const later = "The file will be sent through this site when you save the form.";
      this.setStatus(
        problem ? `${later} (Cancelling the direct upload failed: ${problem})` : later,
      );
    }
  }

  function looseEntry(file) {
    return { file, path: file.name, size: file.size };
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
