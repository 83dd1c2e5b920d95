// The page's script: no framework, no external assets. Talks to examples/pulid-app.ts's JSON API.
'use strict';
const $ = (id) => document.getElementById(id);
const state = { sample: 'sample2.jpg', upload: null, uploadName: '', info: null };

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function selectSample(name) {
  state.sample = name;
  state.upload = null;
  $('photo').value = '';
  $('photo-info').textContent = '';
  for (const b of $('samples').children) b.setAttribute('aria-checked', String(b.dataset.name === name));
}

async function init() {
  const info = await (await fetch('/api/info')).json();
  state.info = info;
  $('model').textContent = `${info.config} config, ${info.imageSize}×${info.imageSize}`;
  $('idScale').value = info.idScale;
  $('steps').value = info.steps;
  for (const [id, k] of [['idScale', 'idScale'], ['steps', 'steps'], ['seed', 'seed']]) { $(id).min = info.limits[k].min; $(id).max = info.limits[k].max; }
  for (const name of info.samples) {
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.name = name;
    b.setAttribute('role', 'radio');
    b.title = name;
    b.innerHTML = `<img alt="${name}" src="/samples/${name}">`;
    b.addEventListener('click', () => selectSample(name));
    $('samples').append(b);
  }
  selectSample(state.sample);
}

$('photo').addEventListener('change', () => {
  const f = $('photo').files[0];
  showError('');
  if (!f) return;
  if (state.info && f.size > state.info.limits.maxUpload) {
    showError(`That photo is too large: ${f.size} bytes (at most ${state.info.limits.maxUpload}).`);
    $('photo').value = '';
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    state.upload = reader.result;
    state.uploadName = f.name;
    for (const b of $('samples').children) b.setAttribute('aria-checked', 'false');
    $('photo-info').textContent = `using ${f.name}`;
  };
  reader.readAsDataURL(f);
});

function checkNumber(id, integer) {
  const el = $(id), v = el.value.trim(), n = Number(v);
  const { min, max } = state.info.limits[id];
  if (v === '' || !Number.isFinite(n)) return `${el.labels[0].firstChild.textContent.trim()}: enter a number`;
  if (integer && !Number.isInteger(n)) return `${el.labels[0].firstChild.textContent.trim()}: a whole number`;
  if (n < min || n > max) return `${el.labels[0].firstChild.textContent.trim()}: between ${min} and ${max}`;
  return null;
}

function addResult(id, settings) {
  $('empty').hidden = true;
  const fig = document.createElement('figure');
  fig.className = 'result';
  const s = settings;
  fig.innerHTML = `<img alt="result ${id}" src="/api/jobs/${id}/image.png"><figcaption></figcaption>`;
  fig.querySelector('figcaption').textContent =
    `"${s.prompt}"${s.negativePrompt ? ` (not "${s.negativePrompt}")` : ''} · ${s.photo} · id scale ${s.idScale} · ${s.mode} · ${s.steps} steps · seed ${s.seed}`;
  $('gallery').prepend(fig);
}

$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError('');
  const bad = checkNumber('idScale', false) || checkNumber('steps', true) || checkNumber('seed', true);
  if (bad) { showError(bad); return; }
  const body = { prompt: $('prompt').value, negativePrompt: $('negativePrompt').value, idScale: Number($('idScale').value), mode: $('mode').value,
    steps: Number($('steps').value), seed: Number($('seed').value) };
  if (state.upload) { body.photo = state.upload; body.photoName = state.uploadName; } else body.sample = state.sample;
  $('generate').disabled = true;
  $('progress-box').hidden = false;
  $('progress').value = 0;
  $('progress-label').textContent = 'sending…';
  try {
    const r = await fetch('/api/generate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error);
    for (;;) {
      const s = await (await fetch(`/api/jobs/${j.id}`)).json();
      $('progress').max = s.total;
      $('progress').value = s.done;
      $('progress-label').textContent = s.label;
      if (s.status === 'done') { addResult(j.id, s.settings); break; }
      if (s.status === 'error') throw new Error(s.errorKind === 'no-face' ? `No face found: ${s.error}` : s.error);
      await new Promise((res) => setTimeout(res, 300));
    }
  } catch (e) {
    showError(e.message);
  } finally {
    $('generate').disabled = false;
    $('progress-box').hidden = true;
  }
});

init().catch((e) => showError(`could not load the app: ${e.message}`));
