/* The course's models in the reader's browser, with no kernel and no server.
 *
 * One entry point: window.attnlabBrowserModel.attend(name, text, onProgress) resolves to
 * {tokens, ids, truncated, layers, heads, length, weights}: the model's own tokens for the text and
 * every attention map, weights a Float32Array of layers × heads × length × length
 * (attention(name, ids) gives the maps for ids). The build wrote each model under _static/models/NAME/: model.onnx
 * (attnlab.onnx_export) and its tokenizer files; onnxruntime-web runs the model in WebAssembly
 * and @huggingface/tokenizers runs the tokenizer. Nothing is fetched until the first call; then
 * the browser's cache keeps the files, so the model also works offline.
 */
(function () {
  "use strict";

  const MODELS = { minilm: { folder: "models/minilm/", maxTokens: 512 } };
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
      script.onerror = () => reject(new Error("the model runtime (onnxruntime-web) could not be loaded"));
      document.head.appendChild(script);
    });
    runtime.catch(() => { runtime = null; }); // a later call may try again (e.g. back online)
    return runtime;
  }

  // The model file, read chunk by chunk so that a progress bar can follow the download.
  async function fetchModel(url, onProgress) {
    const response = await fetch(url);
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
      if (onProgress) onProgress(received / total);
    }
    return bytes;
  }

  function session(name, onProgress) {
    if (!sessions[name]) {
      sessions[name] = (async () => {
        const ort = await loadRuntime();
        const bytes = await fetchModel(`${staticRoot()}${MODELS[name].folder}model.onnx`, onProgress);
        return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
      })();
      sessions[name].catch(() => { delete sessions[name]; });
    }
    return sessions[name];
  }

  const tokenizers = {};

  function tokenizer(name) {
    if (!tokenizers[name]) {
      const folder = `${staticRoot()}${MODELS[name].folder}`;
      const json = (file) => fetch(folder + file).then((r) => {
        if (!r.ok) throw new Error(`the tokenizer file ${file} could not be downloaded (HTTP ${r.status})`);
        return r.json();
      });
      tokenizers[name] = Promise.all([
        import(new URL(`${staticRoot()}vendor/tokenizers.min.mjs`, document.baseURI).href),
        json("tokenizer.json"), json("tokenizer_config.json"),
      ]).then(([module, spec, config]) => new module.Tokenizer(spec, config));
      tokenizers[name].catch(() => { delete tokenizers[name]; });
    }
    return tokenizers[name];
  }

  function known(name) {
    const model = MODELS[name];
    if (!model) throw new Error(`no in-browser model called "${name}": choose ${Object.keys(MODELS).join(", ")}`);
    return model;
  }

  // The model's tokens for a text, cut to what it can read (keeping the closing special token).
  async function encode(name, text) {
    const model = known(name);
    if (typeof text !== "string" || !text.trim()) throw new Error("type some text first: it is empty");
    const encoded = (await tokenizer(name)).encode(text);
    let ids = Array.from(encoded.ids, Number);
    let tokens = Array.from(encoded.tokens);
    const truncated = ids.length > model.maxTokens;
    if (truncated) {
      ids = ids.slice(0, model.maxTokens - 1).concat(ids.slice(-1));
      tokens = tokens.slice(0, model.maxTokens - 1).concat(tokens.slice(-1));
    }
    return { ids, tokens, truncated };
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
    const out = (await run.run(feeds, ["attentions"])).attentions; // (1, layers, heads, T, T)
    const [, layers, heads, length] = out.dims;
    return { layers, heads, length, weights: out.data };
  }

  window.attnlabBrowserModel = { attend, attention, encode, models: Object.keys(MODELS) };
})();
