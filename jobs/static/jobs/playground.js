// The playground: runs an LLM pixel through the SEMOSS face and polls it as the SEMOSS frontend does
// (runPixelAsync -> jobId, then pixelJobStreaming with that jobId until a finish_reason arrives).
"use strict";

const ENCODE_CLOSE = "</encode>";

class ApiError extends Error {
  constructor(message, status, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The LLM pixel exactly as ai-server-sdk builds it: raw text inside <encode>, JSON paramValues.
function llmPixel(engineId, prompt, params) {
  return `LLM(engine="${engineId}", command="<encode>${prompt}</encode>", paramValues=[${JSON.stringify(params)}]);`;
}

async function post(path, fields) {
  let response;
  try {
    response = await fetch(document.body.dataset.semoss + path, {
      method: "POST",
      body: new URLSearchParams(fields), // form-encoded, as the SDK and the frontend send it
      credentials: "same-origin", // the session cookie of the signed-in user
      headers: { Accept: "application/json" },
    });
  } catch (error) {
    throw new ApiError(`Cannot reach Spool: ${error.message}`, 0, null);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // a non-JSON answer (a proxy's error page, say): reported below with its status
  }
  if (!response.ok || body === null) {
    const message = (body && (body.errorMessage || (body.error && body.error.message))) || `HTTP ${response.status}`;
    throw new ApiError(message, response.status, Number(response.headers.get("Retry-After")) || null);
  }
  return body;
}

class Run {
  constructor() {
    this.jobId = null;
    this.polls = 0;
    this.messages = 0;
    this.texts = new Map(); // choice -> text so far
    this.tools = new Map(); // "choice:index" -> {id, type, name, arguments, element}
    this.finished = false;
  }

  text(choice) {
    if (choice === 0) return $("output");
    let box = document.querySelector(`[data-choice="${choice}"]`);
    if (!box) {
      box = document.createElement("div");
      box.className = "text choice";
      box.dataset.choice = String(choice);
      $("other-choices").appendChild(box);
    }
    return box;
  }

  appendText(choice, piece) {
    this.texts.set(choice, (this.texts.get(choice) || "") + piece);
    const box = this.text(choice);
    box.textContent = choice === 0 ? this.texts.get(choice) : `choice ${choice}: ${this.texts.get(choice)}`;
  }

  tool(choice, data) {
    const key = `${choice}:${data.index}`;
    let call = this.tools.get(key);
    if (!call) {
      const element = document.createElement("li");
      element.className = "tool-call";
      element.dataset.index = String(data.index);
      $("tool-calls").appendChild(element);
      call = { id: "", type: "", name: "", arguments: "", element };
      this.tools.set(key, call);
      $("tools-box").hidden = false;
    }
    if (data.id) call.id = data.id;
    if (data.type) call.type = data.type;
    if (data.function && data.function.name) call.name += data.function.name;
    if (data.function && data.function.arguments) call.arguments += data.function.arguments;
    call.element.textContent = `${call.name || "?"}(${call.arguments})  ${call.id}${choice ? ` [choice ${choice}]` : ""}`;
  }

  handle(message) {
    const data = message.data || {};
    const choice = data.choice || 0;
    this.messages += 1;
    if ("finish_reason" in data) {
      this.finished = true;
      $("finish-reason").textContent = data.finish_reason;
      if (data.error && data.finish_reason !== "cancelled") showError(data.error);
      return;
    }
    if (message.stream_type === "content" && typeof data.content === "string") {
      this.appendText(choice, data.content);
    } else if (message.stream_type === "tool") {
      this.tool(choice, data);
    } else if (message.stream_type === "thinking") {
      $("thinking-box").hidden = false;
      $("thinking").textContent += data.thinking || "";
    } else if (message.stream_type === "usage") {
      $("usage").textContent = `${data.input_tokens} in / ${data.output_tokens} out`;
    }
  }
}

let current = null;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function setStatus(status) {
  $("status").textContent = status;
  $("status").dataset.status = status;
}

function reset() {
  for (const id of ["output", "thinking", "other-choices", "tool-calls"]) $(id).textContent = "";
  $("error").hidden = true;
  $("error").textContent = "";
  $("thinking-box").hidden = true;
  $("tools-box").hidden = true;
  $("finish-reason").textContent = "-";
  $("usage").textContent = "-";
  $("job-id").textContent = "-";
  $("polls").textContent = "0";
  $("messages").textContent = "0";
}

function readParams() {
  const extra = $("params").value.trim();
  let params = {};
  if (extra) {
    params = JSON.parse(extra); // a SyntaxError is shown by the caller
    if (typeof params !== "object" || params === null || Array.isArray(params)) {
      throw new SyntaxError("paramValues must be a JSON object");
    }
  }
  const base = {};
  if ($("max-tokens").value) base.max_completion_tokens = Number($("max-tokens").value);
  if ($("temperature").value) base.temperature = Number($("temperature").value);
  return { ...base, ...params };
}

async function poll(run) {
  while (!run.finished) {
    let body;
    try {
      // No sleep between polls: the server holds a poll open until a chunk lands.
      body = await post("/engine/pixelJobStreaming", { jobId: run.jobId });
    } catch (error) {
      if (error.status === 429 || error.status === 503) {
        showError(`${error.message} (retrying)`);
        await sleep((error.retryAfter || 1) * 1000);
        continue;
      }
      showError(error.message);
      setStatus("Error");
      return;
    }
    run.polls += 1;
    body.message.forEach((message) => run.handle(message));
    $("polls").textContent = String(run.polls);
    $("messages").textContent = String(run.messages);
    setStatus(body.status);
    if (body.status === "UnknownJob") {
      showError("Spool does not know this job (UnknownJob).");
      return;
    }
  }
}

async function start(event) {
  event.preventDefault();
  reset();
  const prompt = $("prompt").value;
  if (prompt.includes(ENCODE_CLOSE)) {
    showError(`The prompt cannot contain ${ENCODE_CLOSE}: it would end the pixel's raw text.`);
    return;
  }
  let params;
  try {
    params = readParams();
  } catch (error) {
    showError(`More parameters: ${error.message}`);
    return;
  }
  const run = new Run();
  current = run;
  $("run").disabled = true;
  setStatus("Submitting");
  try {
    const started = await post("/engine/runPixelAsync", {
      expression: llmPixel($("engine").value, prompt, params),
      insightId: "new",
    });
    if (!started.jobId) throw new ApiError(started.errorMessage || "runPixelAsync gave no jobId", 200, null);
    run.jobId = started.jobId;
    $("job-id").textContent = run.jobId;
    $("stop").disabled = false;
    await poll(run);
  } catch (error) {
    showError(error.message);
    setStatus("Error");
  } finally {
    $("stop").disabled = true;
    $("run").disabled = false;
  }
}

async function stop() {
  if (!current || !current.jobId) return;
  $("stop").disabled = true;
  try {
    // The poll loop goes on and shows the "cancelled" finish when it arrives.
    const body = await post("/engine/terminate", { jobId: current.jobId });
    setStatus(body.status);
  } catch (error) {
    showError(`Stop failed: ${error.message}`);
    $("stop").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("run-form").addEventListener("submit", start);
  $("stop").addEventListener("click", stop);
});
