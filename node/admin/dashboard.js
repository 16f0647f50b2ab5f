// The cluster dashboard: reads /admin/api/cluster with the admin token every 2 s.
// Everything is written with textContent: nothing from the API is parsed as HTML.
const TOKEN_KEY = 'relay-admin-token';
const $ = (sel) => document.querySelector(sel);
let timer;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

/** What a live stream takes in, and under it each of its forwards to other servers with its state. */
function ingestCell(s) {
  const td = el(
    'td',
    [s.protocol, sourceCodecs(s.renditions), kbps(s.bitsPerSecond), s.framesPerSecond ? `${s.framesPerSecond} fps` : ''].filter(Boolean).join(' · '),
  );
  for (const f of s.forwards ?? []) {
    const line = el('div', `→ ${f.target} ${f.state}${f.restarts ? ` (${f.restarts} restarts)` : ''}`, `forward ${f.state}`);
    if (f.error) line.title = f.error;
    td.append(line);
  }
  return td;
}

function row(cells, testid) {
  const tr = document.createElement('tr');
  if (testid) tr.dataset.testid = testid;
  for (const c of cells) tr.append(c instanceof Node ? wrap(c) : el('td', c));
  return tr;
}

function wrap(node) {
  if (node.tagName === 'TD') return node;
  const td = document.createElement('td');
  td.append(node);
  return td;
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function kbps(bps) {
  return bps === null || bps === undefined ? '' : `${Math.round(bps / 1000)} kbit/s`;
}

/** What a codecs string (RFC 6381) means to a person: `avc1.64001f,mp4a.40.2` -> `H.264 + AAC`. */
const CODEC_NAMES = [
  [/^avc[13]/, 'H.264'],
  [/^(hvc1|hev1)/, 'HEVC'],
  [/^av01/, 'AV1'],
  [/^mp4a/, 'AAC'],
  [/^opus/i, 'Opus'],
];
function codecNames(codecs) {
  return codecs
    .split(',')
    .map((c) => CODEC_NAMES.find(([re]) => re.test(c.trim()))?.[1] ?? c.trim())
    .join(' + ');
}

/** The source's codecs, and "audio only" / "video only" when a track is missing. */
function sourceCodecs(renditions) {
  const source = renditions.find((r) => r.name === 'source');
  if (!source) return '';
  return codecNames(source.codecs) + (source.tracks === 'audio' ? ' (audio only)' : source.tracks === 'video' ? ' (video only)' : '');
}

function showLogin(message) {
  clearTimeout(timer);
  $('#cluster').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
  $('#token').focus();
}

async function api(path, init = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw Object.assign(new Error('token needed'), { login: '' });
  const res = await fetch(`/admin/api${path}`, { ...init, headers: { ...(init.headers || {}), authorization: `Bearer ${token}` } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401 || res.status === 403 || (res.status === 503 && body.code === 'ADMIN_DISABLED')) {
    throw Object.assign(new Error(body.message || res.statusText), { login: `${body.code}: ${body.message}` });
  }
  if (!res.ok) throw new Error(`${body.code || res.status}: ${body.message || res.statusText}`);
  return body;
}

function render(cluster) {
  const origins = cluster.nodes.filter((n) => n.roles.includes('origin'));
  const edges = cluster.nodes.filter((n) => n.roles.includes('edge'));
  const live = cluster.streams.filter((s) => s.live);
  const viewers = cluster.streams.reduce((sum, s) => sum + s.viewers.total, 0);
  const summary = $('[data-testid=summary]');
  summary.replaceChildren(
    ...[
      ['origins', origins.length],
      ['edges', edges.length],
      ['live streams', live.length],
      ['viewers', viewers],
    ].map(([label, n]) => {
      const span = el('span');
      span.dataset.testid = `count-${label.replace(' ', '-')}`;
      span.append(el('b', n), ` ${label}`);
      return span;
    }),
    el('span', `v${cluster.version}`),
  );

  $('[data-testid=origins] tbody').replaceChildren(
    ...(origins.length
      ? origins.map((n) =>
          row(
            [
              el('td', n.id + (n.draining ? ' (draining)' : ''), n.draining ? 'draining' : ''),
              n.url,
              [n.origin?.rtmp, n.origin?.rtmps, n.origin?.srt].filter(Boolean).join(' · '),
              n.origin ? n.origin.streams.map((s) => `${s.stream} (${s.protocol})`).join(', ') || '—' : '',
              ago(n.startedAt),
            ],
            `origin-${n.id}`,
          ),
        )
      : [row([el('td', 'no origin is running', 'empty')])]),
  );

  const inRing = new Set(cluster.ring.members.map((m) => m.id));
  $('[data-testid=edges] tbody').replaceChildren(
    ...(edges.length
      ? edges.map((n) => {
          const load = n.edge?.load ?? 0;
          const capacity = n.edge?.capacity ?? 1;
          const bar = el('span', undefined, 'bar');
          const fill = el('i');
          fill.style.width = `${Math.min(100, (100 * load) / capacity)}%`;
          bar.append(fill);
          const loadCell = el('td');
          loadCell.append(bar, `${load} / ${capacity}`);
          const per = Object.entries(n.edge?.viewers ?? {})
            .filter(([, v]) => v.ws + v.webrtc + (v.hls ?? 0) > 0)
            .map(([s, v]) => `${s}: ${v.ws} / ${v.webrtc} / ${v.hls ?? 0}`)
            .join(', ');
          return row(
            [el('td', n.id + (n.draining ? ' (draining)' : ''), n.draining ? 'draining' : ''), n.url, loadCell, per || '—', inRing.has(n.id) ? 'yes' : 'no'],
            `edge-${n.id}`,
          );
        })
      : [row([el('td', 'no edge is running', 'empty')])]),
  );

  $('[data-testid=streams] tbody').replaceChildren(
    ...cluster.streams.map((s) => {
      const end = el('td');
      if (s.live) {
        const b = el('button', 'End');
        b.dataset.testid = `end-${s.name}`;
        b.onclick = () => endStream(s.name);
        const recording = recordings?.find((r) => r.stream === s.name && r.status === 'recording');
        const rec = el('button', recording ? 'Stop recording' : 'Record');
        rec.dataset.testid = `record-${s.name}`;
        rec.onclick = () => record(s.name, !recording);
        end.append(b, ' ', rec);
      }
      return row(
        [
          s.name,
          el('td', s.live ? 'live' : 'offline', s.live ? 'live' : 'offline'),
          s.live ? `${s.origin} · ${s.leaseToken ?? '?'}` : '',
          s.live ? ingestCell(s) : '',
          s.renditions.map((r) => `${r.name}${r.height ? ` ${r.height}p` : ''}${r.webrtc ? ' (WebRTC)' : ''}`).join(', '),
          Object.entries(s.viewers.byEdge)
            .map(([edge, v]) => `${edge}: ${v.ws + v.webrtc + (v.hls ?? 0)}`)
            .join(', ') || '0',
          s.placedOn ?? '—',
          end,
        ],
        `stream-${s.name}`,
      );
    }),
  );
  renderRecordings();
  $('#login').hidden = true;
  $('#cluster').hidden = false;
}

/** Recordings in this node's store; undefined when they cannot be read. */
let recordings;
let recordingsDue = 0;
let recordingsNote = '';

function mb(bytes) {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

function clock(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function renderRecordings() {
  const body = $('[data-testid=recordings] tbody');
  if (!recordings) return body.replaceChildren(row([el('td', recordingsNote, 'empty')]));
  if (recordings.length === 0) return body.replaceChildren(row([el('td', 'no recording yet', 'empty')]));
  body.replaceChildren(
    ...recordings.map((r) => {
      const actions = el('td');
      const play = el('button', 'Play');
      play.dataset.testid = `play-${r.id}`;
      play.onclick = () => playRecording(r);
      actions.append(play);
      if (r.mp4) {
        const download = el('button', 'MP4');
        download.title = 'Download the recording as one MP4 file';
        download.onclick = () => downloadRecording(r);
        actions.append(' ', download);
      }
      if (r.status === 'complete') {
        const remove = el('button', 'Delete');
        remove.dataset.testid = `delete-${r.id}`;
        remove.onclick = () => deleteRecording(r);
        actions.append(' ', remove);
      }
      return row(
        [
          r.id,
          r.stream,
          new Date(r.startedAt).toLocaleString(),
          r.status === 'complete' ? clock(r.durationS) : '…',
          r.status === 'complete' ? mb(r.bytes + (r.mp4?.bytes ?? 0)) : '…',
          el('td', r.status, r.status === 'recording' ? 'live' : ''),
          String(r.gaps),
          actions,
        ],
        `recording-${r.id}`,
      );
    }),
  );
}

async function refreshRecordings() {
  try {
    recordings = (await api('/recordings')).recordings;
  } catch (err) {
    recordings = undefined;
    recordingsNote = err.message;
  }
}

let hls;
function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = '/admin/hls.js';
    script.onload = () => resolve(window.Hls);
    script.onerror = () => reject(new Error('cannot load hls.js'));
    document.head.append(script);
  });
}

/** Plays a recording (its HLS, seekable; a live one grows) with the admin token on every request. */
async function playRecording(r) {
  const Hls = await loadHls();
  const token = sessionStorage.getItem(TOKEN_KEY);
  hls?.destroy();
  hls = new Hls({ xhrSetup: (xhr) => xhr.setRequestHeader('authorization', `Bearer ${token}`) });
  hls.loadSource(`/admin/api/recordings/${encodeURIComponent(r.id)}/hls/index.m3u8`);
  const video = $('#recording-video');
  hls.attachMedia(video);
  $('#playing').textContent = r.id;
  $('#player-box').hidden = false;
  video.play().catch(() => {});
}

$('#close-player').addEventListener('click', () => {
  hls?.destroy();
  hls = undefined;
  $('#player-box').hidden = true;
});

async function downloadRecording(r) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const res = await fetch(`/admin/api/recordings/${encodeURIComponent(r.id)}/file.mp4`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) return void ($('#status').textContent = `download: ${res.status}`);
  const url = URL.createObjectURL(await res.blob());
  const a = el('a');
  a.href = url;
  a.download = `${r.id}.mp4`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function deleteRecording(r) {
  if (!confirm(`Delete the recording ${r.id}?`)) return;
  try {
    await api(`/recordings/${encodeURIComponent(r.id)}`, { method: 'DELETE' });
  } catch (err) {
    $('#status').textContent = err.message;
    $('#status').className = 'err';
  }
  recordingsDue = 0;
  refresh();
}

async function record(name, start) {
  try {
    await api(`/streams/${encodeURIComponent(name)}/recording/${start ? 'start' : 'stop'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
  } catch (err) {
    $('#status').textContent = err.message;
    $('#status').className = 'err';
  }
  recordingsDue = 0;
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const cluster = await api('/cluster');
    // Recordings change slowly, and listing them reads the store: every fifth refresh (10 s), or after an action.
    if (recordingsDue-- <= 0) {
      await refreshRecordings();
      recordingsDue = 4;
    }
    render(cluster);
    $('#status').textContent = `updated ${new Date().toLocaleTimeString()}`;
    $('#status').className = 'empty';
  } catch (err) {
    if (err.login !== undefined) return showLogin(err.login);
    $('#status').textContent = err.message;
    $('#status').className = 'err';
  }
  timer = setTimeout(refresh, 2000);
}

async function endStream(name) {
  if (!confirm(`End the stream ${name}? Its publisher is disconnected.`)) return;
  try {
    await api(`/streams/${encodeURIComponent(name)}/end`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'ended from the dashboard' }),
    });
  } catch (err) {
    $('#status').textContent = err.message;
    $('#status').className = 'err';
  }
  refresh();
}

$('#login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
  refresh();
});

refresh();
