// The page of `python -m keras_gen serve`: samples a zoo model's model.tflite with LiteRT.js.
//
// URL contract (README): ?model=<zoo name>&noise=<URL of a float32 .npy>[&labels=1,2,...]
// &autorun=1 samples exactly that noise (a model with several noise inputs takes
// noise_<name>=<URL> for each), then shows the sha256 of the uint8 images (C order) in
// #result-sha256 and the milliseconds per image in #result-ms. Errors show in #error.
// &threads=N runs XNNPack on N threads, and &warmup=1 samples the first image once, untimed,
// before the timed run (XNNPack packs weights on a model's first call): for
// benchmarks/browser_latency.py.

import {loadAndCompile, loadLiteRt, Tensor} from '@litertjs/core';

const $ = (id) => document.getElementById(id);
const compiled = new Map();  // zoo name -> compiled model (batch 1)
const params = new URLSearchParams(location.search);
// ?threads=N: XNNPack threads (more than one needs the threaded build and cross-origin isolation).
const threads = Math.max(1, Math.floor(Number(params.get('threads'))) || 1);
let zoo = [];

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  $('status').textContent = 'Stopped.';
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

// -- noise --------------------------------------------------------------------
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Seeded noise for the page's own sampling: {name: Float32Array of count * prod(shape)}.
function seededNoise(entry, count, seed) {
  const random = mulberry32(seed);
  const noise = {};
  for (const name of Object.keys(entry.noise).sort()) {
    const {shape, kind} = entry.noise[name];
    const values = new Float32Array(count * shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) {
      if (kind === 'uniform') {
        values[i] = Math.min(random(), 1 - 2 ** -24);
      } else {  // Box-Muller
        values[i] = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
      }
    }
    noise[name] = values;
  }
  return noise;
}

// A float32 .npy file (C order, little-endian) -> {shape, data}.
function parseNpy(buffer, url) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.slice(1, 6));
  if (bytes[0] !== 0x93 || magic !== 'NUMPY') throw new Error(`${url}: not a .npy file`);
  const major = bytes[6];
  const headerLength = major === 1 ? bytes[8] | (bytes[9] << 8) : new DataView(buffer).getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.slice(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const types = {'<f4': Float32Array, '|u1': Uint8Array};
  if (!(descr in types) || fortran !== 'False') {
    throw new Error(`${url}: expected float32 ('<f4') or uint8 ('|u1') in C order, got ${descr}, fortran_order ${fortran}`);
  }
  return {shape, data: new types[descr](buffer.slice(start + headerLength))};
}

async function fetchNoise(entry, params) {
  const names = Object.keys(entry.noise).sort();
  const noise = {};
  let count = null;
  for (const name of names) {
    const url = params.get(names.length === 1 ? 'noise' : `noise_${name}`);
    if (!url) throw new Error(`noise: give ${names.length === 1 ? 'noise' : names.map((n) => 'noise_' + n).join(' and ')}=<URL of a float32 .npy>`);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`noise: ${url} could not be fetched (HTTP ${response.status})`);
    const {shape, data} = parseNpy(await response.arrayBuffer(), url);
    const expected = entry.noise[name].shape;
    if (shape.length !== expected.length + 1 || expected.some((d, i) => d !== shape[i + 1])) {
      throw new Error(`${name}: ${entry.name} takes noise of shape (batch, ${expected.join(', ')}); ${url} holds (${shape.join(', ')})`);
    }
    if (count !== null && shape[0] !== count) throw new Error('noise: every input needs the same batch size');
    count = shape[0];
    noise[name] = data;
  }
  return {noise, count};
}

