/* The course's models in the reader's browser, with no kernel and no server.
 *
 * One entry point: window.attnlabBrowserModel.attention(name, ids, onProgress) resolves to
 * {layers, heads, tokens, weights} — every attention map of the model for those token ids,
 * weights a Float32Array of layers × heads × tokens × tokens. The build wrote each model as an
 * ONNX file (attnlab.onnx_export) under _static/models/; onnxruntime-web runs it in WebAssembly,
 * from _static/vendor/ort/. Nothing is fetched until the first call; then the browser's cache
 * keeps the files, so the model also works offline.
 */
(function () {
  "use strict";

  const MODELS = { minilm: { file: "models/minilm.onnx", maxTokens: 512 } };
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
        const bytes = await fetchModel(staticRoot() + MODELS[name].file, onProgress);
        return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
      })();
      sessions[name].catch(() => { delete sessions[name]; });
    }
    return sessions[name];
  }

  async function attention(name, ids, onProgress) {
    const model = MODELS[name];
    if (!model) throw new Error(`no in-browser model called "${name}": choose ${Object.keys(MODELS).join(", ")}`);
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
    const [, layers, heads, tokens] = out.dims;
    return { layers, heads, tokens, weights: out.data };
  }

  window.attnlabBrowserModel = { attention, models: Object.keys(MODELS) };
})();
