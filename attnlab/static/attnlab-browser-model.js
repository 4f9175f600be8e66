/* The course's models in the reader's browser, with no kernel and no server.
 *
 * One entry point: window.attnlabBrowserModel.attend(name, text, onProgress) resolves to
 * {tokens, ids, special, truncated, layers, heads, length, weights}: the model's own tokens for the
 * text and every attention map, weights a Float32Array of layers × heads × length × length
 * (attention(name, ids) gives the maps for ids). For a GPT, generate(name, prompt, options) writes
 * text one token at a time. The build wrote each model under _static/models/NAME/: model.onnx
 * (attnlab.onnx_export) and its tokenizer files; onnxruntime-web runs the model in WebAssembly
 * and @huggingface/tokenizers runs the tokenizer. Nothing is fetched until the first call; each
 * file is then fetched once per page and kept, so the page needs no network from then on.
 */
(function () {
  "use strict";

  const MODELS = {
    minilm: { folder: "models/minilm/", maxTokens: 512, causal: false },
    minigpt: { folder: "models/minigpt/", maxTokens: 128, causal: true }, // + step.onnx and config.json: writing
  };
  const staticRoot = () => `${document.documentElement.dataset.content_root || "./"}_static/`;
  const sessions = {};
  let runtime = null;

  // onnxruntime-web's small WebAssembly-only build, added to the page on first use.
  function loadRuntime() {
    if (runtime) return runtime;
    runtime = new Promise((resolve, reject) => {
      if (typeof WebAssembly !== "object") {
        reject(new Error("this browser cannot run WebAssembly, which the in-browser model needs"));
        return;
      }
      const script = document.createElement("script");
      script.src = `${staticRoot()}vendor/ort/ort.wasm.min.js`;
      script.onload = () => {
        // An absolute address: ort resolves a relative one against its own script, not the page.
        window.ort.env.wasm.wasmPaths = new URL(`${staticRoot()}vendor/ort/`, document.baseURI).href;
        // Several threads need a cross-origin-isolated page; a static site usually is not.
        window.ort.env.wasm.numThreads = window.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
        resolve(window.ort);
      };
      script.onerror = () => {
        script.remove(); // a later call adds it again
        reject(new Error(`the model runtime (onnxruntime-web) could not be loaded: ${OFFLINE}`));
      };
      document.head.appendChild(script);
    });
    runtime.catch(() => { runtime = null; }); // a later call may try again (e.g. back online)
    return runtime;
  }

  const OFFLINE = "this page could not reach its server (offline?); the prepared examples still work, and typing will once it is back";

  // fetch, with a message a reader can act on when the network is down.
  async function download(url) {
    try {
      return await fetch(url);
    } catch (error) {
      throw new Error(`the model's files could not be downloaded: ${OFFLINE}`);
    }
  }

  // The model file, read chunk by chunk so that a progress bar can follow the download.
  async function fetchModel(url, onProgress) {
    const response = await download(url);
    if (!response.ok) throw new Error(`the model file could not be downloaded (HTTP ${response.status})`);
    const total = Number(response.headers.get("Content-Length")) || 0;
    if (!response.body || !total) return new Uint8Array(await response.arrayBuffer());
    const bytes = new Uint8Array(total);
    const reader = response.body.getReader();
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes.set(value, received);
      received += value.length;
      if (onProgress) onProgress(received / total, total);
    }
    return bytes;
  }

  // An onnxruntime session for one of a model's files: model.onnx (attention maps), step.onnx (writing).
  function session(name, onProgress, file = "model.onnx") {
    const key = `${name}/${file}`;
    if (!sessions[key]) {
      sessions[key] = (async () => {
        const ort = await loadRuntime();
        const bytes = await fetchModel(`${staticRoot()}${MODELS[name].folder}${file}`, onProgress);
        return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
      })();
      sessions[key].catch(() => { delete sessions[key]; });
    }
    return sessions[key];
  }

  // One run at a time per model: a run started while another is going waits for it (rapid typing, a new prompt).
  const queues = {};
  function runAlone(name, run, feeds, fetches) {
    const turn = (queues[name] || Promise.resolve()).then(() => run.run(feeds, fetches));
    queues[name] = turn.catch(() => {});
    return turn;
  }

  const tokenizers = {};
  let importFailures = 0;

  const files = {};
  // A model's small JSON file, fetched once per page (then it works offline).
  function json(name, file) {
    const key = `${name}/${file}`;
    if (!files[key]) {
      files[key] = download(`${staticRoot()}${MODELS[name].folder}${file}`).then((r) => {
        if (!r.ok) throw new Error(`the model's file ${file} could not be downloaded (HTTP ${r.status})`);
        return r.json();
      });
      files[key].catch(() => { delete files[key]; });
    }
    return files[key];
  }

  function tokenizer(name) {
    if (!tokenizers[name]) {
      tokenizers[name] = Promise.all([
        // A failed import stays failed for its address: a retry asks for a new one.
        import(new URL(`${staticRoot()}vendor/tokenizers.min.mjs${importFailures ? `?retry=${importFailures}` : ""}`,
                       document.baseURI).href).catch(() => {
          importFailures += 1;
          throw new Error(`the tokenizer could not be loaded: ${OFFLINE}`);
        }),
        json(name, "tokenizer.json"), json(name, "tokenizer_config.json"),
      ]).then(([module, spec, config]) => ({
        run: new module.Tokenizer(spec, config),
        special: new Set(spec.added_tokens.filter((t) => t.special).map((t) => t.id)),
        vocab: spec.model.type === "WordLevel" ? invert(spec.model.vocab) : null, // id → token, for generated ids
      }));
      tokenizers[name].catch(() => { delete tokenizers[name]; });
    }
    return tokenizers[name];
  }

  function invert(vocab) {
    const tokens = [];
    for (const [token, id] of Object.entries(vocab)) tokens[id] = token;
    return tokens;
  }

  function known(name) {
    const model = MODELS[name];
    if (!model) throw new Error(`no in-browser model called "${name}": choose ${Object.keys(MODELS).join(", ")}`);
    return model;
  }

  // The model's tokens for a text, cut to what it can read (keeping a closing special token), as Python cuts them.
  async function encode(name, text) {
    const model = known(name);
    if (typeof text !== "string" || !text.trim()) throw new Error("type some text first: it is empty");
    const tok = await tokenizer(name);
    const encoded = tok.run.encode(text);
    let ids = Array.from(encoded.ids, Number);
    let tokens = Array.from(encoded.tokens);
    const truncated = ids.length > model.maxTokens;
    if (truncated) {
      const closing = tok.special.has(ids[ids.length - 1]) ? 1 : 0;
      ids = ids.slice(0, model.maxTokens - closing).concat(ids.slice(ids.length - closing));
      tokens = tokens.slice(0, model.maxTokens - closing).concat(tokens.slice(tokens.length - closing));
    }
    return { ids, tokens, special: ids.map((id) => tok.special.has(id)), truncated };
  }

  async function attend(name, text, onProgress) {
    const encoded = await encode(name, text);
    return { ...encoded, ...(await attention(name, encoded.ids, onProgress)) };
  }

  async function attention(name, ids, onProgress) {
    const model = known(name);
    if (!Array.isArray(ids) || ids.length === 0) throw new Error("give at least one token id");
    if (ids.length > model.maxTokens) throw new Error(`${ids.length} tokens is more than ${name}'s ${model.maxTokens}`);
    const ort = await loadRuntime();
    const run = await session(name, onProgress);
    const shape = [1, ids.length];
    const feeds = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), shape),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(ids.length).fill(1n), shape),
    };
    const out = (await runAlone(name, run, feeds, ["attentions"])).attentions; // (1, layers, heads, T, T)
    const [, layers, heads, length] = out.dims;
    return { layers, heads, length, weights: out.data };
  }

  // A small seeded generator (mulberry32): the same seed writes the same text.
  function randomNumbers(seed) {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // The next id from one row of logits: temperature (0: the most likely), then top-k, then a draw.
  function pick(logits, temperature, topK, random) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    if (temperature === 0) return best;
    const scaled = Array.from(logits, (x) => x / temperature);
    const kth = topK ? [...scaled].sort((a, b) => b - a)[Math.min(topK, scaled.length) - 1] : -Infinity;
    const weights = scaled.map((x) => (x >= kth ? Math.exp(x - scaled[best]) : 0));
    let draw = random() * weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < weights.length; i++) {
      draw -= weights[i];
      if (draw < 0) return i;
    }
    return best;
  }

  function sampling(options) {
    const { length = 200, temperature = 0.8, topK = 0, seed = Date.now() } = options;
    if (!Number.isInteger(length) || length < 1 || length > 2000) throw new Error("length must be a whole number from 1 to 2000");
    if (!(temperature >= 0) || temperature > 5) throw new Error("temperature must be a number from 0 (always the most likely) to 5");
    if (!Number.isInteger(topK) || topK < 0) throw new Error("top-k must be a whole number (0 keeps every token)");
    return { length, temperature, topK, random: randomNumbers(seed) };
  }

  // Extend prompt by options.length tokens; options.onText(text so far) follows along.
  // The model reads at most its last maxTokens tokens, as it did in training (GPT.generate). step.onnx
  // (attnlab.onnx_export.CachedStep) keeps every layer's keys and values, so a step reads one new
  // token; once the window slides, positions shift and the window is read afresh with an empty cache.
  async function generate(name, prompt, options = {}) {
    const model = known(name);
    if (!model.causal) throw new Error(`${name} reads in both directions: it cannot write text; choose ${Object.keys(MODELS).filter((m) => MODELS[m].causal).join(", ")}`);
    const { length, temperature, topK, random } = sampling(options);
    await encode(name, prompt); // the same checks and messages as typed text
    const tok = await tokenizer(name);
    const ort = await loadRuntime();
    const config = await json(name, "config.json");
    const run = await session(name, options.onProgress, "step.onnx");
    const empty = new ort.Tensor("float32", new Float32Array(0), [config.n_layer, 1, config.n_head, 0, config.n_embd / config.n_head]);
    const ids = Array.from(tok.run.encode(prompt).ids, Number);
    const promptTokens = ids.length;
    const step = async (newIds, keys, values) => runAlone(name, run, {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(newIds, BigInt), [1, newIds.length]),
      past_keys: keys, past_values: values,
    }, ["logits", "keys", "values"]);
    let out = await step(ids.slice(-model.maxTokens), empty, empty);
    let text = "";
    for (let i = 0; i < length; i++) {
      if (options.signal && options.signal.aborted) throw new Error("stopped: a newer request replaced this one");
      const next = pick(out.logits.data, temperature, topK, random);
      ids.push(next);
      text += tok.special.has(next) || !tok.vocab ? "\ufffd" : tok.vocab[next]; // <unk> shows as �, as in Python
      if (options.onText) options.onText(text);
      if (i === length - 1) break;
      const cached = out.keys.dims[3];
      out = cached < model.maxTokens ? await step([next], out.keys, out.values) : await step(ids.slice(-model.maxTokens), empty, empty);
    }
    return { prompt, text, ids, promptTokens };
  }

  window.attnlabBrowserModel = { attend, attention, encode, generate, models: Object.keys(MODELS) };
})();