// -- sampling -----------------------------------------------------------------
async function compiledModel(name) {
  if (!compiled.has(name)) {
    const response = await fetch(`/models/${name}.tflite`);
    if (!response.ok) throw new Error(`model ${name}: its file could not be fetched (HTTP ${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    compiled.set(name, await loadAndCompile(bytes, {accelerator: 'wasm', cpuOptions: {numThreads: threads}}));
  }
  return compiled.get(name);
}

// Runs one image through a signature of the (batch 1) model: `inputs` {name: [typed array,
// shape]}, plus the label of a conditional model. Returns the uint8 images and the milliseconds.
async function runOne(entry, signature, inputs, label) {
  const model = await compiledModel(entry.name);
  const tensors = {};
  for (const [name, [values, shape]] of Object.entries(inputs)) tensors[name] = new Tensor(values, shape);
  if (entry.num_classes) tensors.labels = new Tensor(new Int32Array([label]), [1]);
  const start = performance.now();
  const outputs = await model.run(signature, tensors);
  const milliseconds = performance.now() - start;
  const images = outputs.images.toTypedArray().slice();
  for (const tensor of [...Object.values(tensors), ...Object.values(outputs)]) tensor.delete();
  return {images, milliseconds};
}

// Completes one image: keeps `known` (uint8 levels, H * W * C) where `mask` is 1 and samples the
// rest from `noise` (uniform, H * W * C), with the export's complete signature.
function completeImage(entry, known, mask, noise) {
  const shape = [1, ...entry.image_shape];
  const inputs = {noise: [noise, shape], known: [known, shape], known_mask: [mask, shape]};
  return runOne(entry, 'complete', inputs, Number($('label').value || 0));
}

// Image i's share of noise for `count` images: {name: typed array of one image's noise}.
function noiseOfImage(noise, count, i) {
  return Object.fromEntries(Object.entries(noise).map(([name, values]) => {
    const size = values.length / count;
    return [name, values.slice(i * size, (i + 1) * size)];
  }));
}

// Samples `count` images one at a time (the web copies have batch 1): a Uint8Array of
// count * H * W * C pixels and the milliseconds per image.
async function sampleImages(entry, noise, count, labels) {
  const [height, width, channels] = entry.image_shape;
  const perImage = height * width * channels;
  const images = new Uint8Array(count * perImage);
  let milliseconds = 0;
  for (let i = 0; i < count; i++) {
    const inputs = {};
    for (const [name, values] of Object.entries(noiseOfImage(noise, count, i))) {
      inputs[name] = [values, [1, ...entry.noise[name].shape]];
    }
    const one = await runOne(entry, 'sample', inputs, labels?.[i]);
    milliseconds += one.milliseconds;
    images.set(one.images, i * perImage);
  }
  return {images, msPerImage: milliseconds / count};
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// A grey line between images, so that samples on a light background stay apart.
const GRID_GAP = 1;
const GRID_GAP_GREY = 128;

function drawGrid(entry, images, count, canvas = $('grid')) {
  const [height, width, channels] = entry.image_shape;
  const columns = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  canvas.width = columns * (width + GRID_GAP) - GRID_GAP;
  canvas.height = rows * (height + GRID_GAP) - GRID_GAP;
  const context = canvas.getContext('2d');
  const picture = context.createImageData(canvas.width, canvas.height);
  picture.data.fill(GRID_GAP_GREY);
  for (let i = 0; i < count; i++) {
    const top = Math.floor(i / columns) * (height + GRID_GAP);
    const left = (i % columns) * (width + GRID_GAP);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const source = ((i * height + y) * width + x) * channels;
        const target = ((top + y) * canvas.width + left + x) * 4;
        for (let c = 0; c < 3; c++) picture.data[target + c] = images[source + (channels === 3 ? c : 0)];
        picture.data[target + 3] = 255;
      }
    }
  }
  context.putImageData(picture, 0, 0);
  canvas.hidden = false;
}

async function run(entry, noise, count, labels) {
  clearError();
  $('status').textContent = `Sampling ${count} image${count > 1 ? 's' : ''} from ${entry.name}…`;
  $('result-sha256').textContent = '–';
  $('result-ms').textContent = '–';
  const {images, msPerImage} = await sampleImages(entry, noise, count, labels);
  drawGrid(entry, images, count);
  $('result-ms').textContent = msPerImage.toFixed(1);
  $('result-sha256').textContent = await sha256Hex(images);
  $('status').textContent = `${count} image${count > 1 ? 's' : ''} from ${entry.name}, ${msPerImage.toFixed(1)} ms each, on this device.`;
}

// -- latent interpolation ---------------------------------------------------------
// One latent vector z (the VAE's, a GAN's): slerp between the z of two seeds.
function hasOneLatent(entry) {
  const names = Object.keys(entry.noise);
  return names.length === 1 && entry.noise[names[0]].kind === 'normal' && !entry.num_classes;
}

function slerp(a, b, t) {
  const dot = a.reduce((sum, x, i) => sum + x * b[i], 0);
  const norms = Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
  const angle = Math.acos(Math.min(1, Math.max(-1, dot / norms)));
  if (angle < 1e-6) return a.map((x, i) => (1 - t) * x + t * b[i]);
  const [wa, wb] = [Math.sin((1 - t) * angle), Math.sin(t * angle)].map((w) => w / Math.sin(angle));
  return a.map((x, i) => wa * x + wb * b[i]);
}

let interpolating = Promise.resolve();
function interpolate() {
  const entry = selected();
  if (!hasOneLatent(entry)) return;
  const [name] = Object.keys(entry.noise);
  const t = Number($('slider').value);
  const a = seededNoise(entry, 1, Number($('seed-a').value) || 0)[name];
  const b = seededNoise(entry, 1, Number($('seed-b').value) || 0)[name];
  const z = Float32Array.from(slerp(Array.from(a), Array.from(b), t));
  interpolating = interpolating.then(async () => {
    const {images} = await sampleImages(entry, {[name]: z}, 1, null);
    drawGrid(entry, images, 1, $('between'));
    $('between-t').textContent = `t = ${t.toFixed(2)}`;
  }).catch((error) => showError(error.message ?? String(error)));
}

// -- drawing and completion -------------------------------------------------------
function drawingLevels(entry) {
  // The pad's pixels as the model's levels, each channel quantized to the nearest level
  // (for a binary model, ink above 127 is 1); a grey model reads the red channel.
  const [height, width, channels] = entry.image_shape;
  const pad = $('drawing').getContext('2d').getImageData(0, 0, width, height).data;
  const levels = new Uint8Array(height * width * channels);
  const top = entry.num_levels - 1;
  for (let i = 0; i < height * width; i++) {
    for (let c = 0; c < channels; c++) {
      levels[i * channels + c] = Math.round((pad[i * 4 + (channels === 3 ? c : 0)] * top) / 255);
    }
  }
  return levels;
}

// The pad takes the selected model's size (cleared) and, for a colour model, an ink colour.
function fitDrawingPad(entry) {
  const [height, width, channels] = entry.image_shape;
  const pad = $('drawing');
  pad.width = width;
  pad.height = height;
  padTouched = false;  // a resized pad is blank
  setPadBackground([0, 0, 0]);  // until the model's held-out images, if any, say otherwise
  $('ink-row').hidden = channels !== 3;
  $('keep-rows').max = String(height);
}

// The pad's blank colour: the held-out images' background when the server offers some (the
// median of their border pixels, channel by channel), else black, as MNIST's.
let padBackground = [0, 0, 0];
let padTouched = false;

function clearDrawingPad() {
  const pad = $('drawing');
  const context = pad.getContext('2d');
  context.fillStyle = `rgb(${padBackground.join(',')})`;
  context.fillRect(0, 0, pad.width, pad.height);
  padTouched = false;
}

function borderMedian(data, [count, height, width, channels]) {
  const values = Array.from({length: 3}, () => []);
  for (let i = 0; i < count; i++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (y > 0 && y < height - 1 && x > 0 && x < width - 1) continue;
        const source = ((i * height + y) * width + x) * channels;
        for (let c = 0; c < 3; c++) values[c].push(data[source + (channels === 3 ? c : 0)]);
      }
    }
  }
  return values.map((v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)]);
}

// Black or white, whichever stands out on the pad's background: the grey pen's colour and
// a colour pen's starting one.
function contrastingInk() {
  return padBackground.reduce((a, b) => a + b, 0) / 3 > 127 ? '#000000' : '#ffffff';
}

// Blanks an untouched pad in `rgb` and gives the colour pen the contrasting ink.
function setPadBackground(rgb) {
  padBackground = rgb;
  $('ink').value = contrastingInk();
  if (!padTouched) clearDrawingPad();
}

function setUpDrawing() {
  const pad = $('drawing');
  const context = pad.getContext('2d');
  let drawing = false;
  const ink = (event) => {
    const box = pad.getBoundingClientRect();
    const x = Math.floor(((event.clientX - box.left) / box.width) * pad.width);
    const y = Math.floor(((event.clientY - box.top) / box.height) * pad.height);
    context.fillStyle = selected().image_shape[2] === 3 ? $('ink').value : contrastingInk();
    context.fillRect(x - 1, y - 1, 2, 2);  // a 2 x 2 pen, about a stroke's width in MNIST
    padTouched = true;
  };
  pad.addEventListener('pointerdown', (event) => { drawing = true; pad.setPointerCapture(event.pointerId); ink(event); });
  pad.addEventListener('pointermove', (event) => drawing && ink(event));
  pad.addEventListener('pointerup', () => { drawing = false; });
  $('clear').addEventListener('click', clearDrawingPad);
}

// Held-out images to complete, at the selected model's shape, when `serve` has some
// (--images: the user's own; --manual-dir: static binarized MNIST test digits for 28x28x1):
// a strip of buttons, each putting its image on the drawing pad.
let testImagesShown = Promise.resolve();
function setUpTestImages(entry) {
  const shape = entry.image_shape.join('x');
  const showing = testImagesShown.then(async () => {
    $('test-digits').replaceChildren();
    $('test-digits-hint').hidden = true;
    const response = await fetch(`/test_images.npy?shape=${shape}`);
    if (selected() !== entry) return;  // another model was picked meanwhile
    if (!response.ok) {
      $('test-digits-hint').textContent = 'To pick a held-out image here, start the server with '
        + '--images <your folder or array of images>'
        + (shape === '28x28x1' ? ' or --manual-dir <folder of binarized_mnist\'s .amat files>.' : '.');
      $('test-digits-hint').hidden = false;
      return;
    }
    const {shape: [count, height, width, channels], data} = parseNpy(await response.arrayBuffer(), '/test_images.npy');
    setPadBackground(borderMedian(data, [count, height, width, channels]));
    const size = height * width * channels;
    const picture = {image_shape: [height, width, channels]};
    $('test-digits').replaceChildren(...Array.from({length: count}, (_, i) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.title = `held-out image ${i}`;
      button.dataset.index = String(i);
      const thumbnail = document.createElement('canvas');
      const pixels = data.subarray(i * size, (i + 1) * size);
      drawGrid(picture, pixels, 1, thumbnail);
      button.append(thumbnail);
      button.addEventListener('click', () => {
        drawGrid(picture, pixels, 1, $('drawing'));
        padTouched = true;
      });
      return button;
    }));
  });
  testImagesShown = showing.catch(() => {});
  return showing;
}

function keepMask(entry, rows) {
  const [height, width, channels] = entry.image_shape;
  const mask = new Uint8Array(height * width * channels);
  mask.fill(1, 0, Math.max(0, Math.min(height, rows)) * width * channels);
  return mask;
}

async function runCompletion(entry, known, mask, noise) {
  clearError();
  $('status').textContent = `Completing with ${entry.name}…`;
  const {images, milliseconds} = await completeImage(entry, known, mask, noise);
  drawGrid(entry, images, 1, $('completed'));
  $('result-ms').textContent = milliseconds.toFixed(1);
  $('result-sha256').textContent = await sha256Hex(images);
  $('status').textContent = `Completed in ${milliseconds.toFixed(0)} ms, on this device.`;
}

// -- the page -----------------------------------------------------------------
function showCard(entry) {
  $('card-name').textContent = `${entry.name} (${entry.model})`;
  const figures = Object.entries(entry.figures).map(([k, v]) => `${k}: ${v}`);
  const published = Object.entries(entry.published).map(([k, v]) => `published ${k}: ${v}`);
  $('card-figures').replaceChildren(...[...figures, ...published].map((text) => {
    const item = document.createElement('li');
    item.textContent = text;
    return item;
  }));
  $('card-pictures').replaceChildren(...entry.pictures.map((picture) => {
    const image = document.createElement('img');
    image.src = `/models/${entry.name}/${picture}`;
    image.alt = `${entry.name}: ${picture}`;
    return image;
  }));
  $('label-row').hidden = !entry.num_classes;
  $('interpolation').hidden = !hasOneLatent(entry);
  $('completion').hidden = !entry.signatures.includes('complete');
  if (entry.num_classes) {
    $('label').replaceChildren(...Array.from({length: entry.num_classes}, (_, k) => new Option(String(k), String(k))));
  }
}

function selected() {
  return zoo.find((entry) => entry.name === $('model').value);
}

async function main() {
  try {
    zoo = await (await fetch('/zoo.json')).json();
    $('model').replaceChildren(...zoo.map((entry) => new Option(entry.name, entry.name)));
    await loadLiteRt('/litertjs/core/wasm/', {threads: threads > 1 && crossOriginIsolated});
  } catch (error) {
    showError(`LiteRT.js could not start: ${error.message ?? error}`);
    return;
  }
  const wanted = params.get('model');
  if (wanted !== null && !zoo.some((entry) => entry.name === wanted)) {
    showError(`unknown model ${JSON.stringify(wanted)}; the zoo has ${zoo.map((e) => e.name).join(', ')}`);
    return;
  }
  if (wanted) $('model').value = wanted;
  const showModel = () => {
    const entry = selected();
    showCard(entry);
    fitDrawingPad(entry);
    if (entry.signatures.includes('complete')) {
      setUpTestImages(entry).catch((error) => showError(`held-out images: ${error.message ?? error}`));
    }
  };
  showModel();
  $('model').addEventListener('change', () => {
    showModel();
    interpolate();
  });
  for (const id of ['slider', 'seed-a', 'seed-b']) $(id).addEventListener('input', interpolate);
  interpolate();
  $('sample').disabled = false;
  $('status').textContent = 'Ready: pick a model and sample.';
  $('sample').addEventListener('click', async () => {
    const entry = selected();
    const count = Math.max(1, Math.min(64, Number($('count').value) || 1));
    const labels = Array.from({length: count}, () => Number($('label').value || 0));
    try {
      await run(entry, seededNoise(entry, count, Number($('seed').value) || 0), count, labels);
    } catch (error) {
      showError(error.message ?? String(error));
    }
  });
  setUpDrawing();
  await testImagesShown;
  $('complete').disabled = false;
  $('complete').addEventListener('click', async () => {
    const entry = selected();
    const noise = seededNoise(entry, 1, Number($('seed').value) || 0).noise;
    try {
      await runCompletion(entry, drawingLevels(entry), keepMask(entry, Number($('keep-rows').value)), noise);
    } catch (error) {
      showError(error.message ?? String(error));
    }
  });
  if (params.get('autorun') === '1' && params.get('known')) {
    // ?model=...&known=<uint8 levels .npy>&noise=<.npy>&rows=K&autorun=1: complete that image.
    const entry = selected();
    try {
      if (!entry.signatures.includes('complete')) throw new Error(`${entry.name} has no complete signature`);
      const {noise} = await fetchNoise(entry, params);
      const response = await fetch(params.get('known'));
      if (!response.ok) throw new Error(`known: ${params.get('known')} could not be fetched (HTTP ${response.status})`);
      const known = parseNpy(await response.arrayBuffer(), params.get('known'));
      await runCompletion(entry, known.data, keepMask(entry, Number(params.get('rows') ?? 14)), noise.noise);
    } catch (error) {
      showError(error.message ?? String(error));
    }
  } else if (params.get('autorun') === '1') {
    const entry = selected();
    try {
      const {noise, count} = await fetchNoise(entry, params);
      let labels = null;
      if (entry.num_classes) {
        labels = (params.get('labels') ?? '').split(',').filter(Boolean).map(Number);
        if (labels.length !== count || labels.some((k) => !(k >= 0 && k < entry.num_classes))) {
          throw new Error(`labels: ${entry.name} needs ${count} labels in 0..${entry.num_classes - 1}, as labels=0,1,...`);
        }
      }
      if (params.get('warmup') === '1') {
        await sampleImages(entry, noiseOfImage(noise, count, 0), 1, labels);
      }
      await run(entry, noise, count, labels);
    } catch (error) {
      showError(error.message ?? String(error));
    }
  }
}

main();
